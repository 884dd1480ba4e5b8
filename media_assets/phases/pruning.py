"""After a verified batch: give back the disk its intermediate copies took, and the originals KEEP_ORIGINALS
lets go, so the library costs about one kept copy plus each destination's copy instead of four.

- The compressed output and any staged copy left in `bridge/` go once the kept copy in `uploaded/` holds the
  same bytes: proven by its identity while that holds (as verification just did), else re-hashed (file
  preparation renames compression's output into `bridge/`, so since then only a staged copy left by sorting
  turned off, or an output of a batch staged before, remain).
- An original goes when its source's rule allows (until_verified, days:N after the batch was verified, or
  always kept) and, for a folder source, only while the folder still holds that very version of the file. Its
  sidecars (.AAE, .xmp) still beside it go with it: those of a duplicate, which is never sorted (a kept
  file's sidecars were moved beside its kept copy).
Removals go in chunks: each chunk's are recorded in one catalog transaction, then done. Every removal is
recorded in the catalog first (`*_pruned_at`), so `verify --full` tells it from a loss."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from media_assets.catalog.sidecars import sidecars_by_file
from media_assets.catalog.states import FileState
from media_assets.disk import DEFAULT_KEEP_BY_SOURCE, KeepOriginals
from media_assets.phases.common import Chunk, PhaseContext, PhaseOutcome, in_chunks
from media_assets.sources.base import MediaSource
from media_assets.storage import holds_checksum


def release_copies(ctx: PhaseContext, outcome: PhaseOutcome, sources: Mapping[str, MediaSource]) -> None:
    """Remove the batch's intermediate copies and the originals that are due (of this batch and earlier ones),
    in chunks (`in_chunks`): the chunk's removals are recorded in one transaction, then done."""
    in_chunks(ctx, ctx.catalog.iter_files(ctx.batch_id, FileState.VERIFIED),
              lambda chunk: _release_intermediates(ctx, outcome, chunk), progress=False)
    _release_originals(ctx, outcome, KeepOriginals.from_settings(ctx.settings), sources)
    for folder in ("originals", "compressed", "bridge"):
        with contextlib.suppress(OSError):  # not empty (kept originals, sorting off) or already gone
            (ctx.settings.storage_dir(folder) / ctx.batch_id).rmdir()


def _release_intermediates(ctx: PhaseContext, outcome: PhaseOutcome, chunk: Chunk) -> None:
    pruned_outputs = chunk.gather(functools.partial(ctx.catalog.mark_pruned, copy="output"))
    for file in chunk:
        kept = ctx.path(file.sorted_path or "")
        copies = {path for path in (file.output_path, file.staged_path)
                  if path and path not in (file.original_path, file.sorted_path) and ctx.path(path).is_file()}
        if not copies:
            continue
        if not holds_checksum(kept, file.kept_identity, file.output_hash):
            ctx.log.warning(f"kept copy of {file.original_name!r} differs from its checksum; its compressed and "
                            "staged copies stay")
            outcome.counts["intermediate_copies_kept"] += len(copies)
            continue
        if file.output_path in copies:
            pruned_outputs.append(file.id)
        for path in copies:
            chunk.then(functools.partial(_remove, ctx.path(path), outcome, "intermediate_copies_removed"))


def _release_originals(ctx: PhaseContext, outcome: PhaseOutcome, keep: KeepOriginals,
                       sources: Mapping[str, MediaSource]) -> None:
    now = datetime.now(timezone.utc)
    for source in DEFAULT_KEEP_BY_SOURCE.keys() | sources.keys():
        keep_for = keep.keep_for(source)
        if keep_for is None:
            continue
        current = ctx.batch_id if not keep_for else None  # this batch is verified just now
        in_chunks(ctx, ctx.catalog.originals_due(source, verified_before=now - keep_for, current_batch=current),
                  functools.partial(_release_due_originals, ctx, outcome, sources.get(source)), progress=False)


def _release_due_originals(ctx: PhaseContext, outcome: PhaseOutcome, offered: MediaSource | None,
                           chunk: Chunk) -> None:
    sidecars = sidecars_by_file(ctx.catalog, chunk.ids)
    pruned_originals = chunk.gather(functools.partial(ctx.catalog.mark_pruned, copy="original"))
    for file in chunk:
        if offered is not None and not offered.unchanged(file.source_id, file.source_version):
            outcome.counts["originals_kept_source_changed"] += 1  # ours may be the last copy: keep it
            continue
        # its unsorted sidecars count as pruned with it
        pruned_originals.append(file.id)
        chunk.then(functools.partial(_remove, ctx.path(file.original_path or ""), outcome, "originals_removed"))
        for sidecar in sidecars[file.id]:
            if sidecar.sorted_path is None:
                chunk.then(functools.partial(_remove, ctx.path(sidecar.original_path), outcome, "sidecars_removed"))


def _remove(path: Path, outcome: PhaseOutcome, counter: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        size = path.stat().st_size
        path.unlink()
        outcome.counts[counter] += 1
        outcome.counts["bytes_freed"] += size
