"""Download: take new files from the sources into `originals/<batch>/`, check what they are, and record them.
A batch takes at most BATCH_MAX_FILES files and BATCH_MAX_GB (`selection.py`); the rest waits for the next.

Each file is streamed to a temp name, hashed on the way, and renamed; the source is only read. Worker processes
identify and date the copies (`media/examine.py`) while the next files are copied. A file whose first
bytes say it is no photo or video, or that is bigger than its kind's limit, is quarantined by its source path
before a byte is copied; one that turns out broken is moved to `quarantine/<batch>/`. Either way the catalog
records the reason and the batch goes on. A file whose source could not be reached (an unmounted share, iCloud
down) is quarantined as `source_unreachable`: the next batch offers it again (`Catalog.known_versions`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from typing_extensions import Unpack

from media_assets.catalog.repository import FileChanges, MediaFile
from media_assets.catalog.sidecars import record_sidecar
from media_assets.catalog.states import FileState
from media_assets.media.dates import CaptureDate, KnownDate, capture_date, takeout_date
from media_assets.media.examine import Dating, Examined, examine
from media_assets.media.identify import MediaKind, UnsupportedMedia, sniff_stream, true_extension
from media_assets.phases.common import PhaseContext, PhaseOutcome
from media_assets.phases.workers import Workers, available_cores
from media_assets.selection import BatchLimits, BatchSelection, lists_cheaply, plan_batch
from media_assets.sources.base import MediaSource, SourceError, SourceItem, SourceUnreachable, TakesLocalFile
from media_assets.storage import move_file, remove_partials, safe_name, write_atomically

GB = 1_000_000_000
#: The biggest file of each kind taken from a source (a 200-megapixel TIFF is 0.6 GB; a phone's hour of 4K
#: video about 25 GB): anything bigger is a disk image or a dump with a media header, refused uncopied.
SIZE_LIMITS = {MediaKind.PHOTO: 2 * GB, MediaKind.VIDEO: 100 * GB}
#: Fewer files than this per worker are identified in one thread of the parent: starting a pool would cost more.
POOL_MIN_FILES_PER_WORKER = 8
#: Files copied and waiting to be identified, per worker. Identifying a HEIC (a full decode, ~0.5 s) takes as long
#: as 25 JPEGs (at 1/8 scale): the results are recorded in order, and with few copied ahead the other workers
#: would wait behind it. The copies are on disk already (a kill leaves them to the re-run, as any copy not recorded).
COPIED_AHEAD_PER_WORKER = 16


def download(ctx: PhaseContext, outcome: PhaseOutcome, sources: Mapping[str, MediaSource]) -> None:
    originals = ctx.settings.storage_dir("originals") / ctx.batch_id
    remove_partials(originals)
    left = ctx.catalog.count_by_state(ctx.batch_id).get(FileState.DISCOVERED.value, 0)
    _take_all(ctx, outcome, _taken_again(ctx, outcome, sources), expected=left)

    batch = ctx.catalog.batch(ctx.batch_id)
    if batch is not None and batch.scanned_at is not None:
        return  # a re-run of this batch only finishes what it had found
    # A re-run after a crash mid-scan counts what the batch already took against its limits.
    taken_files, taken_bytes = ctx.catalog.batch_size(ctx.batch_id)
    limits = BatchLimits.from_settings(ctx.settings)
    selection = BatchSelection(limits, files=taken_files, bytes=taken_bytes)
    chosen: Iterable[tuple[MediaSource, list[SourceItem]]]
    if all(lists_cheaply(source) for source in sources.values()):
        # One walk of the sources chooses the batch's files (a batch's worth, held until they are registered)
        # and tells the progress ETA how many are coming: the walk lists every known file too, so it is done once.
        first = list(selection.scan(ctx.catalog, sources))
        coming = selection.files - taken_files
        chosen = chain(first, _counted(ctx, selection.refill(ctx.catalog, sources)))
    else:
        # A source listed by requests is walked as its files are taken (the walk starts their transfers); a plan
        # lists the sources first, up to such a source's first new files, for the ETA.
        chosen = selection.scan(ctx.catalog, sources)
        coming = plan_batch(ctx.catalog, sources, limits).files
    ctx.progress.expect(ctx.progress.done + coming)
    _take_all(ctx, outcome, _registered(ctx, selection, chosen), expected=coming)
    outcome.counts["already_known"] += selection.known
    if selection.full:
        outcome.counts["left_for_next_batch"] += 1
        ctx.log.info(f"batch {ctx.batch_id} is full ({selection.files} files, {selection.bytes / 1e9:.1f} GB); "
                     "the sources hold more, for the next batch")
    ctx.catalog.mark_batch_scanned(ctx.batch_id, backlog=selection.full)


def _counted(ctx: PhaseContext, chosen: Iterable[tuple[MediaSource, list[SourceItem]]]
             ) -> Iterator[tuple[MediaSource, list[SourceItem]]]:
    """Groups chosen after the ETA was set, each added to the files the progress expects."""
    for source, group in chosen:
        ctx.progress.expect((ctx.progress.total or 0) + len(group))
        yield source, group


#: A file of the batch, its source, and what the source says of it.
Offered = tuple[MediaFile, MediaSource, SourceItem]


def _taken_again(ctx: PhaseContext, outcome: PhaseOutcome, sources: Mapping[str, MediaSource]) -> Iterator[Offered]:
    """The files a killed run of this batch registered and did not finish."""
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.DISCOVERED):
        source = sources.get(file.source)
        if source is None:
            _quarantine(ctx, outcome, file, f"its source '{file.source}' is no longer enabled",
                        source_unreachable=True)
            ctx.progress.advance()
            continue
        yield file, source, source.lookup(file.source_id)


def _registered(ctx: PhaseContext, selection: BatchSelection,
                chosen: Iterable[tuple[MediaSource, list[SourceItem]]]) -> Iterator[Offered]:
    """The new files the selection chose, each registered in the catalog as it comes."""
    for source, group in chosen:
        for item in group:
            file_id = ctx.catalog.register_file(ctx.batch_id, source=item.source, source_id=item.source_id,
                                                source_version=item.version, original_name=item.original_name,
                                                size_bytes=item.size)
            if file_id is None:
                selection.taken_elsewhere(item)
                ctx.progress.advance()
            else:
                yield ctx.catalog.get_file(file_id), source, item


@dataclass(frozen=True)
class Copied:
    """A file copied into `originals/<batch>/` and not yet identified."""

    file: MediaFile
    item: SourceItem
    source: MediaSource
    target: Path
    size: int
    digest: str


def _take_all(ctx: PhaseContext, outcome: PhaseOutcome, offered: Iterable[Offered], *, expected: int) -> None:
    """Copy each offered file here (the parent: sources, the catalog) while worker processes identify and date
    the ones copied before it (`examine`, most of the work: the decode that proves a photo whole); the results are
    recorded in the order the files came, one transaction each. Fewer than POOL_MIN_FILES_PER_WORKER files a
    worker are examined in one thread of the parent (no process to start), still beside the copying."""
    cores = available_cores()
    with Workers(cores if expected >= cores * POOL_MIN_FILES_PER_WORKER else 1,
                 in_flight_per_worker=COPIED_AHEAD_PER_WORKER, working_on=ctx.progress.working_on) as workers:
        tasks = ((copied, (copied.target, None if copied.item.sidecars else _dating(ctx, copied)))
                 for copied in _copies(ctx, outcome, offered))
        for copied, examined in workers.map(examine, tasks, name=lambda copied: copied.file.original_name):
            _record(ctx, outcome, copied, examined)


def bring_item(source: MediaSource, source_id: str, target: Path, *, size: int | None = None) -> tuple[int, str]:
    """The item's bytes at `target`, atomically: (bytes, sha256). A source that already holds them in a local
    file of its own (iCloud's downloads) moves it with `take`; any other is copied from `open`, once its first
    bytes and `size` showed it is media within its kind's limit (UnsupportedMedia otherwise, nothing copied)."""
    if isinstance(source, TakesLocalFile):
        return source.take(source_id, target)
    with source.open(source_id) as stream:
        if size:  # an empty file is copied, and identify says what is wrong with it
            refuse_unless_media(stream, target.name, size)
        return write_atomically(stream, target)


def refuse_unless_media(stream: BinaryIO, name: str, size: int) -> None:
    kind, media_format = sniff_stream(stream, name)
    if size > SIZE_LIMITS[kind]:
        raise UnsupportedMedia(f"{media_format} {kind.value} of {_readable(size)}, above the "
                               f"{_readable(SIZE_LIMITS[kind])} limit for {kind.value}s")


def _readable(size: int) -> str:
    for unit, factor in (("GB", GB), ("MB", 1_000_000), ("kB", 1_000)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def _copies(ctx: PhaseContext, outcome: PhaseOutcome, offered: Iterable[Offered]) -> Iterator[Copied]:
    """Each offered file copied (and hashed on the way); one the source refuses, that is no media by its first
    bytes, or that changed while it was copied is quarantined instead, and counted done."""
    for file, source, item in offered:
        with ctx.progress.working_on(file.original_name):
            copied = _copy(ctx, outcome, file, source, item)
        if copied is None:
            ctx.progress.advance()
        else:
            yield copied


def _copy(ctx: PhaseContext, outcome: PhaseOutcome, file: MediaFile, source: MediaSource,
          item: SourceItem) -> Copied | None:
    outcome.files += 1
    if item.refusal:
        _quarantine(ctx, outcome, file, item.refusal, source_unreachable=item.unreachable)
        return None
    target = ctx.settings.storage_dir("originals") / ctx.batch_id / f"{file.id}-{safe_name(file.original_name)}"
    try:
        size, digest = bring_item(source, file.source_id, target, size=item.size)
    except (SourceError, UnsupportedMedia) as error:
        _quarantine(ctx, outcome, file, error.reason, source_unreachable=isinstance(error, SourceUnreachable))
        return None
    if not source.unchanged(file.source_id, item.version):
        target.unlink(missing_ok=True)
        _quarantine(ctx, outcome, file, "file changed while it was being copied; "
                                        "its new version is taken in a later batch")
        return None
    outcome.bytes_in += size
    return Copied(file, item, source, target, size, digest)


def _dating(ctx: PhaseContext, copied: Copied) -> Dating:
    known = [KnownDate("icloud_asset_date", copied.item.taken)] if copied.item.taken else []
    return Dating(copied.file.original_name, copied.item.modified, known, ctx.settings.dates.home_timezone)


def _record(ctx: PhaseContext, outcome: PhaseOutcome, copied: Copied, examined: Examined) -> None:
    """Record what the workers found: the file downloaded (renamed to its true extension, its sidecars beside
    it), or moved to `quarantine/<batch>/` with the reason."""
    file, target = copied.file, copied.target
    ctx.progress.advance()
    if examined.identified is None:
        quarantined = ctx.settings.storage_dir("quarantine") / ctx.batch_id / target.name
        move_file(target, quarantined)
        _quarantine(ctx, outcome, file, examined.refusal, original_path=ctx.relative(quarantined),
                    size_bytes=copied.size, content_hash=copied.digest)
        return
    identified = examined.identified
    if (extension := true_extension(target.name, identified.format)) is not None:
        # Bytes that differ from their extension (HEIC named .JPG) go on under the extension of what they are.
        named = target.with_name(f"{target.stem if '.' in target.name else target.name}{extension}")
        move_file(target, named)
        target = named
    taken = examined.taken or _date_with_sidecars(ctx, copied, target, identified.kind)
    ctx.catalog.move(file, FileState.DOWNLOADED, detail=identified.note, original_path=ctx.relative(target),
                     size_bytes=copied.size,
                     content_hash=copied.digest, media_type=identified.kind.value, media_format=identified.format,
                     width=identified.width, height=identified.height, captured_at=taken.local,
                     capture_utc_offset_minutes=taken.utc_offset_minutes, capture_date_source=taken.source,
                     capture_date_tag=taken.tag, capture_time_zone=taken.time_zone,
                     capture_time_zone_source=taken.time_zone_source, error=None)
    outcome.counts[identified.kind.value + "s"] += 1


def _date_with_sidecars(ctx: PhaseContext, copied: Copied, target: Path, kind: MediaKind) -> CaptureDate:
    """Bring the file's sidecars beside it and date it with them (a Takeout JSON's date, an XMP's)."""
    dating = _dating(ctx, copied)
    sidecars = _bring_sidecars(ctx, copied.file, copied.source, copied.item)
    known = [*dating.known_dates,
             *(from_takeout for sidecar in sidecars if (from_takeout := takeout_date(sidecar)) is not None)]
    return capture_date(target, is_video=kind is MediaKind.VIDEO, original_name=dating.original_name,
                        file_mtime=dating.file_mtime, known_dates=known, home_zone=dating.home_zone,
                        xmp_sidecars=[sidecar for sidecar in sidecars if sidecar.suffix.lower() == ".xmp"])


def _bring_sidecars(ctx: PhaseContext, file: MediaFile, source: MediaSource, item: SourceItem) -> list[Path]:
    """Copy the item's sidecars beside its original (`<id>-<name>`) and record them; one that cannot be read is
    left in the source with a warning (the photo itself is whole)."""
    brought = []
    for sidecar_id, sidecar_name in item.sidecars:
        target = ctx.settings.storage_dir("originals") / ctx.batch_id / f"{file.id}-{safe_name(sidecar_name)}"
        try:
            with source.open(sidecar_id) as stream:
                _, digest = write_atomically(stream, target)
        except (SourceError, OSError) as error:
            ctx.log.warning(f"sidecar {sidecar_name!r} of {file.original_name!r} not taken: {error}")
            continue
        record_sidecar(ctx.catalog, file.id, sidecar_name, ctx.relative(target), digest)
        brought.append(target)
    return brought


def _quarantine(ctx: PhaseContext, outcome: PhaseOutcome, file: MediaFile, reason: str,
                **changes: Unpack[FileChanges]) -> None:
    changes["error"] = reason
    ctx.catalog.move(file, FileState.QUARANTINED, detail=reason, **changes)
    outcome.counts["quarantined"] += 1
    ctx.log.warning(f"quarantined {file.original_name!r}: {reason}")
