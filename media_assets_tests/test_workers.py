"""The phases' worker pool: results in order, a bounded window, and a failed job handed to `on_error`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from media_assets.phases.workers import ONE_THREAD_EACH, Workers


def square_or_fail(n: int) -> int:
    if n == 3:
        raise ValueError("bad file")
    return n * n


@pytest.mark.parametrize("count", [1, 2])
def test_results_come_back_in_order(count: int) -> None:
    with Workers(count, in_flight_per_worker=1) as pool:
        assert list(pool.map(square_or_fail, ((n, (n,)) for n in [5, 1, 4, 2]))) == [(5, 25), (1, 1), (4, 16), (2, 4)]


def test_a_failed_job_goes_to_on_error_in_a_pool() -> None:
    with Workers(2) as pool:
        results = dict(pool.map(square_or_fail, ((n, (n,)) for n in range(6)), on_error=lambda key, error: -key))
    assert results == {0: 0, 1: 1, 2: 4, 3: -3, 4: 16, 5: 25}


def test_without_on_error_a_failure_stops_the_map() -> None:
    with Workers(2) as pool, pytest.raises(ValueError, match="bad file"):
        list(pool.map(square_or_fail, ((n, (n,)) for n in range(6))))


#: A parent that starts a pool of two busy workers and says so.
BUSY_PARENT = """
import time
from media_assets.phases.workers import Workers

with Workers(2, in_flight_per_worker=1) as pool:
    results = pool.map(time.sleep, ((n, (600,)) for n in range(4)))
    print("busy", flush=True)
    next(results)
"""


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (from /proc)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_and_the_resource_tracker_die_with_a_killed_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", BUSY_PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "busy"
        deadline = time.monotonic() + 60
        while len(children := _children(parent.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the pool starts its second worker as the second job is submitted
        assert len(children) == 3, "two workers and the resource tracker"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [pid for pid in children if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], "no orphan outlives the killed phase"


def thread_settings(_: int) -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in ONE_THREAD_EACH)


def test_a_worker_runs_its_libraries_single_threaded() -> None:
    """One process per core already: a worker whose numerical libraries started a thread per core each would
    oversubscribe the machine."""
    with Workers(2) as pool:
        assert {result for _, result in pool.map(thread_settings, ((n, (n,)) for n in range(2)))} == {
            ("1",) * len(ONE_THREAD_EACH)}



def logged_nap(log: str, key: int) -> int:
    """A job that notes when it starts and ends (one appended line each: atomic between processes)."""
    with open(log, "a") as out:
        out.write(f"start {key}\n")
    if key < 2:  # the first two meet (a worker that starts late on a busy machine is waited for, up to 60 s)
        deadline = time.monotonic() + 60
        while not {"start 0", "start 1"} <= set(Path(log).read_text().split("\n")) and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(0.3)
    with open(log, "a") as out:
        out.write(f"end {key}\n")
    return key


def test_a_job_that_runs_alone_shares_the_pool_with_no_other(tmp_path: Path) -> None:
    """The memory budget: a 1080p transcode never runs beside a 12 MP re-encode. The others still run two at a
    time, and results still come back in order."""
    log = str(tmp_path / "log")
    with Workers(2, in_flight_per_worker=2) as pool:
        results = [key for key, _ in pool.map(logged_nap, ((n, (log, n)) for n in range(7)),
                                              runs_alone=lambda key: key == 3)]
    assert results == list(range(7))
    events = Path(log).read_text().split("\n")[:-1]
    start, end = events.index("start 3"), events.index("end 3")
    assert end == start + 1, f"nothing else ran beside job 3: {events}"
    assert all(f"end {n}" in events[:start] for n in range(3)) and all(
        f"start {n}" in events[end:] for n in range(4, 7))
    assert events[:2] == ["start 0", "start 1"] or events[:2] == ["start 1", "start 0"], "the others ran two at once"


def _modules_after_import(*modules: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing `modules`."""
    code = f"import sys\nfor name in {modules!r}: __import__(name)\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return {name.split(".")[0] for name in done.stdout.split()}


@pytest.mark.parametrize("job_module", ["media_assets.phases.compression", "media_assets.media.examine"])
def test_a_worker_imports_no_settings_catalog_or_dagster(job_module: str) -> None:
    """What a spawn worker imports: the CLI again (as its __main__) and the module of its job (compression's, or
    download's `examine`). The settings (pydantic, ~18 MB) and the catalog (psycopg, ~8 MB) were in every
    worker, at a 12 MP photo's peak."""
    loaded = _modules_after_import("media_assets.cli", job_module)
    assert not loaded & {"pydantic", "pydantic_settings", "psycopg", "dagster", "pyicloud"}


def test_a_run_imports_telegram_and_supabase_only_to_use_them() -> None:
    """python-telegram-bot (~20 MB) and supabase-py with httpx and PyJWT (~30 MB) were in the run's process for
    the whole batch, imported with the run's report and the mirror's asset, though a run sends nothing until
    it ends and most installations mirror nothing."""
    loaded = _modules_after_import("media_assets.runner", "media_assets.telegram", "media_assets.mirror")
    assert not loaded & {"telegram", "httpx", "supabase", "postgrest", "jwt"}


def test_a_run_without_icloud_does_not_import_pyicloud(tmp_path: Path) -> None:
    """pyicloud and its dependencies were ~20 MB of the run's process, imported by every batch's verification
    and by the download phase asking for the iCloud source."""
    assert "pyicloud" not in _modules_after_import("media_assets.runner")
    (tmp_path / "library").mkdir()
    settings = tmp_path / "settings.env"
    settings.write_text(f"ENABLE_ICLOUD_DOWNLOAD=false\nFOLDER_SOURCE_PATHS={tmp_path / 'library'}\n"
                        f"MEDIA_ROOT={tmp_path / 'media'}\nDATA_DIR={tmp_path / 'data'}\n")
    code = ("import sys\nfrom media_assets.defs.icloud import ICloudResource\n"
            "from media_assets.defs.resources import SettingsResource\n"
            f"assert ICloudResource(settings=SettingsResource(settings_file={str(settings)!r})).source() is None\n"
            "print('pyicloud' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
