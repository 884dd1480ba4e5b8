"""The Dagster instance of an installation: its `dagster.yaml` (runs and events kept in the catalog's PostgreSQL)
and the opened pipeline the CLI works with (settings, migrated catalog, instance)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

from dagster import DagsterInstance, Field, StringSource
from dagster._core.execution.compute_logs import redirect_to_file
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._serdes import ConfigurableClassData

from media_assets.catalog.database import DATABASE_URL_ENV, dagster_storage_url, resolve_conninfo
from media_assets.catalog.locks import DAGSTER_SETUP, AdvisoryLock
from media_assets.catalog.migrate import upgrade_to_head
from media_assets.catalog.repository import Catalog
from media_assets.settings import Settings, make_private, prepare_folders, use_settings
from media_assets.storage import write_text_atomically

DAGSTER_STORAGE_ENV = "MEDIA_PIPELINE_DAGSTER_STORAGE_URL"
#: The repository's instance file (present in a checkout); installs without it get the minimal one below.
REPO_INSTANCE_YAML = Path(__file__).resolve().parent.parent.parent / "dagster.yaml"
MINIMAL_INSTANCE_YAML = f"""\
# Written by media-pipeline: Dagster keeps its runs and events in the catalog's PostgreSQL.
storage:
  postgres:
    postgres_url:
      env: {DAGSTER_STORAGE_ENV}
compute_logs:
  module: media_assets.defs.instance
  class: PrivateComputeLogManager
telemetry:
  enabled: false
"""
#: Log files the pipeline writes, and its instance file: only their owner may read them (logs name every file).
PRIVATE_LOG_MODE = 0o600
#: How often the mirroring thread looks for more of a step's output (Dagster's tail -F: every second).
MIRROR_POLL_SECONDS = 0.1
#: How long the end of a step waits for the mirror to write out what is left (Dagster's: 30 s for its tail).
MIRROR_DRAIN_SECONDS = 30.0


class PrivateComputeLogManager(LocalComputeLogManager):
    """Dagster's local compute logs (each step's stdout and stderr, in `DAGSTER_HOME/storage` unless `base_dir`
    says otherwise), created owner-only: Dagster's own manager leaves them to the umask (0644)."""

    def __init__(self, base_dir: str | None = None, polling_timeout: float | None = None,
                 inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir or os.path.join(os.environ["DAGSTER_HOME"], "storage"), polling_timeout,
                         inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"base_dir": Field(StringSource, is_required=False),
                "polling_timeout": Field(float, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> PrivateComputeLogManager:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        """Dagster's capture (the step's stdout and stderr file descriptors written to its log files, and shown
        where they went before), mirrored by a thread of this process instead of a `tail -F` and a Python
        watcher per stream (four processes, 25 MB RSS beside every step). The thread ends with the process,
        however it ends, so nothing can outlive a killed run, and it needs no watching."""
        out, err = (self._create_private(log_key, IO_TYPE_EXTENSION[io_type])
                    for io_type in (ComputeIOType.STDOUT, ComputeIOType.STDERR))
        with _mirrored(sys.stdout, out), _mirrored(sys.stderr, err):
            yield CapturedLogContext(log_key)
        complete = Path(self.complete_artifact_path(log_key))  # Dagster's mark of a finished capture
        complete.touch()
        complete.chmod(PRIVATE_LOG_MODE)

    @contextmanager
    def open_log_stream(self, log_key: Sequence[str], io_type: ComputeIOType) -> Iterator[IO[Any] | None]:
        self._create_private(log_key, IO_TYPE_EXTENSION[io_type])
        with super().open_log_stream(log_key, io_type) as stream:
            yield stream

    def _create_private(self, log_key: Sequence[str], extension: str) -> Path:
        """The log file, created empty and owner-only if it is not there yet (Dagster then appends to it)."""
        path = Path(self.get_captured_local_path(log_key, extension))
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_LOG_MODE))
        return path


@contextmanager
def _mirrored(stream: TextIO, path: Path) -> Iterator[None]:
    """`stream`'s file descriptor appends to `path` (Dagster's redirect: this process's writes and its children's),
    while a thread copies the file, from its start as `tail -c +0` does, to where the descriptor went before."""
    try:
        shown = os.dup(stream.fileno())
    except (AttributeError, OSError, ValueError):  # a stand-in stream (a test's): Dagster redirects nothing either
        yield
        return
    finished = threading.Event()

    def follow() -> None:  # owns `shown`: a mirror still writing after the step's wait never writes elsewhere
        with open(path, "rb") as log, open(shown, "wb") as where:
            while True:
                last_look = finished.is_set()  # set before this read: the read then sees every write of the step
                chunk = log.read(1 << 16)
                if chunk:
                    with suppress(OSError):  # nowhere to show it (a closed pipe): the log file still has it
                        where.write(chunk)
                        where.flush()
                elif last_look:
                    return
                else:
                    finished.wait(MIRROR_POLL_SECONDS)

    mirror = threading.Thread(target=follow, name=f"mirror {path.name}", daemon=True)
    mirror.start()
    try:
        with redirect_to_file(stream, str(path)):
            yield
    finally:
        finished.set()
        mirror.join(MIRROR_DRAIN_SECONDS)


