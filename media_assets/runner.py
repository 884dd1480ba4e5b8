"""Running a batch in this process (no daemon needed): what `media-pipeline run` and `interval` do."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from media_assets.automation import Decision, check_sources
from media_assets.catalog.database import DATABASE_URL_ENV, dagster_storage_url, resolve_conninfo
from media_assets.catalog.migrate import upgrade_to_head
from media_assets.catalog.repository import Catalog
from media_assets.reporting import RunReport, build_report, write_report
from media_assets.settings import Settings
from media_assets.telegram import notify_batch_finished
from media_assets.telegram.notify import RUNNER_REPORT_TAG, send_alert

DAGSTER_STORAGE_ENV = "MEDIA_PIPELINE_DAGSTER_STORAGE_URL"
#: `host:pid` of the process running an in-process batch, so a later run can tell it died.
RUNNER_PROCESS_TAG = "media_pipeline/process"
#: The repository's instance file (present in a checkout); installs without it get the minimal one below.
REPO_INSTANCE_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
MINIMAL_INSTANCE_YAML = f"""\
# Written by media-pipeline: Dagster keeps its runs and events in the catalog's PostgreSQL.
storage:
  postgres:
    postgres_url:
      env: {DAGSTER_STORAGE_ENV}
telemetry:
  enabled: false
"""


@dataclass
class Pipeline:
    """An opened installation: settings, the migrated catalog, and a Dagster instance on the same database."""

    settings: Settings
    catalog: Catalog
    instance: DagsterInstance

    def close(self) -> None:
        self.catalog.close()
        self.instance.dispose()


def prepare_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME if set, else `<data>/dagster_home` with an instance file that uses the catalog database."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = settings.data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = REPO_INSTANCE_YAML.read_text() if REPO_INSTANCE_YAML.is_file() else MINIMAL_INSTANCE_YAML
    if not config.exists() or config.read_text() != wanted:
        config.write_text(wanted)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def open_pipeline(settings: Settings) -> Pipeline:
    conninfo = resolve_conninfo(settings)
    upgrade_to_head(conninfo)
    os.environ[DATABASE_URL_ENV] = conninfo  # the resources of in-process runs use the same database
    os.environ.setdefault(DAGSTER_STORAGE_ENV, dagster_storage_url(conninfo))
    prepare_dagster_home(settings)
    return Pipeline(settings=settings, catalog=Catalog(conninfo), instance=DagsterInstance.get())


def new_batch_id(catalog: Catalog, now: datetime | None = None) -> str:
    """`YYYYMMDD-HHMMSS` in UTC, with a counter when two batches start in the same second."""
    base = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    candidate, n = base, 1
    while catalog.batch(candidate) is not None:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def run_next_batch(pipeline: Pipeline) -> tuple[Decision, RunReport | None]:
    """Take the next batch's worth of new files through every phase, unless the sources hold nothing new or
    the disk has no room for it: then no batch is created. Why (or what), and the report of the batch run."""
    from media_assets.sources.configured import enabled_sources

    pipeline.catalog.ensure_connected()
    decision = check_sources(pipeline.settings, pipeline.catalog, enabled_sources(pipeline.settings))
    if not decision.start:
        return decision, None
    return decision, run_batch(pipeline)


def run_batch(pipeline: Pipeline, batch_id: str | None = None) -> RunReport:
    """Create (or re-run) a batch and take it through every phase in this process; returns its report."""
    from media_assets.definitions import defs
    from media_assets.defs.assets import PHASES
    from media_assets.defs.jobs import BATCH_JOB_NAME

    catalog = pipeline.catalog
    catalog.ensure_connected()
    batch_id = batch_id or new_batch_id(catalog)
    catalog.create_batch(batch_id)
    if not pipeline.instance.has_dynamic_partition("batch", batch_id):
        pipeline.instance.add_dynamic_partitions("batch", [batch_id])
    reclaim_dead_runs(pipeline.instance, pipeline.settings, catalog)
    started = time.perf_counter()
    result = defs.resolve_job_def(BATCH_JOB_NAME).execute_in_process(
        partition_key=batch_id, instance=pipeline.instance, raise_on_error=False,
        tags={RUNNER_REPORT_TAG: "runner", RUNNER_PROCESS_TAG: this_process()},
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}})
    error = None
    if not result.success:
        catalog.ensure_connected()  # the failure may have been the database going away
        catalog.set_batch_status(batch_id, "failed")
        error = first_failure(result.all_events)
    report = build_report(catalog, batch_id, PHASES, success=result.success,
                          duration_seconds=time.perf_counter() - started, error=error)
    write_report(report, pipeline.settings.reports_dir, pipeline.settings.reports_keep)
    notify_batch_finished(pipeline.settings, report, result.run_id)
    return report


def this_process() -> str:
    """`host:pid` of the process executing a run: in-process runs and the daemon's run workers alike."""
    return f"{socket.gethostname()}:{os.getpid()}"


def reclaim_dead_runs(instance: DagsterInstance, settings: Settings, catalog: Catalog) -> list[str]:
    """Mark runs whose process died (killed, power cut) and their batches as failed, and free their pool slots,
    so `retry-failed` or a backfill can finish the batch and the automation starts the next one.

    Without this, a killed run keeps its slot in the `icloud` pool forever and counts as running for ever: the
    default run launcher cannot check its workers' health, and nothing watches in-process runs."""
    host = socket.gethostname()
    reclaimed = []
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])):
        run = record.dagster_run
        owner_host, _, pid = run.tags.get(RUNNER_PROCESS_TAG, "").partition(":")
        if owner_host != host or not pid.isdigit() or _process_alive(int(pid)):
            continue
        instance.report_run_failed(run, "the process running it is gone (killed or crashed)")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        if run.tags.get("dagster/partition"):
            catalog.set_batch_status(run.tags["dagster/partition"], "failed")
        send_alert(f"dead-run-{run.run_id}", f"Batch {run.tags.get('dagster/partition', '?')}: the process running "
                   "it died (killed or crashed); it is re-run now and continues where it stopped.", settings=settings)
        reclaimed.append(run.run_id)
    return reclaimed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def first_failure(events: list) -> str:
    """The root cause of the first failed step, in one line (Dagster wraps it in its own error)."""
    for event in events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            info = event.step_failure_data.error
            while info.cause is not None:
                info = info.cause
            return f"{event.step_key}: {info.message.strip()}"
    return "the run failed before any phase started"


def executions_today(catalog: Catalog, now: datetime | None = None) -> int:
    now = now or datetime.now(timezone.utc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return catalog.batches_created_since(midnight)


def seconds_until_tomorrow(now: datetime | None = None) -> float:
    now = now or datetime.now(timezone.utc)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()
