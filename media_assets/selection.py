"""Which new files a batch takes: at most BATCH_MAX_FILES files and BATCH_MAX_GB, in the sources' order, with
the members of a Live Photo or RAW+JPEG pair (same folder, same base name) always in the same batch.

A first import of a whole library thus becomes a row of bounded batches instead of one that lasts hours and
is one failure away from a retry of everything. The same selection answers, before a batch starts, whether
there is anything new at all and how many bytes the batch will bring (for the free-space check)."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from media_assets.catalog.repository import Catalog
from media_assets.settings import GB, Settings
from media_assets.sources.base import ListsCheaply, MediaSource, SourceItem, SourceNeedsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLimits:
    max_files: int
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchLimits:
        return cls(max_files=settings.batches.max_files, max_bytes=settings.batches.max_gb * GB)


def pair_stem(name: str) -> str:
    """The base name shared by the members of a pair: `IMG_0001.HEIC`, `IMG_0001.MOV` and icloudpd's
    `IMG_0001_HEVC.MOV` all give `img_0001`."""
    stem = PurePosixPath(name).stem.lower()
    return stem.removesuffix("_hevc")


def _folder(item: SourceItem) -> str:
    """The folder of a folder source's file; an iCloud asset's id (its still and its movie share it)."""
    return item.source_id.rpartition("/")[0]


def pair_groups(items: Iterable[SourceItem]) -> Iterator[list[SourceItem]]:
    """The items grouped by folder and base name, in the order their groups first appear. A source lists a
    folder's files together, so only one folder is held at a time."""
    folder: str | None = None
    groups: dict[str, list[SourceItem]] = {}
    for item in items:
        if _folder(item) != folder:
            yield from groups.values()
            folder, groups = _folder(item), {}
        groups.setdefault(pair_stem(item.original_name), []).append(item)
    yield from groups.values()


@dataclass
class BatchSelection:
    """The new files one batch takes, counted as they are chosen. `full` once a group did not fit: the
    sources hold more than this batch's worth (a backlog)."""

    limits: BatchLimits
    files: int = 0
    bytes: int = 0
    known: int = 0
    full: bool = False
    #: Files this batch chose that another batch registered first, since the last `refill`.
    lost: int = 0
    #: Sources that could not be looked into (the batch itself will find out what they hold).
    unreadable: list[str] = field(default_factory=list)

    def take_from(self, items: Iterable[SourceItem], known: set[tuple[str, str]]) -> Iterator[list[SourceItem]]:
        """The groups of new items that fit, in order; stops at the first that does not (a group bigger than
        a whole batch is taken alone, or it would never be taken)."""
        def new_items() -> Iterator[SourceItem]:
            for item in items:
                if (item.source_id, item.version) in known:
                    self.known += 1
                else:
                    yield item

        for group in pair_groups(new_items()):
            size = sum(item.size or 0 for item in group)
            fits = (self.files + len(group) <= self.limits.max_files
                    and self.bytes + size <= self.limits.max_bytes)
            if not fits and self.files:
                self.full = True
                return
            self.files += len(group)
            self.bytes += size
            yield group

    def taken_elsewhere(self, item: SourceItem) -> None:
        """`item`, chosen by this batch, was registered by another batch scanning at the same moment: it does not
        count against this batch's limits, which then take the next new files instead."""
        self.files -= 1
        self.bytes -= item.size or 0
        self.known += 1
        self.lost += 1

    def scan(self, catalog: Catalog, sources: Mapping[str, MediaSource]) -> Iterator[tuple[MediaSource,
                                                                                               list[SourceItem]]]:
        """Every source in turn, (source, group) for the groups this batch takes."""
        for name, source in sources.items():
            if self.full:
                return
            known = catalog.known_versions(name)
            items = source.scan()
            try:
                for group in self.take_from(items, known):
                    yield source, group
            finally:  # an early stop ends the source's listing (and its transfers) now
                if isinstance(items, Generator):
                    items.close()

    def refill(self, catalog: Catalog, sources: Mapping[str, MediaSource]) -> Iterator[tuple[MediaSource,
                                                                                                 list[SourceItem]]]:
        """For a batch that chose its files in one walk before registering them: the room left by those another
        batch registered first (`taken_elsewhere`), filled by walking again; no walk when there were none."""
        while self.lost:
            self.lost, self.full = 0, False
            yield from self.scan(catalog, sources)


def lists_cheaply(source: MediaSource) -> bool:
    """Whether listing the source is a local walk (a folder) rather than requests (iCloud)."""
    return isinstance(source, ListsCheaply) and source.cheap_listing


def plan_batch(catalog: Catalog, sources: Mapping[str, MediaSource], limits: BatchLimits) -> BatchSelection:
    """What the next batch would take, without taking it: its files and bytes, and whether more wait.

    A source whose listing is more than a local walk (iCloud: requests, and a complete walk counts as its
    periodic full scan) is listed only up to its first new group. A source that cannot be looked into (other
    than one waiting for a settings change) is noted in `unreadable`, so the caller can start the batch and
    let its download phase find out."""
    selection = BatchSelection(limits)
    for name, source in sources.items():
        try:
            for _ in selection.scan(catalog, {name: source}):
                if not lists_cheaply(source):
                    break
        except SourceNeedsSettings:
            raise
        except Exception as error:  # e.g. iCloud wants a 2FA code: the run asks for it
            log.warning("could not look into source %s (%s); a batch will find out", name, error)
            selection.unreadable.append(name)
    return selection