@dataclass
class Pipeline:
    """An opened installation: settings, the migrated catalog, and a Dagster instance on the same database."""

    settings: Settings
    catalog: Catalog
    instance: DagsterInstance

    def close(self) -> None:
        self.catalog.close()
        self.instance.dispose()


def instance_yaml(settings: Settings) -> str:
    """The instance file for these settings: the daemon's run queue takes as many batches at once as the run
    slots (MAX_CONCURRENT_BATCHES) allow."""
    wanted = REPO_INSTANCE_YAML.read_text() if REPO_INSTANCE_YAML.is_file() else MINIMAL_INSTANCE_YAML
    return wanted.replace("max_concurrent_runs: 1",
                          f"max_concurrent_runs: {settings.automation.max_concurrent_batches}")


def prepare_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME if set, else `<data>/dagster_home` with an instance file that uses the catalog database."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = settings.storage.data_dir / "dagster_home"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    make_private(home)  # run logs and event records name every file
    config = home / "dagster.yaml"
    wanted = instance_yaml(settings)
    if not config.exists() or config.read_text() != wanted:
        write_text_atomically(config, wanted, mode=PRIVATE_LOG_MODE)  # private like all else in the Dagster home
    else:
        config.chmod(PRIVATE_LOG_MODE)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def open_pipeline(settings: Settings) -> Pipeline:
    """Start this process's pipeline: its settings become the process's, its folders exist, the catalog is
    migrated and Dagster uses the same database."""
    use_settings(settings)
    prepare_folders(settings)
    conninfo = resolve_conninfo(settings)
    upgrade_to_head(conninfo)
    os.environ[DATABASE_URL_ENV] = conninfo  # the resources of in-process runs use the same database
    os.environ.setdefault(DAGSTER_STORAGE_ENV, dagster_storage_url(conninfo))
    prepare_dagster_home(settings)
    # Dagster makes its tables when its storage is first opened, and two processes doing it at once on a new
    # installation fail one of them ("type event_logs already exists"): one process at a time.
    with AdvisoryLock(conninfo, DAGSTER_SETUP, "setting up Dagster's tables") as lock:
        lock.acquire(wait=True)
        instance = DagsterInstance.get()
        if complete_dagster_tables(instance):
            instance.reindex(print_fn=lambda _line: None)  # the data migrations Dagster runs after creating them
    return Pipeline(settings=settings, catalog=Catalog(conninfo), instance=instance)


def complete_dagster_tables(instance: DagsterInstance) -> list[str]:
    """Create, in one transaction, the Dagster tables a killed first start left out; their names.

    Dagster creates its tables on first use one statement at a time (its connections autocommit) and looks no
    further once `runs` or `event_logs` exists: a first start killed in between left an installation on which
    every run failed ("the dynamic partitions table ... does not exist"). A database with none of them is left
    to Dagster's own first start, an instance that keeps its runs elsewhere than in PostgreSQL alone."""
    import sqlalchemy
    from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
    from dagster._core.storage.runs.schema import RunStorageSqlMetadata
    from dagster._core.storage.schedules.schema import ScheduleStorageSqlMetadata
    from dagster._core.storage.sql import stamp_alembic_rev
    from dagster_postgres import PostgresEventLogStorage
    from dagster_postgres.run_storage import run_storage
    from dagster_postgres.utils import pg_alembic_config

    storage = instance.event_log_storage
    if not isinstance(storage, PostgresEventLogStorage):
        return []
    schemas = (RunStorageSqlMetadata, SqlEventLogStorageMetadata, ScheduleStorageSqlMetadata)
    engine = sqlalchemy.create_engine(storage.postgres_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.begin() as conn:
            present = set(sqlalchemy.inspect(conn).get_table_names())
            wanted = {name for schema in schemas for name in schema.tables}
            missing = sorted(wanted - present)
            if not missing or not wanted & present:
                return []
            for schema in schemas:
                schema.create_all(conn, checkfirst=True)
            if "alembic_version" not in present:
                stamp_alembic_rev(pg_alembic_config(run_storage.__file__), conn)
    finally:
        engine.dispose()
    return missing
