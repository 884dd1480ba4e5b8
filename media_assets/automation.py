"""When to start the next batch: the rules behind the automation sensor, free of Dagster so tests can call
them directly. A batch starts when the mode allows it, the interval has passed (or the last batch left a
backlog), the daily cap is not reached, no batch is running, the sources hold something the catalog does not
know yet, and the disk has room for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from media_assets.catalog.repository import Catalog
from media_assets.disk import space_shortfall
from media_assets.selection import BatchLimits, plan_batch
from media_assets.settings import Settings
from media_assets.sources.base import MediaSource

NOTHING_NEW = "nothing new in the sources"


@dataclass(frozen=True)
class Decision:
    start: bool
    reason: str


def decide_next_batch(*, mode: str, interval_minutes: int, max_per_day: int, now: datetime,
                      last_batch_at: datetime | None, batches_today: int, batch_running: bool,
                      backlog: bool = False) -> Decision:
    """Everything but the (costlier) look at the sources. `backlog`: the last batch left new files behind (it
    was full), so the next one is due at once, interval or not."""
    if mode == "once":
        return Decision(False, "PIPELINE_EXECUTION_MODE is 'once': batches start only from the CLI or the UI")
    if batch_running:
        return Decision(False, "the previous batch is still running")
    if batches_today >= max_per_day:
        return Decision(False, f"daily cap of {max_per_day} batches reached")
    if backlog:
        return Decision(True, "backlog: the sources hold more than one batch's worth")
    if mode == "interval" and last_batch_at is not None:
        due = last_batch_at + timedelta(minutes=interval_minutes)
        if now < due:
            return Decision(False, f"next batch due at {due:%Y-%m-%d %H:%M} UTC")
    return Decision(True, "due")


def check_sources(settings: Settings, catalog: Catalog, sources: Mapping[str, MediaSource]) -> Decision:
    """Whether the sources hold something new (one query per source, one walk of each) and the disk has room
    for the batch that would take it. Raises SourceNeedsSettings when a source waits for a person."""
    plan = plan_batch(catalog, sources, BatchLimits.from_settings(settings))
    if not plan.files and not plan.unreadable:
        return Decision(False, NOTHING_NEW)
    shortfall = space_shortfall(settings, plan.bytes)
    if shortfall is not None:
        return Decision(False, shortfall)
    more = " (and more for the batches after it)" if plan.full else ""
    return Decision(True, f"{plan.files} new file(s), {plan.bytes / 1e9:.2f} GB{more}")


#: How long a failed batch waits before each automatic re-run (the daemon's retry sensor); after the last one
#: a person is asked to look.
RETRY_BACKOFF = (timedelta(minutes=10), timedelta(hours=1), timedelta(hours=6))


def retry_due(failed_at: datetime, retries_done: int, now: datetime) -> bool | None:
    """Whether the next automatic re-run of a batch that failed at `failed_at` is due; None when all of them
    were used (the batch needs a person)."""
    if retries_done >= len(RETRY_BACKOFF):
        return None
    return now - failed_at >= RETRY_BACKOFF[retries_done]
