"""The step logs' capture (`PrivateComputeLogManager`): owner-only files, and one process per stream."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from media_assets.defs.instance import PRIVATE_LOG_MODE, PrivateComputeLogManager


def test_a_capture_writes_private_logs_with_one_tail_per_stream_and_no_python_watcher(tmp_path: Path) -> None:
    manager = PrivateComputeLogManager(base_dir=str(tmp_path))
    log_key = ["run-1", "compute_logs", "abcdefgh"]
    before = _children()  # the suite's own (its PostgreSQL server, when other tests started it)
    with manager.capture_logs(log_key):
        print("a line of the step", flush=True)
        print("a warning of the step", file=sys.stderr, flush=True)
        helpers = [child.name() for child in _living_children() if child.pid not in before]
    # Dagster's own capture starts a Python watcher (watch_orphans.py, 11 MB) beside each stream's tail.
    assert helpers == ["tail", "tail"], helpers
    out = Path(manager.get_captured_local_path(log_key, "out"))
    err = Path(manager.get_captured_local_path(log_key, "err"))
    assert out.read_text() == "a line of the step\n" and err.read_text() == "a warning of the step\n"
    for written in (out, err, Path(manager.complete_artifact_path(log_key))):
        assert written.stat().st_mode & 0o777 == PRIVATE_LOG_MODE, written
    assert not _children() - before


def _children() -> set[int]:
    return {child.pid for child in _living_children()}


def _living_children() -> list[psutil.Process]:
    """This process's children, without those that have exited (a pool's worker another test shut down)."""
    living = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() != psutil.STATUS_ZOMBIE:
                living.append(child)
    return living


def test_the_tails_end_when_the_capturing_process_is_killed(tmp_path: Path) -> None:
    capturing = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from media_assets.defs.instance import PrivateComputeLogManager
        with PrivateComputeLogManager(base_dir={str(tmp_path)!r}).capture_logs(["run-1", "compute_logs", "k"]):
            print("capturing", flush=True)
            time.sleep(600)
        """)])
    log = tmp_path / "run-1" / "compute_logs" / "k.out"
    while not (log.is_file() and log.read_text()):
        assert capturing.poll() is None
        time.sleep(0.05)
    tails = psutil.Process(capturing.pid).children()
    assert [tail.name() for tail in tails] == ["tail", "tail"]
    capturing.kill()  # no cleanup runs: what Dagster's watcher process was for
    capturing.wait()
    _, alive = psutil.wait_procs(tails, timeout=30)
    assert not alive
