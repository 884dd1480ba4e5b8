"""The batch job with the Celery executor (what README "Past one machine" switches to), reconstructable so that
Celery workers can load it, and the processes of a Celery deployment on this machine: workers started as
deployed (`dagster-celery worker start` with deploy/celery/executor.yaml) and batch runs, each in a process of
its own, at most a given number at once. Used by test_celery_workers.py and `benchmarks/pipeline.py --workers`.
`python -m media_assets_tests.celery_batch BATCH_ID RUN_CONFIG` runs one batch; settings, catalog, DAGSTER_HOME
and the broker come from the environment, as on a deployed machine."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    JobDefinition,
    define_asset_job,
    execute_job,
    reconstructable,
)
from dagster_celery import celery_executor

from media_assets.catalog.database import DATABASE_URL_ENV, dagster_storage_url
from media_assets.catalog.locks import process_run_locks
from media_assets.definitions import defs as production_defs
from media_assets.defs.batch.assets import GROUP, PHASE_ASSETS
from media_assets.defs.instance import DAGSTER_STORAGE_ENV
from media_assets.defs.runs import PARTITION_TAG, RUNNER_PROCESS_TAG, this_process
from media_assets.settings import process_settings

CELERY_JOB_NAME = "media_batch_celery"
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EXECUTOR_CONFIG = ROOT / "deploy/celery/executor.yaml"
REDIS = ("127.0.0.1", 6379)


class RunsStopped(RuntimeError):
    """A worker died, or the runs did not finish in time (a run whose steps no worker takes waits for ever)."""


def redis_answers() -> bool:
    """Whether a Redis server answers PING at REDIS."""
    try:
        with socket.create_connection(REDIS, timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def queue_batches(instance: DagsterInstance, batch_ids: list[str]) -> None:
    """Make the batches partitions, and give each pool of the phases its limit before any run starts: runs
    starting together on a fresh instance would both create the pool's row (a unique violation in Dagster's
    storage), as `dagster instance concurrency set icloud 1` does on a deployment."""
    instance.add_dynamic_partitions("batch", batch_ids)
    for pool in sorted({asset.op.pool for asset in PHASE_ASSETS if asset.op.pool}):
        instance.event_log_storage.set_concurrency_slots(pool, 1)


def celery_batch_job() -> JobDefinition:
    job = define_asset_job(CELERY_JOB_NAME, selection=AssetSelection.groups(GROUP), executor_def=celery_executor)
    defs = Definitions(assets=PHASE_ASSETS, jobs=[job], resources=production_defs.resources)
    return defs.resolve_job_def(CELERY_JOB_NAME)


def deployment_environment(settings_file: Path, conninfo: str, dagster_home: Path) -> dict[str, str]:
    """What every process of the deployment shares: the settings, the catalog, DAGSTER_HOME (an instance on the
    catalog's server) and the broker, a Redis database picked at random so its queue meets no other user's."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    database = random.randint(1, 15)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_"))}
    env.update({
        "MEDIA_PIPELINE_SETTINGS": str(settings_file), DATABASE_URL_ENV: conninfo,
        DAGSTER_STORAGE_ENV: dagster_storage_url(conninfo), "DAGSTER_HOME": str(dagster_home),
        "CELERY_BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{database}",
        "CELERY_RESULT_BACKEND": f"redis://{REDIS[0]}:{REDIS[1]}/{database}",
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),  # dagster-celery starts `celery`
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    return env


def start_workers(names: list[str], env: dict[str, str], log_dir: Path) -> list[subprocess.Popen]:
    """Workers as deployed, one task at a time each, each in a session of its own (see `stop_workers`)."""
    return [subprocess.Popen(
        [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(EXECUTOR_CONFIG),
         "-n", name, "--", "--pool=solo"],
        env=env, cwd=ROOT, stdout=(log_dir / f"worker-{name}.log").open("w"), stderr=subprocess.STDOUT,
        start_new_session=True) for name in names]


def stop_workers(workers: list[subprocess.Popen]) -> None:
    """Stop each worker and every process it started (its session's process group)."""
    for process in workers:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass


def run_batches(batch_ids: list[str], env: dict[str, str], log_dir: Path, workers: list[subprocess.Popen],
                at_once: int, timeout_s: float) -> list[int]:
    """Run the batches at most `at_once` at a time, each in a run process of its own; their exit statuses.
    Raises RunsStopped (after stopping the runs) if a worker dies or they take longer than `timeout_s`."""
    pending, running, codes = list(batch_ids), [], []
    deadline = time.monotonic() + timeout_s
    while pending or running:
        if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
            for process in running:
                process.kill()
                process.wait()
            raise RunsStopped(f"a Celery worker stopped or the runs did not finish: see the logs in {log_dir}")
        while pending and len(running) < at_once:
            batch_id = pending.pop(0)
            running.append(subprocess.Popen(
                [sys.executable, "-m", "media_assets_tests.celery_batch", batch_id, str(EXECUTOR_CONFIG)],
                env=env, cwd=ROOT, stdout=(log_dir / f"run-{batch_id}.log").open("w"), stderr=subprocess.STDOUT))
        time.sleep(0.5)
        for process in [p for p in running if p.poll() is not None]:
            running.remove(process)
            codes.append(process.returncode)
    return codes


def main(batch_id: str, run_config_path: str) -> int:
    """Run one batch as `media-pipeline run` does: this process holds a run slot (MAX_CONCURRENT_BATCHES) and
    the batch's lock for the whole run and names itself in the run's tags; the steps run on the workers."""
    settings = process_settings()
    locks = process_run_locks(os.environ[DATABASE_URL_ENV], settings.automation.max_concurrent_batches)
    locks.take_slot(f"batch {batch_id}", wait=True)
    locks.take_batch(batch_id, wait=False)
    with DagsterInstance.get() as instance:
        result = execute_job(reconstructable(celery_batch_job), instance=instance,
                             run_config=yaml.safe_load(Path(run_config_path).read_text()),
                             tags={PARTITION_TAG: batch_id, RUNNER_PROCESS_TAG: this_process()},
                             raise_on_error=False)
        print(result.run_id)
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
