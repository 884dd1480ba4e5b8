"""The embedded PostgreSQL shared by several processes of one installation: they may start it at the same moment
on a fresh data folder, and none stops it while another still uses it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from media_assets.catalog.database import (
    START_LOCK_FILE,
    USERS_LOCK_FILE,
    release_embedded_postgres,
    start_embedded_postgres,
    stop_embedded_postgres,
)
from media_assets.settings import DATA_DIR_MODE_FOR_ROOTS_SERVER

#: A process using the server: starts it, then on each line of stdin runs a query ("query") or lets go of it
#: ("release"), answering every time with one line.
USER_SCRIPT = """
import sys
from pathlib import Path
import psycopg
from media_assets.catalog.database import release_embedded_postgres, start_embedded_postgres

data = Path(sys.argv[1])
uri = start_embedded_postgres(data, "catalog")
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "query":
        with psycopg.connect(uri) as conn:
            print("answer", conn.execute("SELECT 41 + 1").fetchone()[0], flush=True)
    elif line.strip() == "release":
        print("stopped" if release_embedded_postgres(data) else "left running", flush=True)
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's temp folders: other pytest sessions reset their permissions, which locks the server's
    own user (when run as root) out of its data folder."""
    folder = Path(tempfile.mkdtemp(prefix="media-pipeline-shared-pg-"))
    yield folder / "data"
    stop_embedded_postgres(folder / "data")  # in case a failing test left it running
    shutil.rmtree(folder, ignore_errors=True)


def _ask(user: subprocess.Popen[str], command: str) -> str:
    assert user.stdin is not None and user.stdout is not None
    user.stdin.write(command + "\n")
    user.stdin.flush()
    return user.stdout.readline().strip()


@pytest.mark.slow
def test_processes_starting_together_share_the_server_and_the_last_one_stops_it(data_dir: Path) -> None:
    users = [subprocess.Popen([sys.executable, "-c", USER_SCRIPT, str(data_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        for user in users:
            assert user.stdout is not None
            line = user.stdout.readline().strip()
            assert line == "ready", user.stderr.read() if user.stderr else line
        assert _ask(users[0], "release") == "left running"
        assert _ask(users[1], "query") == "answer 42", "the first one out left the server to the others"
        assert _ask(users[1], "release") == "left running"
        assert _ask(users[2], "query") == "answer 42"
        assert _ask(users[2], "release") == "stopped"
        assert not (data_dir / "postgres/postmaster.pid").exists()
    finally:
        for user in users:
            user.kill()
            user.wait()


@pytest.mark.slow
def test_a_process_that_dies_no_longer_counts_as_a_user(data_dir: Path) -> None:
    survivor, killed = (subprocess.Popen([sys.executable, "-c", USER_SCRIPT, str(data_dir)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True) for _ in range(2))
    try:
        for user in (survivor, killed):
            assert user.stdout is not None and user.stdout.readline().strip() == "ready"
        killed.kill()
        killed.wait()
        assert _ask(survivor, "release") == "stopped"
    finally:
        for user in (survivor, killed):
            user.kill()
            user.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as a user of its own only when root starts it")
def test_roots_server_alone_may_pass_through_data_dir(data_dir: Path) -> None:
    """PostgreSQL refuses to run as root, so root's server runs as `embedded_postgres` (in root's group), which
    must pass through DATA_DIR to its own folder; `embedded_postgres` opens every folder above to everyone for
    that. Afterwards only root's group may pass through DATA_DIR and the folders above (the server's group)."""
    data_dir.mkdir(mode=0o700)
    above = data_dir.parent
    above.chmod(0o700)
    uri = start_embedded_postgres(data_dir, "catalog")
    try:
        with psycopg.connect(uri) as conn:
            assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
        assert stat.S_IMODE(data_dir.stat().st_mode) == DATA_DIR_MODE_FOR_ROOTS_SERVER == 0o710
        assert data_dir.stat().st_gid == os.getegid(), "the group the server runs in (it switches only the user)"
        assert stat.S_IMODE(above.stat().st_mode) == 0o710, "root's group (the server's) may pass, no one else"
        for name in (START_LOCK_FILE, USERS_LOCK_FILE):
            assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    finally:
        assert release_embedded_postgres(data_dir), "pg_ctl stop, as the server's user, still reaches its folder"


def test_a_process_without_a_login_session_starts_the_server_without_a_runtime_folder_warning() -> None:
    """`embedded_postgres` finds its lock folder through platformdirs when imported; with XDG_RUNTIME_DIR unset (a
    container, a service) platformdirs warned on stderr before using its own fallback, which serves."""
    env = {name: value for name, value in os.environ.items() if name != "XDG_RUNTIME_DIR"}
    code = ("from pathlib import Path; from media_assets.catalog.database import embedded_postgres_running; "
            "print(embedded_postgres_running(Path('/nonexistent')))")
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
    assert "XDG_RUNTIME_DIR" not in done.stderr, done.stderr
