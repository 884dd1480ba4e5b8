"""Verification: prove that every file of the batch arrived. A sorted file is verified when its bytes in
`uploaded/` and at every destination match the catalog's checksum (where a destination's own check cannot
prove the bytes, iCloud, a random few of each batch are downloaded back and compared); then every file of the
batch must be verified, a duplicate of a named file, or quarantined with a reason, or the phase fails loudly.
A verified batch then gives back the disk its intermediate copies took (`pruning.py`).

The kept copy and a folder destination's copy were hashed as they were written, and their identity (inode,
size, mtime) recorded then: one whose identity still holds is proven by a stat (re-reading it from the page
cache would prove no more). A random VERIFY_SAMPLE of each batch and place is re-hashed anyway, and so is every
copy without an identity or whose identity changed (only a hash that differs fails it). Durability and bit rot
are proven by `verify --full` and the weekly scrub, which re-hash everything."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

from media_assets.batches import BatchLifecycle
from media_assets.catalog.repository import MediaFile, path_inside_source
from media_assets.catalog.states import FINAL_STATES, FileState
from media_assets.catalog.uploads import Upload
from media_assets.destinations.base import Destination, ReadsBack, StatsItsCopies
from media_assets.icloud.replace import replace_if_configured
from media_assets.phases.common import Chunk, PhaseContext, PhaseFailed, PhaseOutcome, in_chunks
from media_assets.phases.pruning import release_copies
from media_assets.sources.base import MediaSource
from media_assets.storage import holds_checksum

#: The place of the kept copy in a re-hash sample (the others are destination names).
KEPT = "kept"


def verify(ctx: PhaseContext, outcome: PhaseOutcome, destinations: Mapping[str, Destination],
           sources: Mapping[str, MediaSource]) -> None:
    """Verify the batch; once every file is accounted for, release its intermediate copies and the originals
    that are due (`pruning.py`; `sources` tell whether a folder still holds a file)."""
    problems: list[str] = []
    read_back = _read_back_sample(ctx, destinations)
    rehash = _rehash_sample(ctx, destinations)

    def check(chunk: Chunk) -> None:
        uploads = ctx.catalog.uploads_by_file(chunk.ids)
        verified = chunk.gather(ctx.catalog.mark_uploads_verified)  # recorded with the chunk, even if a file fails
        for file in chunk:
            outcome.files += 1
            kept = ctx.path(file.sorted_path or "")
            if not holds_checksum(kept, file.kept_identity, file.output_hash, rehash=(file.id, KEPT) in rehash):
                problems.append(f"{_name(ctx, file)}: kept copy {file.sorted_path} is missing or differs")
                continue
            bad = [row.destination for row in uploads[file.id] if row.status == "uploaded"
                   and not _arrived(destinations, row, file.output_hash or "",
                                    read_back=(file.id, row.destination) in read_back,
                                    rehash=(file.id, row.destination) in rehash)]
            outcome.counts["read_back"] += sum(1 for key in read_back if key[0] == file.id)
            if bad:
                problems.append(f"{_name(ctx, file)}: not found intact at {', '.join(bad)}")
                continue
            verified.append(file.id)
            chunk.move(file, FileState.VERIFIED)
            outcome.bytes_in += file.output_size or 0
            outcome.counts["verified"] += 1

    in_chunks(ctx, ctx.pending(FileState.SORTED), check)
    still = unaccounted(ctx)
    outcome.failed = len(problems)
    if still:
        where = ", ".join(f"{n} {state}" for state, n in sorted(still.items()))
        raise PhaseFailed(f"{sum(still.values())} file(s) of batch {ctx.batch_id} are not accounted for "
                          f"(still {where})" + "".join(f"; {problem}" for problem in problems[:10]))
    # Apart in the metadata: freeing a copy's blocks is file-system work that can outweigh the checks (2 ms a
    # 2 MB file on an ext4 mounted with `discard`, measured), and a seed system that never pruned did neither.
    started = time.perf_counter()
    release_copies(ctx, outcome, sources)
    outcome.measures["pruning_seconds"] = round(time.perf_counter() - started, 3)


def _name(ctx: PhaseContext, file: MediaFile) -> str:
    """How a problem names the file: its path inside its source folder (resolving the folders costs more than a
    file's checks, so only for a file with a problem)."""
    return path_inside_source(file.source_path, ctx.settings.sources.folder_source_paths)


def unaccounted(ctx: PhaseContext) -> dict[str, int]:
    """Files of the batch, by state, that are neither verified, a recorded duplicate, nor quarantined with a
    reason (a file that failed verification is still sorted)."""
    counts = ctx.catalog.count_by_state(ctx.batch_id)
    return {state: n for state, n in counts.items() if FileState(state) not in FINAL_STATES}


def _read_back_sample(ctx: PhaseContext, destinations: Mapping[str, Destination]) -> set[tuple[int, str]]:
    """(file id, destination): a random `bytes_sample` of the batch's uploads at each destination that reads
    bytes back."""
    chosen: set[tuple[int, str]] = set()
    for name, destination in destinations.items():
        if not isinstance(destination, ReadsBack) or destination.bytes_sample <= 0:
            continue
        uploaded = ctx.catalog.uploaded_file_ids(ctx.batch_id, name, FileState.SORTED.value)
        chosen |= {(file_id, name) for file_id in random.sample(uploaded, min(len(uploaded),
                                                                              destination.bytes_sample))}
    return chosen


def _rehash_sample(ctx: PhaseContext, destinations: Mapping[str, Destination]) -> set[tuple[int, str]]:
    """(file id, place): a random VERIFY_SAMPLE of the batch's kept copies, and of its uploads at each destination
    whose copies have an identity, re-hashed even when their identity holds."""
    size = ctx.settings.destinations.verify_sample
    places = {KEPT: ctx.catalog.file_ids(ctx.batch_id, FileState.SORTED)}
    places |= {name: ctx.catalog.uploaded_file_ids(ctx.batch_id, name, FileState.SORTED.value)
               for name, destination in destinations.items() if isinstance(destination, StatsItsCopies)}
    return {(file_id, place) for place, ids in places.items() for file_id in random.sample(ids, min(len(ids), size))}


def _arrived(destinations: Mapping[str, Destination], row: Upload, checksum: str, *, read_back: bool,
             rehash: bool) -> bool:
    destination = destinations.get(row.destination)
    remote_id = row.remote_id
    if destination is None or remote_id is None:
        return False
    if isinstance(destination, StatsItsCopies):
        found = destination.verify_by_identity(remote_id, None if rehash else row.copy_identity, checksum)
    else:
        found = destination.verify(remote_id, checksum)
    return found and (not read_back or (isinstance(destination, ReadsBack)
                                        and destination.verify_bytes(remote_id, checksum)))


def finish_batch(ctx: PhaseContext) -> None:
    """The batch came through: in replace-originals mode its iCloud originals whose verified uploads are the
    same asset go to Recently Deleted, then the batch is marked succeeded."""
    replaced = replace_if_configured(ctx.settings, ctx.catalog, ctx.batch_id)
    if replaced:
        ctx.log.info(f"{replaced} iCloud original(s) moved to Recently Deleted after verified uploads")
    BatchLifecycle(ctx.catalog).succeeded(ctx.batch_id)
