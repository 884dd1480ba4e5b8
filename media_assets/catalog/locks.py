"""Advisory locks in the catalog database, so that runs never collide, whichever host or process they run in.

Each lock is session-level and lives on a connection of its own: PostgreSQL releases it the moment that
connection ends, when its process exits, is killed, or its host vanishes. A lock being free therefore proves its
holder is gone, which no `host:pid` can (a re-created container has another host name; a pid is reused).

The holder's connection carries who it is in its `application_name` (`media-pipeline|<what>|<host>|<pid>`), and
the moment it took the lock is the start of its last query, so anyone can say who holds a lock and since when."""

from __future__ import annotations

import logging
import os
import socket
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg.rows import tuple_row

#: The first half of every key of this application's advisory locks (`pg_advisory_lock(int, int)`).
NAMESPACE = 0x6D70
#: Second halves of the application-wide locks.
BATCH_CREATION = 1
DEDUPLICATION = 2
MIRROR_PASS = 3
POOL_SETUP = 4
DAGSTER_SETUP = 5
#: Keys below this are reserved for the locks above; run slots and batches are further up.
_RUN_SLOTS = 1_000
_BATCHES = 1_000_000
_PREFIX = "media-pipeline"
#: How often a waiting lock asks again, and how often it says what it waits for.
POLL_SECONDS = 1.0
REPORT_EVERY_SECONDS = 60.0
log = logging.getLogger(__name__)


def run_slot_key(slot: int) -> int:
    """One of MAX_CONCURRENT_BATCHES slots a batch's run holds while it runs."""
    return _RUN_SLOTS + slot


def batch_key(batch_id: str) -> int:
    """The lock a batch's run holds from its start to its end."""
    return _BATCHES + zlib.crc32(batch_id.encode()) % (2**31 - 1 - _BATCHES)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: what it does, on which host, as which process, since when."""

    what: str
    host: str
    pid: str
    since: datetime

    def describe(self) -> str:
        """`since <UTC time>, host <host>, pid <pid>`."""
        since = self.since.astimezone(timezone.utc) if self.since else None
        return f"since {since:%Y-%m-%d %H:%M:%S} UTC, host {self.host}, pid {self.pid}"


def who_is_running(holder: Holder | None) -> str:
    """`batch X is running (since ..., host ..., pid ...)`: what a run that finds no room says, wherever it runs
    (the CLI, a run the daemon launched)."""
    return f"{holder.what} is running ({holder.describe()})" if holder else "another batch is running"


def waiting_for(holder: Holder | None) -> str:
    """What a run waiting for a run slot or its batch's lock says every minute, wherever it runs."""
    return f"waiting: {who_is_running(holder)}"


class LockBusy(Exception):
    """A lock is held by another process; `holder` says by whom (None when it let go meanwhile)."""

    def __init__(self, key: int, holder: Holder | None) -> None:
        super().__init__(f"{holder.what} ({holder.describe()})" if holder else "another process")
        self.key = key
        self.holder = holder


