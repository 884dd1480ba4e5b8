"""Resources: the only place that knows where settings, the catalog database and the outside world are."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from media_assets.catalog.database import resolve_conninfo
from media_assets.catalog.migrate import upgrade_to_head
from media_assets.catalog.repository import Catalog
from media_assets.destinations.base import Destination
from media_assets.destinations.configured import enabled_destinations, pixel_destination, primary_destination
from media_assets.settings import Settings, prepare_folders, process_settings

_migrated: set[str] = set()


class SettingsResource(ConfigurableResource):
    """The checked settings, read once per process (a run in this process gets the settings it was started
    with); `settings_file` empty means MEDIA_PIPELINE_SETTINGS or ./settings.env."""

    settings_file: str = ""

    def load(self) -> Settings:
        return process_settings(Path(self.settings_file) if self.settings_file else None)


class CatalogResource(ConfigurableResource):
    """The PostgreSQL catalog (embedded or external), migrated to the newest schema on first use."""

    settings: SettingsResource

    _catalog: Catalog | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        settings = self.settings.load()
        conninfo = resolve_conninfo(settings)
        if conninfo not in _migrated:  # the first run or sensor of this process: the pipeline starts here
            prepare_folders(settings)
            upgrade_to_head(conninfo)
            _migrated.add(conninfo)
        self._catalog = Catalog(conninfo)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._catalog is not None:
            self._catalog.close()

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            raise RuntimeError("CatalogResource used outside of a run")
        return self._catalog


class DestinationsResource(ConfigurableResource):
    """Where files go: iCloud Photos once an account is configured (else LOCAL_DESTINATION_DIR) and the Pixel's
    sync folder. The upload phases and verification get the same destinations from here."""

    settings: SettingsResource

    def primary(self) -> Destination:
        """The destination of the `icloud_upload` phase."""
        return primary_destination(self.settings.load())

    def pixel(self) -> Destination | None:
        return pixel_destination(self.settings.load())

    def enabled(self) -> dict[str, Destination]:
        """The destinations every file must reach (or be declined by) before it is sorted."""
        return enabled_destinations(self.settings.load())
