"""The storage folders: collision-free, safe file names and atomic writes, so nobody (a phase after a crash,
a phone's sync app) ever sees half a file, and no name that arrives from a source can escape its folder."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import io
import os
import shutil
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from media_assets import faults
from media_assets.media.hashing import CHUNK, sha256_file

if TYPE_CHECKING:  # the settings (pydantic) stay out of the workers, which write files through this module
    from media_assets.settings import Settings

MAX_NAME_BYTES = 180
TEMP_PREFIX = ".partial-"


def safe_name(name: str) -> str:
    """A single, printable, bounded file name derived from whatever a source called the file."""
    name = name.encode("utf-8", "replace").decode("utf-8")  # lone surrogates from undecodable bytes
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join("_" if unicodedata.category(ch).startswith(("C", "Zl", "Zp")) else ch for ch in name).strip()
    name = name.lstrip(".") or "unnamed"
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 10:
        stem, ext = name, ""
    ext = f".{ext}" if ext else ""
    budget = MAX_NAME_BYTES - len(ext.encode())
    stem_bytes = stem.encode()
    if len(stem_bytes) > budget:
        stem = stem_bytes[:budget].decode("utf-8", "ignore")
    return f"{stem}{ext}"


def with_suffix_id(name: str, file_id: int) -> str:
    """`IMG_0001.JPG` -> `IMG_0001_<id>.JPG`: the deterministic alternative name when a name is taken."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{file_id}.{ext}" if dot and stem else f"{name}_{file_id}"


def free_target(folder: Path, name: str, file_id: int, content_hash: str | None = None) -> Path:
    """Where file `file_id` goes in `folder`: its name, or the name with its id when another file has it.

    A file already there with the same content counts as ours, so a re-run after a crash finds its own copy."""
    first = folder / name
    if not first.exists() or (content_hash and sha256_file(first) == content_hash):
        return first
    return folder / with_suffix_id(name, file_id)


class DiffersFromChecksum(OSError):
    """The bytes read while copying do not have the SHA-256 the catalog expects: the copy is not made."""


def copy_identity(path: Path) -> str | None:
    """'st_ino:st_size:st_mtime_ns' of a file, None if there is none: a rename keeps it, any write changes it.
    Taken right after the pipeline wrote and hashed a copy and recorded in the catalog, it proves by a stat
    that the copy still holds those bytes (verification; the weekly scrub still re-hashes everything)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def holds_checksum(path: Path, identity: str | None, checksum: str | None, *, rehash: bool = False) -> bool:
    """Whether the file holds the bytes of `checksum`: by its identity recorded when those bytes were written,
    or, for a copy without one, one whose identity changed (it may have been copied back) or when `rehash`, by
    re-hashing it."""
    if not rehash and identity is not None and copy_identity(path) == identity:
        return True
    return path.is_file() and sha256_file(path) == checksum


def write_atomically(source: BinaryIO, target: Path, *, temp_name: str | None = None,
                     durable: bool = True, expected_sha256: str | None = None,
                     mode: int | None = None) -> tuple[int, str]:
    """Copy a stream to `target` through a temp file in the same folder, fsync, rename; (bytes, sha256).

    `durable=False` leaves the fsyncs to the caller, who makes a whole chunk of files durable at once
    (`make_durable`) before the catalog records any of them. With `expected_sha256`, bytes that hash otherwise
    never reach `target` (DiffersFromChecksum), so the copy's identity vouches for that checksum. `mode`: the
    file's permissions, set before it takes the target's name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / (temp_name or f"{TEMP_PREFIX}{target.name}")
    digest = hashlib.sha256()
    size = 0
    try:
        with temp.open("wb") as out:
            if mode is not None:
                os.fchmod(out.fileno(), mode)
            while chunk := source.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                faults.checkpoint("write", target.name)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise DiffersFromChecksum(f"{target.name}: the bytes copied are not those of SHA-256 {expected_sha256}")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(target.parent)
    return size, digest.hexdigest()


def write_text_atomically(target: Path, text: str, *, mode: int = 0o600) -> None:
    """Replace a small file (a configuration Dagster or Celery reads) as a whole: another process starting at
    the same moment, or a start after a kill, reads the old text or the new one, never a truncated file."""
    write_atomically(io.BytesIO(text.encode()), target, temp_name=f"{TEMP_PREFIX}{target.name}.{os.getpid()}",
                     mode=mode)


def copy_atomically(source: Path, target: Path, *, temp_name: str | None = None,
                    durable: bool = True, expected_sha256: str | None = None) -> tuple[int, str]:
    with source.open("rb") as stream:
        return write_atomically(stream, target, temp_name=temp_name, durable=durable,
                                expected_sha256=expected_sha256)


def move_file(source: Path, target: Path, *, durable: bool = True) -> None:
    """Rename `source` to `target` (copy and delete across filesystems); `durable=False`: see write_atomically.
    The target's folder is made when the rename finds it missing (not asked for before every rename)."""
    try:
        os.replace(source, target)
    except FileNotFoundError:
        if target.parent.is_dir():
            raise  # the source is what is missing
        target.parent.mkdir(parents=True, exist_ok=True)
        move_file(source, target, durable=durable)
        return
    except OSError:  # across filesystems
        copy_atomically(source, target)  # durable before the only other copy goes
        source.unlink()
    if durable:
        _fsync_dir(target.parent)


def make_durable(paths: Sequence[Path]) -> None:
    """Make files written or renamed with `durable=False` (and their folders' entries) survive a power cut: one
    `syncfs` per filesystem they are on, instead of an fsync of every file and folder. Where the C library has
    no syncfs (not Linux), each file and its folder are fsynced."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:
        for path in paths:
            _fsync_file(path)
            _fsync_dir(path.parent)
        return
    folders = {path.parent for path in paths}  # a chunk's files share a few folders: a stat of each folder
    for path in {folder.stat().st_dev: folder for folder in folders}.values():
        fd = os.open(path, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error), str(path))
        finally:
            os.close(fd)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def remove_partials(folder: Path) -> int:
    """Delete temp files a killed run left behind; they are never the only copy of anything."""
    removed = 0
    if folder.is_dir():
        for temp in folder.rglob(f"{TEMP_PREFIX}*"):
            temp.unlink(missing_ok=True)
            removed += 1
    return removed


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


@dataclass(frozen=True)
class FreeSpace:
    """Free space of every folder the pipeline writes to, against FREE_SPACE_ALERT_GB (GB = 10^9 bytes)."""

    threshold_gb: int
    #: Free GB by the folder's setting (MEDIA_ROOT, DATA_DIR, ...).
    free_gb: dict[str, float]
    folders: dict[str, Path]

    @property
    def low(self) -> dict[str, float]:
        """The folders below the threshold (none when the threshold is 0: the check is off)."""
        return {key: gb for key, gb in self.free_gb.items() if gb < self.threshold_gb}


def free_space(settings: Settings) -> FreeSpace:
    """The one free-space rule, used by the asset check and the Telegram alert alike."""
    from media_assets.settings import GB

    folders = settings.folders_written()
    return FreeSpace(threshold_gb=settings.storage.free_space_alert_gb, folders=folders,
                     free_gb={key: free_bytes(_existing(folder)) / GB for key, folder in folders.items()})


def _existing(folder: Path) -> Path:
    """The folder, or the nearest parent that exists (the disk a folder not yet created will be on)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _fsync_dir(folder: Path) -> None:
    _fsync_file(folder)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
