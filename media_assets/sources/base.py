"""The source interface: anything that can list media and hand over its bytes (a folder, iCloud Photos)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


class SourceError(Exception):
    """A source could not hand over one item; `reason` is one sentence for the catalog and the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SourceUnreachable(SourceError):
    """The source itself could not be reached for one item (a share unmounted mid-batch, a service down): the
    item is not at fault, so it is quarantined for now and offered again by the next batch."""


class SourceNeedsSettings(Exception):
    """A source that cannot be read until a person changes its settings (a password the service refused): a
    batch started now would only fail again, so the automation waits instead."""


@dataclass(frozen=True)
class SourceItem:
    """One file a source offers. `refusal` is set when the source already knows it must not be taken."""

    source: str
    source_id: str
    version: str
    original_name: str
    size: int | None = None
    modified: float | None = None
    refusal: str | None = None
    #: The refusal is the source's, not the file's (it could not be reached): the file is offered again later.
    unreachable: bool = False
    #: The capture moment the source itself knows (iCloud's asset date): aware in the place's own zone when
    #: the source recorded one, else naive UTC.
    taken: datetime | None = None
    #: (source id, name) of the files that describe this one and travel with it (.AAE, .xmp, a Takeout .json).
    sidecars: tuple[tuple[str, str], ...] = ()


class MediaSource(Protocol):
    name: str

    def scan(self) -> Iterator[SourceItem]:
        """Every item the source currently offers (known ones too: the download phase skips those)."""
        ...

    def lookup(self, source_id: str) -> SourceItem:
        """The item as it is now, for resuming a download that a crash interrupted."""
        ...

    def open(self, source_id: str) -> AbstractContextManager[BinaryIO]:
        """A binary stream of the item's bytes; raises SourceError when it cannot be read."""
        ...

    def unchanged(self, item_source_id: str, version: str) -> bool:
        """Whether the item still has the version it had when listed (a file growing while copied has not)."""
        ...


@runtime_checkable
class TakesLocalFile(Protocol):
    """A source whose items arrive as local files of its own (iCloud's downloads): the download phase moves
    them into place with `take` instead of copying them from `open`."""

    def take(self, source_id: str, target: Path) -> tuple[int, str]:
        """Move the item's file to `target` atomically: (bytes, sha256)."""
        ...


@runtime_checkable
class ListsCheaply(Protocol):
    """A source whose listing is a local walk (a folder), so planning a batch may list all of it; others
    (iCloud: requests) are listed only up to their first new group."""

    cheap_listing: bool
