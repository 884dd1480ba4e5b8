"""Sorting: move each uploaded file from `bridge/` into `uploaded/YYYY/MM/DD/` by its local capture date."""

from __future__ import annotations

from media_assets.catalog.states import FileState
from media_assets.phases.common import PhaseContext, PhaseOutcome
from media_assets.storage import free_target, move_file

UNDATED_FOLDER = "undated"


def sort_files(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    uploaded = ctx.settings.storage_dir("uploaded")
    for file in ctx.files(FileState.UPLOADED):
        staged = ctx.path(file.staged_path or "")
        folder = file.captured_at.strftime("%Y/%m/%d") if file.captured_at else UNDATED_FOLDER
        target = free_target(uploaded / folder, staged.name, file.id, file.output_hash)
        if staged.exists():
            move_file(staged, target)
        elif not target.exists():
            raise FileNotFoundError(f"staged file {staged} of {file.original_name!r} is missing")
        # else: a killed run had moved it already; the catalog catches up now.
        ctx.catalog.move(file, FileState.SORTED, sorted_path=ctx.relative(target),
                         detail=f"date from {file.capture_date_source}")
        outcome.files += 1
        outcome.bytes_out += file.output_size or 0
        outcome.counts[f"date_from_{file.capture_date_source}"] += 1


def leave_in_bridge(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    """Sorting turned off: the staged copy is the kept copy."""
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.UPLOADED):
        ctx.catalog.move(file, FileState.SORTED, sorted_path=file.staged_path, detail="sorting turned off")
        outcome.files += 1
