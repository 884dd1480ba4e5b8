"""Sorting: move each uploaded file from `bridge/` into `uploaded/YYYY/MM/DD/` by its local capture date, with its
sidecars beside it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from media_assets.catalog.repository import MediaFile
from media_assets.catalog.sidecars import mark_sidecars_sorted, sidecars_by_file
from media_assets.catalog.states import FileState
from media_assets.phases.common import Chunk, PhaseContext, PhaseOutcome, in_chunks
from media_assets.storage import free_target, move_file, safe_name

UNDATED_FOLDER = "undated"


def sort_files(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    """Sorted in chunks (`in_chunks`): the chunk's renames, one sync, one catalog transaction."""
    uploaded = ctx.settings.storage_dir("uploaded")

    def sort(chunk: Chunk) -> None:
        place_sidecars = _sidecar_placer(ctx, chunk)
        for file in chunk:
            staged = ctx.path(file.staged_path or "")
            folder = file.captured_at.strftime("%Y/%m/%d") if file.captured_at else UNDATED_FOLDER
            target = free_target(uploaded / folder, staged.name, file.id, file.output_hash)
            if staged.exists():
                move_file(staged, target, durable=False)
                chunk.wrote(target)
            elif not target.exists():
                raise FileNotFoundError(f"staged file {staged} of {file.original_name!r} is missing")
            # else: a killed run had moved it already; the catalog catches up now.
            place_sidecars(file, target)
            chunk.move(file, FileState.SORTED, sorted_path=ctx.relative(target),
                       detail=f"date from {file.capture_date_tag or file.capture_date_source}")
            outcome.files += 1
            outcome.bytes_out += file.output_size or 0
            outcome.counts[f"date_from_{file.capture_date_source}"] += 1

    in_chunks(ctx, ctx.pending(FileState.UPLOADED), sort)


def _sidecar_placer(ctx: PhaseContext, chunk: Chunk) -> Callable[[MediaFile, Path], None]:
    """What moves a file's sidecars (.AAE, .xmp, Takeout .json) beside its sorted copy, named after it; the
    chunk's sidecars are read in one query and recorded as sorted in one statement."""
    sidecars = sidecars_by_file(ctx.catalog, chunk.ids)
    placed = chunk.gather(functools.partial(mark_sidecars_sorted, ctx.catalog))

    def place(file: MediaFile, sorted_file: Path) -> None:
        original_stem = Path(file.original_name).stem
        for sidecar in sidecars[file.id]:
            if sidecar.sorted_path is not None:
                continue
            name = sidecar.name
            if name.lower().startswith(original_stem.lower()):
                name = sorted_file.stem + name[len(original_stem):]
            target = free_target(sorted_file.parent, safe_name(name), sidecar.id, sidecar.content_hash)
            original = ctx.path(sidecar.original_path)
            if original.exists():
                move_file(original, target, durable=False)
                chunk.wrote(target)
            elif not target.exists():
                raise FileNotFoundError(f"sidecar {original} of {file.original_name!r} is missing")
            # else: a killed run had moved it already; the catalog catches up now.
            placed.append((sidecar.id, ctx.relative(target)))

    return place


def leave_in_bridge(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    """Sorting turned off: the staged copy is the kept copy, with its sidecars beside it."""

    def keep(chunk: Chunk) -> None:
        place_sidecars = _sidecar_placer(ctx, chunk)
        for file in chunk:
            place_sidecars(file, ctx.path(file.staged_path or ""))
            chunk.move(file, FileState.SORTED, sorted_path=file.staged_path, detail="sorting turned off")
            outcome.files += 1

    in_chunks(ctx, ctx.catalog.iter_files(ctx.batch_id, FileState.UPLOADED), keep, progress=False)
