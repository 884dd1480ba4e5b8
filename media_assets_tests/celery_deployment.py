"""A Celery deployment on this machine, started as a deployed one is (`media-pipeline ui` without the webserver):
a long-lived code server (where the runs' processes start), the daemon on it (`media-pipeline-daemon run -w`, its
run queue taking MAX_CONCURRENT_BATCHES runs at once) and Celery workers (`media-pipeline worker`), all sharing one
settings file with EXECUTOR=celery, the catalog and DAGSTER_HOME, on the local Redis. Batches are queued as a
backfill (`dagster job backfill`), as from the UI. Used by test_celery_workers.py and
`benchmarks/pipeline.py --workers`."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from media_assets.catalog.database import DATABASE_URL_ENV, dagster_storage_url
from media_assets.defs.batch.assets import PHASE_ASSETS
from media_assets.defs.batch.job import BATCH_JOB_NAME
from media_assets.defs.instance import DAGSTER_STORAGE_ENV, instance_yaml
from media_assets.settings import SETTINGS_FILE_ENV, load_settings
from media_assets.ui import LOCATION, free_port, wait_for_code_server, workspace_yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODULE = "media_assets.definitions"
REDIS = ("127.0.0.1", 6379)
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


class RunsStopped(RuntimeError):
    """A worker or the daemon died, or the runs did not finish in time (a run waiting for a lock a worker keeps
    never finishes)."""


def redis_answers() -> bool:
    """Whether a Redis server answers PING at REDIS."""
    try:
        with socket.create_connection(REDIS, timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def celery_settings() -> dict[str, str]:
    """The settings that send a deployment's batch phases to Celery workers: a Redis database picked at random,
    so its queue meets no other user's."""
    return {"EXECUTOR": "celery", "CELERY_BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{random.randint(1, 15)}"}


def deployment_environment(settings_file: Path, conninfo: str, dagster_home: Path) -> dict[str, str]:
    """What every process of the deployment shares: the settings, the catalog and DAGSTER_HOME (an instance on
    the catalog's server whose run queue takes MAX_CONCURRENT_BATCHES runs at once, as `media-pipeline` writes
    it)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(instance_yaml(load_settings(settings_file)))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_", "CELERY_"))}
    env.update({
        SETTINGS_FILE_ENV: str(settings_file), DATABASE_URL_ENV: conninfo,
        DAGSTER_STORAGE_ENV: dagster_storage_url(conninfo), "DAGSTER_HOME": str(dagster_home),
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    return env


@dataclass
class Deployment:
    """The code server, the daemon and the workers, each in a session of its own (stopped with everything it
    started: the code server's holds the runs' processes)."""

    services: list[subprocess.Popen]
    workspace: Path

    def check_alive(self, where: Path) -> None:
        if any(process.poll() is not None for process in self.services):
            raise RunsStopped(f"the code server, the daemon or a Celery worker stopped: see the logs in {where}")


@contextmanager
def running_deployment(workers: list[str], env: dict[str, str], log_dir: Path) -> Iterator[Deployment]:
    """The named workers (one task at a time each), the code server and the daemon on it, stopped afterwards
    with every process they started, the runs' processes included."""
    started: list[subprocess.Popen] = []
    workspace = Path(env["DAGSTER_HOME"]) / "workspace.yaml"
    code_port = free_port()
    workspace.write_text(workspace_yaml(code_port))
    try:
        for name in workers:
            started.append(_start([sys.executable, "-m", "media_assets.cli", "worker", "--name", name, "--",
                                   "--pool=solo"], env, log_dir / f"worker-{name}.log"))
        started.append(_start([str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port),
                               "-m", MODULE, "--location-name", LOCATION], env, log_dir / "code-server.log"))
        wait_for_code_server(started[-1], code_port)
        started.append(_start([sys.executable, "-m", "media_assets.defs.daemon", "run", "-w", str(workspace)], env,
                              log_dir / "daemon.log"))  # media-pipeline-daemon
        yield Deployment(services=started, workspace=workspace)
    finally:
        for process in reversed(started):
            _stop(process)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's session (the daemon stops its code server and runs, a worker its children),
    SIGKILL to whatever is left of it after 30 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_of(dagster_home: Path) -> list[int]:
    """Live processes whose environment names this DAGSTER_HOME (what a deployment left behind)."""
    wanted = f"DAGSTER_HOME={dagster_home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def queue_batches(instance: DagsterInstance, batch_ids: list[str], deployment: Deployment, env: dict[str, str],
                  log_dir: Path) -> None:
    """Queue a run per batch as a backfill would from the UI: the batches become partitions, each pool of the
    phases gets its limit (as `dagster instance concurrency set icloud 1` on a deployment: runs starting together
    on a fresh instance would both create the pool's row) and `dagster job backfill` submits the runs to the
    daemon's run queue."""
    instance.add_dynamic_partitions("batch", batch_ids)
    for pool in sorted({asset.op.pool for asset in PHASE_ASSETS if asset.op.pool}):
        instance.event_log_storage.set_concurrency_slots(pool, 1)
    with (log_dir / "backfill.log").open("w") as log:
        subprocess.run([str(BIN / "dagster"), "job", "backfill", "-w", str(deployment.workspace), "-j", BATCH_JOB_NAME,
                        "--partitions", ",".join(batch_ids), "--noprompt"],
                       env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=300)


def wait_for_runs(instance: DagsterInstance, count: int, deployment: Deployment, log_dir: Path,
                  timeout_s: float) -> Sequence[DagsterRun]:
    """The `count` batch runs once all finished. Raises RunsStopped if a process of the deployment dies or they
    take longer than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = instance.get_runs(RunsFilter(job_name=BATCH_JOB_NAME))
        if len(runs) >= count and all(run.status in FINISHED for run in runs):
            return runs
        deployment.check_alive(log_dir)
        if time.monotonic() > deadline:
            raise RunsStopped(f"the runs did not finish in {timeout_s:.0f} s: "
                              f"{sorted(run.status.value for run in runs)}; see the logs in {log_dir}")
        time.sleep(1)
