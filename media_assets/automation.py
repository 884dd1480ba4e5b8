"""When to start the next batch: the rules behind the automation sensor, free of Dagster so tests can call
them directly. A batch starts when the mode allows it, the interval has passed, the daily cap is not reached,
no batch is running, and the sources hold something the catalog does not know yet."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from media_assets.catalog.repository import Catalog
from media_assets.sources.base import MediaSource, SourceNeedsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    start: bool
    reason: str


def decide_next_batch(*, mode: str, interval_minutes: int, max_per_day: int, now: datetime,
                      last_batch_at: datetime | None, batches_today: int, batch_running: bool) -> Decision:
    """Everything but the (costlier) look at the sources."""
    if mode == "once":
        return Decision(False, "PIPELINE_EXECUTION_MODE is 'once': batches start only from the CLI or the UI")
    if batch_running:
        return Decision(False, "the previous batch is still running")
    if batches_today >= max_per_day:
        return Decision(False, f"daily cap of {max_per_day} batches reached")
    if mode == "interval" and last_batch_at is not None:
        due = last_batch_at + timedelta(minutes=interval_minutes)
        if now < due:
            return Decision(False, f"next batch due at {due:%Y-%m-%d %H:%M} UTC")
    return Decision(True, "due")


def sources_have_new_files(catalog: Catalog, sources: Mapping[str, MediaSource]) -> bool:
    """Whether any source offers an item (or a new version of one) the catalog does not know.

    The known keys of a source are read in one query, so a tick costs one folder walk and no per-file query."""
    for name, source in sources.items():
        known = catalog.known_versions(name)
        try:
            if any((item.source_id, item.version) not in known for item in source.scan()):
                return True
        except SourceNeedsSettings:
            raise
        except Exception as error:  # noqa: BLE001 - e.g. iCloud wants a 2FA code: the run asks for it and reports
            log.warning("could not look into source %s (%s); starting a batch to find out", name, error)
            return True
    return False
