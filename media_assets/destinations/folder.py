"""Folder destinations: the local folder of the embedded default, and a Pixel phone's sync folder.

Files are written under a temp name and renamed, so a sync app (Syncthing ignores `.syncthing.*.tmp`) never
picks up half a file; an identical file already there counts as uploaded, a different one keeps its name. A copy
is made only of bytes that hash to the catalog's checksum, so its identity (`storage.copy_identity`), recorded
on its upload row, proves it to verification by a stat."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from media_assets.destinations.base import UploadError, UploadJob
from media_assets.media.hashing import sha256_file
from media_assets.storage import copy_atomically, copy_identity, holds_checksum, with_suffix_id


class FolderDestination:
    def __init__(self, name: str, folder: Path, kind: str) -> None:
        self.name = name
        self.folder = folder
        self.sending = f"copied to the {kind} {folder}"

    def refusal(self, media_format: str | None, media_type: str | None) -> str | None:
        return None

    def upload(self, path: Path, name: str, checksum: str, taken: datetime | None = None) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        candidates = [name] + [with_suffix_id(name, int(checksum[:8], 16) + n) for n in range(100)]
        for candidate in candidates:
            target = self.folder / candidate
            if not target.exists():
                copy_atomically(path, target, temp_name=f".syncthing.{candidate}.tmp", expected_sha256=checksum)
                return candidate
            if sha256_file(target) == checksum:
                return candidate
        raise UploadError(f"no free name for {name} in {self.folder}")

    def verify(self, remote_id: str, checksum: str) -> bool:
        return holds_checksum(self.folder / remote_id, None, checksum)

    def identity(self, remote_id: str) -> str | None:
        return copy_identity(self.folder / remote_id)

    def verify_by_identity(self, remote_id: str, identity: str | None, checksum: str) -> bool:
        return holds_checksum(self.folder / remote_id, identity, checksum)

    def resend(self, remote_id: str, job: UploadJob) -> str:
        target = self.folder / remote_id
        copy_atomically(job.path, target, temp_name=f".syncthing.{target.name}.tmp", expected_sha256=job.checksum)
        return remote_id

    def holds(self, remote_id: str) -> bool:
        return (self.folder / remote_id).is_file()

    def all_ids(self) -> set[str]:
        if not self.folder.is_dir():
            return set()
        # Hidden files are the sync app's own (.stignore, .stversions/, .syncthing.*.tmp), never a copy of ours.
        relative = (path.relative_to(self.folder) for path in self.folder.rglob("*") if path.is_file())
        return {str(path) for path in relative if not any(part.startswith(".") for part in path.parts)}