def holder_of(conn: psycopg.Connection, key: int) -> Holder | None:
    """Who holds lock `key` of this database, from `pg_locks` and `pg_stat_activity`."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(
            "SELECT a.application_name, a.query_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::int4::oid"
            " AND l.objid = %s::int4::oid AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (NAMESPACE, key)).fetchone()
    if row is None:
        return None
    name, since = row
    prefix, _, rest = name.partition("|")
    what, host, pid = (rest.split("|") + ["?", "?"])[:3] if prefix == _PREFIX else (name or "?", "?", "?")
    return Holder(what=what, host=host, pid=pid, since=since)


def is_free(conn: psycopg.Connection, key: int) -> bool:
    return holder_of(conn, key) is None


class AdvisoryLock:
    """One session-level advisory lock of the catalog, held on its own connection until `release` (or death)."""

    def __init__(self, conninfo: str, key: int, what: str) -> None:
        self.conninfo = conninfo
        self.key = key
        self.what = what
        self._conn: psycopg.Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another session holds it."""
        if self._conn is not None:
            return True
        conn = psycopg.connect(self.conninfo, autocommit=True, application_name=self._identity())
        # Over TCP the server probes a silent client, so a lock whose host vanished frees within two minutes.
        conn.execute("SET tcp_keepalives_idle = 60; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 5")
        taken = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (NAMESPACE, self.key)).fetchone()
        if taken is not None and taken[0]:
            self._conn = conn  # its last query, the one that took the lock, dates the holding
            return True
        conn.close()
        return False

    def acquire(self, *, wait: bool, on_wait: Callable[[Holder | None], None] | None = None) -> None:
        """Take the lock. Without `wait`, raise LockBusy naming the holder when it is taken; with it, ask again
        every POLL_SECONDS and call `on_wait(holder)` at once and then every REPORT_EVERY_SECONDS."""
        next_report = 0.0
        while not self.try_acquire():
            holder = self.holder()
            if not wait:
                raise LockBusy(self.key, holder)
            if time.monotonic() >= next_report:
                (on_wait or self._log_wait)(holder)
                next_report = time.monotonic() + REPORT_EVERY_SECONDS
            time.sleep(POLL_SECONDS)

    def rename(self, what: str) -> None:
        """Say what the held lock is for now (a run slot taken before its batch had an id)."""
        self.what = what
        if self._conn is not None:
            self._conn.execute("SELECT set_config('application_name', %s, false)", (self._identity(),))

    def _identity(self) -> str:
        identity = f"{_PREFIX}|{self.what}|{socket.gethostname()}|{os.getpid()}"
        return identity.encode()[:63].decode("utf-8", "ignore")

    def holder(self) -> Holder | None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            return holder_of(conn, self.key)

    def release(self) -> None:
        """Let go of the lock (closing its connection releases it even if the server is unreachable)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _log_wait(self, holder: Holder | None) -> None:
        log.warning("%s waits: %s", self.what,
                    f"{holder.what} is running ({holder.describe()})" if holder else "a lock is being released")

    def __enter__(self) -> AdvisoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunLocks:
    """The locks of the batch this process runs: one of `max_concurrent` run slots (so at most that many batches
    run at once, from the CLI or the daemon) and the batch's own lock (so no batch runs twice at once). The
    process keeps them until `release`, or until it dies and PostgreSQL lets go of them."""

    def __init__(self, conninfo: str, max_concurrent: int) -> None:
        self.conninfo = conninfo
        self.max_concurrent = max_concurrent
        self.slot: AdvisoryLock | None = None
        self.batch: AdvisoryLock | None = None
        self.batch_id: str | None = None

    def take_slot(self, what: str, *, wait: bool, on_wait: Callable[[Holder | None], None] | None = None) -> None:
        """One free run slot, named `what` (`batch <id>`, or `a new batch` before its id exists); LockBusy (naming
        a running batch) when all are taken and `wait` is false."""
        if self.slot is not None:
            return
        slots = [AdvisoryLock(self.conninfo, run_slot_key(n), what) for n in range(self.max_concurrent)]
        next_report = 0.0
        while True:
            for slot in slots:
                if slot.try_acquire():
                    self.slot = slot
                    return
            holder = slots[0].holder()
            if not wait:
                raise LockBusy(slots[0].key, holder)
            if time.monotonic() >= next_report:
                (on_wait or slots[0]._log_wait)(holder)
                next_report = time.monotonic() + REPORT_EVERY_SECONDS
            time.sleep(POLL_SECONDS)

    def take_batch(self, batch_id: str, *, wait: bool, on_wait: Callable[[Holder | None], None] | None = None
                   ) -> None:
        """The batch's own lock; LockBusy naming its holder when another process runs it and `wait` is false."""
        if self.batch_id == batch_id:
            return
        self.release_batch()
        lock = AdvisoryLock(self.conninfo, batch_key(batch_id), f"batch {batch_id}")
        lock.acquire(wait=wait, on_wait=on_wait)
        self.batch, self.batch_id = lock, batch_id

    def release_batch(self) -> None:
        if self.batch is not None:
            self.batch.release()
        self.batch = self.batch_id = None

    def release(self) -> None:
        self.release_batch()
        if self.slot is not None:
            self.slot.release()
            self.slot = None


#: The run locks of this process, by catalog: the CLI takes them before it starts a run, and the run's first
#: phase finds them held (a run launched by the daemon takes them there).
_process_run_locks: dict[str, RunLocks] = {}


def process_run_locks(conninfo: str, max_concurrent: int) -> RunLocks:
    locks = _process_run_locks.setdefault(conninfo, RunLocks(conninfo, max_concurrent))
    locks.max_concurrent = max_concurrent
    return locks


def batch_lock_free(conn: psycopg.Connection[Any], batch_id: str) -> bool:
    """Whether no other live process holds batch `batch_id`'s lock: a run of it that still counts as started is
    dead. The lock held by this process (about to re-run the batch) counts as free: no earlier run of the batch
    can still be alive beside it."""
    held_here = any(locks.batch_id == batch_id for locks in _process_run_locks.values())
    return held_here or is_free(conn, batch_key(batch_id))


def new_batch_id_alone(conninfo: str, create: Callable[[], str]) -> str:
    """Run `create` (choose a new batch id and record the batch) under the batch-creation lock, so two processes
    starting in the same second never choose the same id."""
    with AdvisoryLock(conninfo, BATCH_CREATION, "batch creation") as lock:
        lock.acquire(wait=True)
        return create()


def orphaned_running_batches(conn: psycopg.Connection[Any]) -> list[str]:
    """Batches recorded as running whose lock nobody holds: their run died or lost the catalog before it could
    say so."""
    with conn.cursor(row_factory=tuple_row) as cur:
        running = [row[0] for row in cur.execute("SELECT id FROM batches WHERE status = 'running' ORDER BY id")]
    return [batch_id for batch_id in running if batch_lock_free(conn, batch_id)]
