"""The batch lifecycle: ids, the daily count, and status changes with the reason a batch failed."""

from __future__ import annotations

from datetime import datetime, timezone

from media_assets.batches import BatchLifecycle, executions_today, new_batch_id
from media_assets.catalog.repository import Catalog
from media_assets_tests.conftest import present


def test_a_failed_batch_keeps_its_reason_until_it_runs_again(catalog: Catalog) -> None:
    lifecycle = BatchLifecycle(catalog)
    batch_id = lifecycle.create()
    assert present(catalog.batch(batch_id)).status == "created"
    lifecycle.running(batch_id)
    lifecycle.failed(batch_id, "download: the source disk is gone")
    failed = present(catalog.batch(batch_id))
    assert (failed.status, failed.error) == ("failed", "download: the source disk is gone")
    assert failed.finished_at is not None
    lifecycle.running(batch_id)
    lifecycle.succeeded(batch_id)
    assert (present(catalog.batch(batch_id)).status, present(catalog.batch(batch_id)).error) == ("succeeded", None)


def test_batch_ids_in_the_same_second_get_a_counter_and_count_for_the_day(catalog: Catalog) -> None:
    now = datetime(2026, 11, 29, 10, 0, 0, tzinfo=timezone.utc)
    lifecycle = BatchLifecycle(catalog)
    first = lifecycle.create(now=now)
    second = lifecycle.create(now=now)
    assert (first, second) == ("20261129-100000", "20261129-100000-2")
    assert new_batch_id(catalog, now) == "20261129-100000-3"
    assert executions_today(catalog) == 2
