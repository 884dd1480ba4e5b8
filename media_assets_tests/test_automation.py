"""The automation: when a batch starts, and the sensor that creates it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterRunStatus, SensorResult, SkipReason, build_sensor_context

from media_assets.automation import Decision, check_sources, decide_next_batch
from media_assets.defs.batch.sensors import batch_sensor
from media_assets.defs.instance import Pipeline
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch
from media_assets.sources.base import SourceItem
from media_assets.sources.configured import enabled_sources
from media_assets_tests.conftest import ListingOnlySource, MakePipeline, present

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def _decide(**overrides: Any) -> Decision:
    args: dict[str, Any] = dict(mode="interval", interval_minutes=60, max_per_day=24, now=NOW, last_batch_at=None,
                batches_today=0, batch_running=False)
    args.update(overrides)
    return decide_next_batch(**args)


def test_interval_daily_cap_overlap_and_mode() -> None:
    assert _decide().start
    assert not _decide(last_batch_at=NOW - timedelta(minutes=59)).start
    assert _decide(last_batch_at=NOW - timedelta(minutes=60)).start
    assert "daily cap of 24" in _decide(batches_today=24).reason
    assert "still running" in _decide(batch_running=True).reason
    assert "'once'" in _decide(mode="once").reason
    assert _decide(mode="continuous", last_batch_at=NOW - timedelta(minutes=1)).start


def test_new_files_are_noticed_and_known_ones_are_not(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    sources = enabled_sources(pipeline.settings)
    assert not check_sources(pipeline.settings, pipeline.catalog, sources).start
    sample.make_photo(library / "a.jpg", seed=1, size=(64, 48))
    assert check_sources(pipeline.settings, pipeline.catalog, sources).start
    run_batch(pipeline)
    assert not check_sources(pipeline.settings, pipeline.catalog, sources).start


#: The pipeline, a Dagster instance and the resources the sensors of a test run with.
SensorSetup = tuple[Pipeline, DagsterInstance, Mapping[str, object]]


@pytest.fixture
def sensor_setup(make_pipeline: MakePipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SensorSetup:
    pipeline = make_pipeline(PIPELINE_EXECUTION_MODE="interval", PIPELINE_EXECUTION_INTERVAL_MINUTES="60")
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    resources: Mapping[str, object] = {"settings": settings, "catalog": CatalogResource(settings=settings)}
    instance = DagsterInstance.ephemeral()
    return pipeline, instance, resources


def _evaluate(instance: DagsterInstance, resources: Mapping[str, object]) -> object:
    with build_sensor_context(instance=instance, resources=resources) as context:
        return batch_sensor(context)


def test_sensor_creates_a_batch_with_an_idempotent_run_key(sensor_setup: SensorSetup) -> None:
    pipeline, instance, resources = sensor_setup
    library = pipeline.settings.sources.folder_source_paths[0]

    skipped = _evaluate(instance, resources)
    assert isinstance(skipped, SkipReason) and "nothing new" in (skipped.skip_message or "")

    sample.make_photo(library / "a.jpg", seed=1, size=(64, 48))
    result = _evaluate(instance, resources)
    assert isinstance(result, SensorResult)
    [request] = present(result.run_requests)
    assert request.run_key == request.partition_key
    assert present(result.dynamic_partitions_requests)[0].partition_keys == [request.partition_key]
    assert pipeline.catalog.batch(present(request.partition_key)) is not None

    again = _evaluate(instance, resources)
    assert isinstance(again, SkipReason) and "next batch due" in (again.skip_message or "")


def test_sensor_waits_while_a_batch_runs(sensor_setup: SensorSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline, instance, resources = sensor_setup
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    from media_assets.definitions import defs

    job = defs.resolve_job_def("media_batch")
    instance.create_run_for_job(job, status=DagsterRunStatus.STARTED, tags={"dagster/partition": "x"})
    result = _evaluate(instance, resources)
    assert isinstance(result, SkipReason) and "still running" in (result.skip_message or "")


def test_sensor_honours_the_daily_cap(sensor_setup: SensorSetup, make_pipeline: MakePipeline) -> None:
    _, instance, resources = sensor_setup
    pipeline = make_pipeline(PIPELINE_MAX_EXECUTIONS_PER_DAY="1", PIPELINE_EXECUTION_MODE="continuous")
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    assert isinstance(_evaluate(instance, resources), SensorResult)
    capped = _evaluate(instance, resources)
    assert isinstance(capped, SkipReason) and "daily cap" in (capped.skip_message or "")


def test_a_source_that_cannot_be_looked_into_lets_the_run_find_out(make_pipeline: MakePipeline) -> None:
    class NeedsACode(ListingOnlySource):
        name = "icloud"

        def scan(self) -> Iterator[SourceItem]:
            raise RuntimeError("iCloud sign-in needs a 2FA code; the next run asks for it")
            yield

    pipeline = make_pipeline()
    assert check_sources(pipeline.settings, pipeline.catalog, {"icloud": NeedsACode()}).start


def test_a_run_whose_worker_died_is_reclaimed_and_does_not_block_the_automation(sensor_setup: SensorSetup,
                                                                                make_pipeline: MakePipeline) -> None:
    import subprocess
    import sys

    from media_assets.defs.runs import RUNNER_PROCESS_TAG, this_process

    _, instance, resources = sensor_setup
    pipeline = make_pipeline(PIPELINE_EXECUTION_MODE="continuous")
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    host = this_process().split(":")[0]
    pipeline.catalog.create_batch("killed-batch")
    pipeline.catalog.set_batch_status("killed-batch", "running")
    from media_assets.definitions import defs

    run = instance.create_run_for_job(defs.resolve_job_def("media_batch"), status=DagsterRunStatus.STARTED,
                                      tags={"dagster/partition": "killed-batch", RUNNER_PROCESS_TAG: f"{host}:{gone}"})

    result = _evaluate(instance, resources)
    assert isinstance(result, SensorResult), "the dead run no longer counts as a running batch"
    assert present(instance.get_run_by_id(run.run_id)).status is DagsterRunStatus.FAILURE
    assert present(pipeline.catalog.batch("killed-batch")).status == "failed"


def test_an_unpartitioned_run_such_as_the_library_stats_refresh_does_not_hold_batches_back(
        sensor_setup: SensorSetup) -> None:
    pipeline, instance, resources = sensor_setup
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    from media_assets.definitions import defs

    instance.create_run_for_job(defs.resolve_job_def("media_batch"), status=DagsterRunStatus.STARTED)
    assert isinstance(_evaluate(instance, resources), SensorResult)


def _evaluate_retries(instance: DagsterInstance, resources: Mapping[str, object],
                      cursor: str | None) -> tuple[object, str | None]:
    """The retry sensor's answer and its cursor afterwards."""
    from media_assets.defs.batch.sensors import retry_sensor

    with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        return retry_sensor(context), context.cursor


