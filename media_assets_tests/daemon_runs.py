"""A batch run executed as the daemon's run workers execute one (its job's own executor, EXECUTOR's engine under
`RunLockingExecutor`), in this process: what the UI's runs go through, without a daemon to start."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, DagsterRun
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

from media_assets.batches import BatchLifecycle
from media_assets.catalog.database import dagster_storage_url
from media_assets.catalog.repository import Catalog
from media_assets.defs.batch.job import BATCH_JOB_NAME
from media_assets.defs.domains import domain_defs
from media_assets.defs.runs import PARTITION_TAG


def storage_instance(conninfo: str, home: Path) -> DagsterInstance:
    """A Dagster instance on the test's PostgreSQL (pool slots and step processes need a real storage)."""
    url = dagster_storage_url(conninfo)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {url}\nconcurrency:\n  pools:\n    default_limit: 1\n")
    return DagsterInstance.from_config(str(home))


def new_batch_run(instance: DagsterInstance, catalog: Catalog) -> tuple[DagsterRun, ReconstructableJob]:
    """A new batch, its partition and its queued run, with the job as a run worker loads it (from the code
    location's module, so a step process can load it too); `execute_run(job, run, instance)` runs it."""
    batch_id = BatchLifecycle(catalog).create()
    instance.add_dynamic_partitions("batch", [batch_id])
    run = instance.create_run_for_job(domain_defs.resolve_job_def(BATCH_JOB_NAME), tags={PARTITION_TAG: batch_id})
    job = ReconstructableRepository.for_module("media_assets.definitions", "defs").get_reconstructable_job(
        BATCH_JOB_NAME)
    return run, job
