"""The first two phases of one batch, run directly (no Dagster), for the tests of the phases after them."""

from __future__ import annotations

from media_assets.defs.instance import Pipeline
from media_assets.phases.common import PhaseContext, run_phase
from media_assets.phases.deduplication import deduplicate
from media_assets.phases.download import download
from media_assets.sources.configured import enabled_sources


def download_and_deduplicate(pipeline: Pipeline, batch_id: str) -> PhaseContext:
    """Create the batch, take its files from the configured sources and deduplicate them; the phase context."""
    pipeline.catalog.create_batch(batch_id)
    ctx = PhaseContext(batch_id=batch_id, settings=pipeline.settings, catalog=pipeline.catalog)
    run_phase("download", ctx, lambda c, o: download(c, o, enabled_sources(pipeline.settings)))
    run_phase("deduplication", ctx, deduplicate)
    return ctx
