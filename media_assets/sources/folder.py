"""A folder source: recursive, incremental, read-only. A file is known by its path and its size and mtime, so
a file that changes later is taken again as a new version, and the source folder itself is never modified."""

from __future__ import annotations

import base64
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from media_assets.sources.base import SourceError, SourceItem, SourceUnreachable
from media_assets.sources.sidecars import sidecars_by_owner

#: Files that operating systems and NAS boxes leave in photo folders; they are not media.
SYSTEM_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".picasa.ini", "picasa.ini", ".nomedia"})
SYSTEM_FOLDERS = frozenset({"@eadir", ".@__thumb", "#recycle", ".thumbnails", ".trash", ".trashes",
                            ".spotlight-v100", ".fseventsd"})

#: Errors that say the folder's disk or share went away (unmounted, disconnected), not that the file is bad.
UNREACHABLE_ERRORS = frozenset({errno.ENOENT, errno.EIO, errno.ENOTCONN, errno.ESTALE, errno.EHOSTDOWN,
                                errno.EHOSTUNREACH, errno.ENETDOWN, errno.ENETUNREACH, errno.ETIMEDOUT,
                                errno.ENODEV, errno.ENXIO, errno.ECONNRESET, errno.ECONNABORTED})


def path_key(path: str | Path) -> str:
    """A text key for a path that survives names that are not valid UTF-8 (the catalog stores text)."""
    raw = os.fsencode(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "b64:" + base64.urlsafe_b64encode(raw).decode("ascii")


def path_from_key(key: str) -> Path:
    if key.startswith("b64:"):
        return Path(os.fsdecode(base64.urlsafe_b64decode(key[4:])))
    return Path(key)


def _version(info: os.stat_result) -> str:
    return f"{info.st_size}:{info.st_mtime_ns}"


def _display_name(path: str | Path) -> str:
    """The file name as valid UTF-8 text (undecodable bytes become U+FFFD), so the catalog can store it."""
    return os.fsencode(os.path.basename(path)).decode("utf-8", "replace")


def _is_system_file(name: str) -> bool:
    return name.lower() in SYSTEM_FILES or name.startswith("._")


class FolderSource:
    """Media files below one or more folders."""

    name = "folder"
    #: Listing is a local walk: a batch's plan may list all of it (selection.plan_batch).
    cheap_listing = True

    def __init__(self, roots: tuple[Path, ...] | list[Path]) -> None:
        self.roots = tuple(Path(r).resolve() for r in roots)

    def scan(self) -> Iterator[SourceItem]:
        for root in self.roots:
            yield from self._scan_root(root)

    def _scan_root(self, root: Path) -> Iterator[SourceItem]:
        unreadable: list[OSError] = []  # folders os.walk could not list: reported, never skipped silently
        for folder, dirs, files in os.walk(root, onerror=unreadable.append, followlinks=False):
            yield from self._unreadable_folders(unreadable)
            dirs[:] = sorted(d for d in dirs if d.lower() not in SYSTEM_FOLDERS)
            names = sorted(name for name in files if not _is_system_file(name))
            owned = sidecars_by_owner(names)
            attached = {sidecar for group in owned.values() for sidecar in group}
            for name in names:
                if name in attached:
                    continue  # travels with its photo
                # Paths stay strings here: the walk lists every known file at each batch, and a Path per
                # file cost more than the file's stat.
                item = self._item(root, os.path.join(folder, name))
                if name in owned and item.refusal is None:
                    sidecars = ((path_key(os.path.join(folder, sidecar)), _display_name(sidecar))
                                for sidecar in owned[name])
                    item = replace(item, sidecars=tuple(sidecars))
                yield item
        yield from self._unreadable_folders(unreadable)

    def _unreadable_folders(self, errors: list[OSError]) -> Iterator[SourceItem]:
        for error in errors:
            path = Path(os.fsdecode(error.filename))
            yield SourceItem(self.name, path_key(path), "unreadable-folder", _display_name(path),
                             refusal=f"folder is not readable ({error.strerror}): its files were not taken")
        errors.clear()

    def _item(self, root: Path, path: str) -> SourceItem:
        key = path_key(path)
        display = _display_name(path)
        try:
            info = os.lstat(path)
        except OSError as error:
            return SourceItem(self.name, key, "unreadable", display, refusal=f"cannot read file: {error.strerror}",
                              unreachable=error.errno in UNREACHABLE_ERRORS)
        if stat.S_ISLNK(info.st_mode):
            try:
                target = Path(path).resolve()
            except (OSError, RuntimeError):  # a symlink loop: RuntimeError before Python 3.13
                return SourceItem(self.name, key, "broken-link", display, refusal="broken symbolic link (loop)")
            if not target.is_relative_to(root):
                return SourceItem(self.name, key, _version(info), display,
                                  refusal="symbolic link pointing outside the source folder")
            try:
                info = target.stat()
            except OSError:
                return SourceItem(self.name, key, "broken-link", display, refusal="broken symbolic link")
        if not stat.S_ISREG(info.st_mode):
            return SourceItem(self.name, key, _version(info), display, refusal="not a regular file")
        if not os.access(path, os.R_OK):
            return SourceItem(self.name, key, _version(info), display, refusal="file is not readable (permissions)")
        return SourceItem(self.name, key, _version(info), display, size=info.st_size, modified=info.st_mtime)

    def lookup(self, source_id: str) -> SourceItem:
        path = path_from_key(source_id)
        root = next((r for r in self.roots if Path(os.path.normpath(path)).is_relative_to(r)), None)
        if root is None:
            return SourceItem(self.name, source_id, "", _display_name(path),
                              refusal="file lies outside the configured source folders")
        return self._item(root, os.fspath(path))

    def _checked_path(self, source_id: str) -> Path:
        path = path_from_key(source_id)
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop: RuntimeError before Python 3.13
            raise SourceError("cannot read file: symbolic link loop") from None
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise SourceError("file lies outside the configured source folders")
        return resolved

    @contextmanager
    def open(self, source_id: str) -> Iterator[BinaryIO]:
        path = self._checked_path(source_id)
        try:
            stream = path.open("rb")
        except OSError as error:
            failure = SourceUnreachable if error.errno in UNREACHABLE_ERRORS else SourceError
            raise failure(f"cannot read file: {error.strerror}") from None
        with stream:
            yield stream

    def unchanged(self, item_source_id: str, version: str) -> bool:
        try:
            return _version(self._checked_path(item_source_id).stat()) == version
        except (OSError, SourceError):
            return False