def test_a_failed_batch_is_re_run_after_10_min_1_h_and_6_h_then_a_person_is_asked(
        sensor_setup: SensorSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    import media_assets.defs.batch.sensors as automation_defs
    from media_assets.definitions import defs

    pipeline, instance, resources = sensor_setup
    alerts: list[str] = []
    monkeypatch.setattr(automation_defs, "send_alert", lambda key, text, settings: alerts.append(text))
    cursor = None
    pipeline.catalog.create_batch("b1")
    pipeline.catalog.set_batch_status("b1", "failed")

    def failed_minutes_ago(minutes: int) -> None:
        pipeline.catalog.conn.execute("UPDATE batches SET finished_at = now() - make_interval(mins => %s)"
                                      " WHERE id = 'b1'", (minutes,))

    for retry, (too_early, due) in enumerate([(5, 11), (50, 61), (300, 361)], start=1):
        failed_minutes_ago(too_early)
        result, cursor = _evaluate_retries(instance, resources, cursor)
        assert isinstance(result, SkipReason)
        failed_minutes_ago(due)
        result, cursor = _evaluate_retries(instance, resources, cursor)
        assert isinstance(result, SensorResult), f"re-run {retry} is due"
        [request] = present(result.run_requests)
        assert request.partition_key == "b1" and request.tags[automation_defs.RETRY_TAG] == str(retry)
        instance.create_run_for_job(defs.resolve_job_def("media_batch"), status=DagsterRunStatus.FAILURE,
                                    tags={**request.tags, "dagster/partition": "b1"})
    failed_minutes_ago(10_000)
    for _ in range(2):
        result, cursor = _evaluate_retries(instance, resources, cursor)
        assert isinstance(result, SkipReason), "no fourth re-run"
    [alert] = alerts
    assert alert.startswith("Batch b1 failed 4 times") and "needs a person" in alert and "retry-failed" in alert
