"""The destination interface shared by the iCloud, Pixel and local-folder uploads."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class UploadError(Exception):
    """One file could not be uploaded; it stays staged and is retried on the next run of the batch."""


class Destination(Protocol):
    #: Stable name recorded in the `uploads` table.
    name: str

    def refusal(self, media_format: str | None, media_type: str | None) -> str | None:
        """None when the destination accepts this kind of file, otherwise the reason it does not."""
        ...

    def upload(self, path: Path, name: str, checksum: str) -> str:
        """Send one file and return its id at the destination; an identical file already there is success."""
        ...

    def verify(self, remote_id: str, checksum: str) -> bool:
        """Whether the destination holds exactly these bytes under that id."""
        ...
