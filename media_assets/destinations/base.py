"""The destination interface shared by the iCloud, Pixel and local-folder uploads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable


class UploadError(Exception):
    """One file could not be uploaded; it stays staged and is retried on the next run of the batch."""


class UploadJob(NamedTuple):
    """One file to send: `taken` is its capture date (aware: local time with its UTC offset), or None."""

    path: Path
    name: str
    checksum: str
    taken: datetime | None = None


class Destination(Protocol):
    #: Stable name recorded in the `uploads` table.
    name: str
    #: What sending a file there is, for people: "copied to the local folder /srv/dest".
    sending: str

    def refusal(self, media_format: str | None, media_type: str | None) -> str | None:
        """None when the destination accepts this kind of file, otherwise the reason it does not."""
        ...

    def upload(self, path: Path, name: str, checksum: str, taken: datetime | None = None) -> str:
        """Send one file and return its id at the destination; an identical file already there is success.
        A destination that dates what it holds (iCloud Photos) dates it `taken`."""
        ...

    def verify(self, remote_id: str, checksum: str) -> bool:
        """Whether the destination holds exactly these bytes under that id."""
        ...


@runtime_checkable
class HoldsItsSource(Protocol):
    """A destination that is also a source (iCloud Photos): a file taken from it is already there."""

    def already_holds(self, source: str, source_id: str) -> str | None:
        """The destination's id of a file that came from it, so nothing is sent back; None otherwise."""
        ...


@runtime_checkable
class ReadsBack(Protocol):
    """A destination whose own check cannot prove the bytes (iCloud: Apple's checksum is its own format), so a
    sample is downloaded back and its SHA-256 compared."""

    #: How many uploads of each batch its verification reads back.
    bytes_sample: int

    def verify_bytes(self, remote_id: str, checksum: str) -> bool:
        """Whether the bytes the destination serves under that id have this SHA-256 (costs a download)."""
        ...


@runtime_checkable
class SeesItsCopies(Protocol):
    """A destination that can tell a copy that is there with other bytes from a missing one (a folder, iCloud),
    so `verify --full` says *differing*, not *missing*."""

    def holds(self, remote_id: str) -> bool:
        """Whether something is there under that id, whatever its bytes."""
        ...


@runtime_checkable
class StatsItsCopies(Protocol):
    """A destination whose copies are local files (a folder): each copy's identity (`storage.copy_identity`),
    taken once its bytes were hashed as written, proves it later by a stat, without reading it again."""

    def identity(self, remote_id: str) -> str | None:
        """The copy's identity now; None when it is not there."""
        ...

    def verify_by_identity(self, remote_id: str, identity: str | None, checksum: str) -> bool:
        """`verify`, but a copy whose identity is still the recorded one is not read (None: re-hashed)."""
        ...


@runtime_checkable
class ListsItsFiles(Protocol):
    """A destination whose files can be listed (a folder), so files nobody sent there are found."""

    def all_ids(self) -> set[str]:
        """The ids of every file there (temp files of an unfinished copy left out)."""
        ...


@runtime_checkable
class Resends(Protocol):
    """A destination that takes a kept copy again in place of a bad or missing one (`verify --repair`)."""

    def resend(self, remote_id: str, job: UploadJob) -> str:
        """Send `job` again for the copy recorded as `remote_id`: under that id where ids can be reused (a folder:
        the bad copy is replaced atomically), else as a new item after the bad one is moved away (iCloud: to
        Recently Deleted); returns its id now."""
        ...


@runtime_checkable
class UploadsInGroups(Protocol):
    """A destination that sends several files at once (iCloud: concurrent, paced groups); the upload phase still
    writes the catalog one file at a time, in the order of the jobs."""

    def upload_many(self, jobs: Iterable[UploadJob]) -> Iterator[tuple[UploadJob, str | UploadError]]:
        """(job, remote id or the error) for every job, in the order of `jobs`."""
        ...
