"""Batches, free of Dagster: their ids, the daily count, and every change of a batch's status.

A batch's status is written only through `BatchLifecycle`, whoever notices the change (the CLI, a phase, a
sensor, an asset check), so the rules (a finished batch gets `finished_at`, a failed one says why) are kept in
one place."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from enum import Enum

from media_assets.catalog.locks import new_batch_id_alone
from media_assets.catalog.repository import Catalog


class BatchStatus(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BatchStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped this process while it ran batch `batch_id`, now marked failed ("stopped"). A bare
    KeyboardInterrupt is a stop before any batch of this process started (while it waited for a run slot)."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(batch_id)
        self.batch_id = batch_id


#: What `new_batch_id` makes: `YYYYMMDD-HHMMSS`, with `-N` when two batches start in the same second.
_BATCH_ID = re.compile(r"\d{8}-\d{6}(-\d+)?")


def is_batch_id(key: str) -> bool:
    return _BATCH_ID.fullmatch(key) is not None


def new_batch_id(catalog: Catalog, now: datetime | None = None) -> str:
    """`YYYYMMDD-HHMMSS` in UTC, with a counter when two batches start in the same second."""
    base = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    candidate, n = base, 1
    while catalog.batch(candidate) is not None:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def executions_today(catalog: Catalog, now: datetime | None = None) -> int:
    """Batches created since midnight UTC: what MAX_EXECUTIONS_PER_DAY counts."""
    now = now or datetime.now(timezone.utc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return catalog.batches_created_since(midnight)


def seconds_until_tomorrow(now: datetime | None = None) -> float:
    now = now or datetime.now(timezone.utc)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


class BatchLifecycle:
    """The one writer of `batches.status`: created -> running -> succeeded | failed (with the reason)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def create(self, batch_id: str | None = None, now: datetime | None = None) -> str:
        """Record a batch (a new id unless one is given); creating an existing batch changes nothing. A new id is
        chosen under the batch-creation lock, so two processes starting in the same second never share one."""
        if batch_id is not None:
            self.catalog.create_batch(batch_id)
            return batch_id

        def choose_and_record() -> str:
            new_id = new_batch_id(self.catalog, now)
            self.catalog.create_batch(new_id)
            return new_id

        return new_batch_id_alone(self.catalog.conninfo, choose_and_record)

    def start(self, batch_id: str) -> None:
        """The batch's run begins (its first phase): recorded if the UI or a backfill made the partition."""
        self.create(batch_id)
        self.running(batch_id)

    def running(self, batch_id: str) -> None:
        self.catalog.set_batch_status(batch_id, BatchStatus.RUNNING.value)

    def succeeded(self, batch_id: str) -> None:
        self.catalog.set_batch_status(batch_id, BatchStatus.SUCCEEDED.value)

    def failed(self, batch_id: str, reason: str) -> None:
        """Mark the batch failed, so `retry-failed` finds it; `reason` is kept with it for the owner."""
        self.catalog.set_batch_status(batch_id, BatchStatus.FAILED.value, error=reason)
