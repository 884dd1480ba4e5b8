"""Deduplication: a file whose exact bytes the catalog already holds (in any batch, uploaded or not) is
recorded as a duplicate of the earliest such file and stops flowing; it is never deleted from its source."""

from __future__ import annotations

from media_assets.catalog.states import FileState
from media_assets.phases.common import PhaseContext, PhaseOutcome


def deduplicate(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.DOWNLOADED):
        outcome.files += 1
        keeper = ctx.catalog.find_keeper_by_hash(file.content_hash or "", file.size_bytes or 0, file.id)
        if keeper is None:
            ctx.catalog.move(file, FileState.UNIQUE)
            outcome.counts["unique"] += 1
        else:
            ctx.catalog.mark_duplicate(file, keeper, kind="exact")
            outcome.counts["exact_duplicates"] += 1
            outcome.bytes_in += file.size_bytes or 0


def pass_all_as_unique(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    """Deduplication turned off: every downloaded file flows on."""
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.DOWNLOADED):
        ctx.catalog.move(file, FileState.UNIQUE, detail="deduplication turned off")
        outcome.files += 1
