"""Optional capabilities of sources and destinations are typed protocols, found with isinstance; one resource
gives the upload phases and verification the same destinations."""

from __future__ import annotations

from pathlib import Path

from media_assets.defs.resources import DestinationsResource, SettingsResource
from media_assets.destinations.base import Destination, UploadsInGroups
from media_assets.destinations.folder import FolderDestination
from media_assets.destinations.icloud import ICloudDestination
from media_assets.sources.base import ListsCheaply, TakesLocalFile
from media_assets.sources.folder import FolderSource
from media_assets.sources.icloud import ICloudSource
from media_assets_tests.conftest import write_settings


def test_capabilities_are_protocols_the_classes_meet() -> None:
    assert issubclass(ICloudSource, TakesLocalFile) and not issubclass(FolderSource, TakesLocalFile)
    assert issubclass(ICloudDestination, UploadsInGroups) and not issubclass(FolderDestination, UploadsInGroups)
    folder = FolderSource([Path("library")])
    assert isinstance(folder, ListsCheaply) and folder.cheap_listing


def test_the_upload_phases_and_verification_get_the_same_destinations(tmp_path: Path) -> None:
    settings_file = write_settings(tmp_path, ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR="pixel")
    destinations = DestinationsResource(settings=SettingsResource(settings_file=str(settings_file)))
    primary, pixel = destinations.primary(), destinations.pixel()
    assert pixel is not None
    enabled: dict[str, Destination] = destinations.enabled()
    assert {name: type(d) for name, d in enabled.items()} == {primary.name: type(primary), pixel.name: type(pixel)}
    local = enabled["local"]
    assert isinstance(local, FolderDestination) and isinstance(primary, FolderDestination)
    assert local.folder == primary.folder == (tmp_path / "destination").resolve()
