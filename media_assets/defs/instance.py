"""The Dagster instance of an installation: its `dagster.yaml` (runs and events kept in the catalog's PostgreSQL)
and the opened pipeline the CLI works with (settings, migrated catalog, instance)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance

from media_assets.catalog.database import DATABASE_URL_ENV, dagster_storage_url, resolve_conninfo
from media_assets.catalog.migrate import upgrade_to_head
from media_assets.catalog.repository import Catalog
from media_assets.settings import Settings, make_private, prepare_folders, use_settings

DAGSTER_STORAGE_ENV = "MEDIA_PIPELINE_DAGSTER_STORAGE_URL"
#: The repository's instance file (present in a checkout); installs without it get the minimal one below.
REPO_INSTANCE_YAML = Path(__file__).resolve().parent.parent.parent / "dagster.yaml"
MINIMAL_INSTANCE_YAML = f"""\
# Written by media-pipeline: Dagster keeps its runs and events in the catalog's PostgreSQL.
storage:
  postgres:
    postgres_url:
      env: {DAGSTER_STORAGE_ENV}
telemetry:
  enabled: false
"""


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
        config.write_text(wanted)
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
    return Pipeline(settings=settings, catalog=Catalog(conninfo), instance=DagsterInstance.get())
