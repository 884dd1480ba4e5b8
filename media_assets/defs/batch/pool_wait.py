"""What a batch run waiting between steps for a pool slot says every minute, wherever it executes: the CLI's runs
(`runner.RunWatch`) and the runs the daemon launches (`executor.RunLockingExecutor`, into the run's event log).
Dagster's own step loop says it only at debug level."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from dagster import DagsterInstance

from media_assets.catalog.locks import POLL_SECONDS, REPORT_EVERY_SECONDS
from media_assets.defs.batch.assets import ICLOUD_POOL
from media_assets.defs.runs import PARTITION_TAG, RUNNER_PROCESS_TAG, this_process


class PoolWatch(threading.Thread):
    """Beside a batch run executing in this process, while it waits between steps for a slot of a pool (`icloud`
    lets one run talk to Apple at a time): hands `say` what it waits for and which batches hold the slots at once
    and then every REPORT_SECONDS."""

    #: Seconds between looks at the pools (one query), so a wait is reported within this long.
    POOL_CHECK_SECONDS = 10.0
    #: Seconds between two reports of one wait.
    REPORT_SECONDS = REPORT_EVERY_SECONDS

    def __init__(self, instance: DagsterInstance, batch_id: str, say: Callable[[str], object]) -> None:
        super().__init__(name=f"watch batch {batch_id}", daemon=True)
        self.instance = instance
        self.batch_id = batch_id
        self.say = say
        #: Pools exist only where Dagster keeps them (its PostgreSQL storage; not an in-memory test instance).
        self.pools_kept = instance.event_log_storage.supports_global_concurrency_limits
        self._done = threading.Event()
        self._next_check = self._next_report = 0.0

    def __enter__(self) -> PoolWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(POLL_SECONDS):
            if not self.look():
                return

    def look(self) -> bool:
        """One look at the run; whether to go on watching."""
        if self.pools_kept and time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.POOL_CHECK_SECONDS
            try:
                waiting = self.pool_wait()
            except Exception:  # the catalog went away: the run itself says so; a watcher stays quiet
                waiting = None
            if waiting and time.monotonic() >= self._next_report:
                self.say(waiting)
                self._next_report = time.monotonic() + self.REPORT_SECONDS
        return True

    def pool_wait(self) -> str | None:
        """What this process's run waits for, naming the batches holding the pool's slots; None if it does not."""
        info = self.instance.event_log_storage.get_concurrency_info(ICLOUD_POOL)
        mine = [step for step in info.pending_steps if step.assigned_timestamp is None
                and (run := self.instance.get_run_by_id(step.run_id)) is not None
                and run.tags.get(RUNNER_PROCESS_TAG) == this_process()]
        if not mine:
            return None
        holders = []
        for run_id in sorted(info.active_run_ids):
            run = self.instance.get_run_by_id(run_id)
            holders.append(f"batch {run.tags.get(PARTITION_TAG, '?') if run else '?'} (run {run_id[:8]})")
        return (f"batch {self.batch_id} waits at {mine[0].step_key} for a slot of pool {ICLOUD_POOL} "
                f"({info.slot_count} at once), held by {', '.join(holders) or 'no one (being freed)'}")
