"""The catalog's advisory locks: one holder at a time, the holder named, and a lock freed by its holder's death
(whatever its host or pid), so a lock proves a run is alive where `host:pid` cannot."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from media_assets.catalog import locks
from media_assets.catalog.locks import AdvisoryLock, LockBusy

#: Holds lock 7 as "batch B1" until killed.
HOLDER_SCRIPT = """
import sys, time
from media_assets.catalog.locks import AdvisoryLock
lock = AdvisoryLock(sys.argv[1], 7, "batch B1")
assert lock.try_acquire()
print("holding", flush=True)
time.sleep(600)
"""


def test_a_second_holder_is_refused_with_the_first_one_named(catalog_conninfo: str) -> None:
    with AdvisoryLock(catalog_conninfo, 7, "batch B1") as first:
        assert first.try_acquire()
        second = AdvisoryLock(catalog_conninfo, 7, "batch B2")
        with pytest.raises(LockBusy) as busy:
            second.acquire(wait=False)
        assert busy.value.holder is not None and busy.value.holder.what == "batch B1"
        assert "host " in str(busy.value) and "since " in str(busy.value)
        assert AdvisoryLock(catalog_conninfo, 8, "batch B2").try_acquire(), "other keys are independent"
    assert second.try_acquire(), "released with its connection"
    second.release()


def test_a_killed_holder_frees_its_lock(catalog_conninfo: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, catalog_conninfo], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        lock = AdvisoryLock(catalog_conninfo, 7, "batch B2")
        found = lock.holder()
        assert found is not None and found.pid == str(holder.pid)
        assert not lock.try_acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock.acquire(wait=True)  # PostgreSQL ended the dead holder's session and released its lock
    assert lock.held
    lock.release()


def test_a_waiting_lock_says_what_it_waits_for(catalog_conninfo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locks, "POLL_SECONDS", 0.05)
    first = AdvisoryLock(catalog_conninfo, 7, "batch B1")
    assert first.try_acquire()
    reports: list[str] = []

    def report(holder: locks.Holder | None) -> None:
        reports.append(holder.what if holder else "?")
        threading.Thread(target=first.release).start()

    with AdvisoryLock(catalog_conninfo, 7, "batch B2") as second:
        second.acquire(wait=True, on_wait=report)
    assert reports == ["batch B1"]
