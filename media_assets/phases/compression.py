"""Compression: decide per file whether a smaller encoding is worth it. Until the encoders land, every file
passes through unchanged, and the catalog records that decision so nothing pretends to have been compressed."""

from __future__ import annotations

from media_assets.catalog.states import FileState
from media_assets.phases.common import PhaseContext, PhaseOutcome


def compress(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    _pass_through(ctx, outcome, decision="kept original: no encoder for this type yet")


def keep_originals(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    """Compression turned off: the originals are what gets staged."""
    _pass_through(ctx, outcome, decision="kept original: compression turned off")


def _pass_through(ctx: PhaseContext, outcome: PhaseOutcome, *, decision: str) -> None:
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.UNIQUE):
        ctx.catalog.move(file, FileState.COMPRESSED, detail=decision, output_path=file.original_path,
                         output_size=file.size_bytes, output_hash=file.content_hash, compression_decision=decision)
        outcome.files += 1
        outcome.bytes_in += file.size_bytes or 0
        outcome.bytes_out += file.size_bytes or 0
        outcome.counts["kept_original"] += 1
