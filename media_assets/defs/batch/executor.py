"""Where a batch run's phases execute, chosen by the EXECUTOR setting when the run starts (no code edit to move
from one machine to Celery workers), and the run's locks held by the run's own process whichever it is.

The run's process (the run worker the daemon's run launcher starts, which lives for the whole run) executes
`execute` below: it takes the batch's lock and a run slot before the first phase is handed to an engine and lets
go of them when the last one ended, so a phase on a Celery worker or in a step process of its own takes nothing
that outlives it (`claim_run` sees the run tagged with another process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from dagster import Executor, InitExecutorContext, executor, multiple_process_executor_requirements
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.in_process import InProcessExecutor
from dagster._core.executor.multiprocess import MultiprocessExecutor

from media_assets.catalog.database import resolve_conninfo
from media_assets.catalog.locks import POOL_SETUP, AdvisoryLock
from media_assets.defs.batch.assets import ICLOUD_POOL
from media_assets.defs.batch.pool_wait import PoolWatch
from media_assets.defs.runs import PARTITION_TAG, holding_run_locks
from media_assets.settings import Settings, process_settings

if TYPE_CHECKING:
    from dagster import DagsterEvent, DagsterInstance
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan

#: What every Celery worker imports: the code location, so a worker can execute any phase.
CELERY_INCLUDE = ["media_assets.definitions"]
#: One task at a time per worker process: phases are long and parallelise over files themselves.
CELERY_APP_SETTINGS = {"worker_prefetch_multiplier": 1, "task_acks_late": True}


def celery_config(settings: Settings) -> dict[str, Any]:
    """dagster-celery's executor configuration from the settings: the run's side and every worker's
    (`media-pipeline worker`) are built from it, so they always talk to the same broker the same way."""
    return {"broker": settings.execution.celery_broker_url, "backend": settings.execution.result_backend,
            "include": CELERY_INCLUDE, "config_source": CELERY_APP_SETTINGS}


def worker_config(settings: Settings) -> str:
    """The file `dagster-celery worker start -y` reads for a worker of these settings (JSON, which is YAML)."""
    return json.dumps({"execution": {"config": celery_config(settings)}})


def engine(settings: Settings) -> Executor:
    """The executor EXECUTOR names: in this process, a process per phase, or Celery workers."""
    choice = settings.execution.executor
    if choice == "in_process":
        return InProcessExecutor(retries=RetryMode.ENABLED)
    if choice == "multiprocess":
        return MultiprocessExecutor(retries=RetryMode.ENABLED, max_concurrent=None)
    try:
        from dagster_celery.executor import CeleryExecutor
    except ImportError:
        raise RuntimeError("EXECUTOR=celery needs the celery extra on every machine: "
                           "pip install 'media-pipeline[celery]'") from None
    return CeleryExecutor(retries=RetryMode.ENABLED, **celery_config(settings))


class RunLockingExecutor(Executor):
    """`inner` with the run's locks held around its whole execution, in the process that orchestrates it, and a
    batch run saying in its event log every minute what it waits for between steps (a pool slot)."""

    def __init__(self, inner: Executor, settings: Settings) -> None:
        self.inner = inner
        self.settings = settings

    @property
    def retries(self) -> RetryMode:
        return self.inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self.inner.step_dependency_config

    def __getattr__(self, name: str) -> Any:
        """What an engine asks of its own executor (dagster-celery's loop asks for `app_args`)."""
        return getattr(self.inner, name)

    def execute(self, plan_context: PlanOrchestrationContext,
                execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        conninfo = resolve_conninfo(self.settings)
        create_pools(plan_context.instance, conninfo)
        run = plan_context.dagster_run
        batch_id = run.tags.get(PARTITION_TAG)
        with (holding_run_locks(plan_context.instance, run, self.settings, conninfo, plan_context.log),
              PoolWatch(plan_context.instance, batch_id, plan_context.log.info) if batch_id else nullcontext()):
            yield from self.inner.execute(plan_context, execution_plan)


def create_pools(instance: DagsterInstance, conninfo: str) -> None:
    """Make the pools' limit rows before any step claims a slot, one process at a time.

    Dagster makes a pool's row on the first claim in it; two runs making it at once on a fresh installation
    fail one of them (its insert's IntegrityError aborts the PostgreSQL transaction it then goes on using)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    with AdvisoryLock(conninfo, POOL_SETUP, "setting up Dagster's pools") as lock:
        lock.acquire(wait=True)
        if ICLOUD_POOL not in storage.get_concurrency_keys():
            storage.initialize_concurrency_limit_to_default(ICLOUD_POOL)


@executor(name="media_pipeline", requirements=multiple_process_executor_requirements())
def batch_executor(init_context: InitExecutorContext) -> Executor:
    """The EXECUTOR setting's executor (in_process, multiprocess or celery), holding a batch run's locks in the
    run's own process."""
    settings = process_settings()
    return RunLockingExecutor(engine(settings), settings)
