"""Sidecars (.AAE, .xmp, a Takeout .json) travel with their photo, and the download records the winning date tag."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from media_assets.catalog.sidecars import sidecars_of
from media_assets.catalog.states import FileState
from media_assets.destinations.configured import enabled_destinations
from media_assets.integrity import check_everything
from media_assets.media.identify import UnsupportedMedia, identify
from media_assets.media.sample_library import make_photo
from media_assets.phases.common import PhaseContext, run_phase
from media_assets.phases.download import download
from media_assets.runner import run_batch
from media_assets.sources.configured import enabled_sources
from media_assets.sources.folder import FolderSource
from media_assets.sources.sidecars import sidecars_by_owner
from media_assets_tests.conftest import MakePipeline
from media_assets_tests.metadata_writer import write_xmp_sidecar

TAKEOUT = '{"title": "beach.jpg", "photoTakenTime": {"timestamp": "1710453600"}, "geoData": {}}'


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["IMG_1.HEIC", "IMG_1.MOV", "IMG_1.AAE"], {"IMG_1.HEIC": ["IMG_1.AAE"]}),
        (["b.jpg", "b.jpg.json"], {"b.jpg": ["b.jpg.json"]}),
        (["b.jpg", "b.jpg.supplemental-metadata.json"], {"b.jpg": ["b.jpg.supplemental-metadata.json"]}),
        (["b.jpg", "b.jpg.supplemen.json"], {"b.jpg": ["b.jpg.supplemen.json"]}),
        (["IMG_3(1).JPG", "IMG_3.JPG(1).json"], {"IMG_3(1).JPG": ["IMG_3.JPG(1).json"]}),
        (["DSC_1.NEF", "DSC_1.NEF.xmp", "DSC_1.xmp"], {"DSC_1.NEF": ["DSC_1.NEF.xmp", "DSC_1.xmp"]}),
        (["notes.json", "a.jpg"], {}),
    ],
)
def test_sidecars_find_their_photo(names: list[str], expected: dict[str, list[str]]) -> None:
    assert sidecars_by_owner(names) == expected


def test_folder_source_hands_sidecars_with_their_photo(tmp_path: Path) -> None:
    make_photo(tmp_path / "beach.jpg", size=(64, 48))
    (tmp_path / "beach.jpg.json").write_text(TAKEOUT)
    (tmp_path / "beach.AAE").write_text("<plist/>")
    (tmp_path / "orphan.json").write_text("{}")
    items = {item.original_name: item for item in FolderSource([tmp_path]).scan()}
    assert sorted(items) == ["beach.jpg", "orphan.json"]
    assert sorted(name for _, name in items["beach.jpg"].sidecars) == ["beach.AAE", "beach.jpg.json"]


def test_download_keeps_sidecars_and_records_the_takeout_date(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    library = tmp_path / "library"
    make_photo(library / "beach.jpg", size=(64, 48), make=None, model=None)
    (library / "beach.jpg.json").write_text(TAKEOUT)
    (library / "beach.AAE").write_text("<plist/>")
    pipeline = make_pipeline(HOME_TIMEZONE="Asia/Tokyo", ENABLE_DEDUPLICATION="false")
    pipeline.catalog.create_batch("b1")
    ctx = PhaseContext(batch_id="b1", settings=pipeline.settings, catalog=pipeline.catalog)
    run_phase("download", ctx, lambda c, o: download(c, o, enabled_sources(pipeline.settings)))
    (photo,) = list(pipeline.catalog.iter_files("b1", FileState.DOWNLOADED))
    assert photo.original_name == "beach.jpg"
    assert not list(pipeline.catalog.iter_files("b1", FileState.QUARANTINED))
    # 1710453600 is 2024-03-14 22:00 UTC: 07:00 the next morning at home in Tokyo.
    assert (photo.captured_at, photo.capture_date_source, photo.capture_date_tag) == (
        datetime(2024, 3, 15, 7, 0), "source", "takeout_json")
    assert (photo.capture_time_zone, photo.capture_time_zone_source) == ("Asia/Tokyo", "home_timezone")
    kept = sidecars_of(pipeline.catalog, photo.id)
    assert sorted(s.name for s in kept) == ["beach.AAE", "beach.jpg.json"]
    assert all((pipeline.settings.storage.media_root / s.original_path).read_bytes() == (library / s.name).read_bytes()
               for s in kept)


def test_download_dates_a_photo_by_its_xmp_sidecar(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    library = tmp_path / "library"
    make_photo(library / "DSC_0007.jpg", size=(64, 48), make=None, model=None)
    write_xmp_sidecar(library / "DSC_0007.jpg.xmp", {"exif:DateTimeOriginal": "2021:08:14 18:30:05"})  # darktable
    pipeline = make_pipeline(ENABLE_DEDUPLICATION="false")
    pipeline.catalog.create_batch("b1")
    ctx = PhaseContext(batch_id="b1", settings=pipeline.settings, catalog=pipeline.catalog)
    run_phase("download", ctx, lambda c, o: download(c, o, enabled_sources(pipeline.settings)))
    (photo,) = list(pipeline.catalog.iter_files("b1", FileState.DOWNLOADED))
    assert (photo.captured_at, photo.capture_date_source, photo.capture_date_tag) == (
        datetime(2021, 8, 14, 18, 30, 5), "metadata", "sidecar_xmp_exif_datetimeoriginal")
    assert [s.name for s in sidecars_of(pipeline.catalog, photo.id)] == ["DSC_0007.jpg.xmp"]


def test_sidecars_reach_uploaded_beside_their_photo_and_the_report(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    library = tmp_path / "library"
    make_photo(library / "IMG_0001.JPG", size=(640, 480), taken=datetime(2023, 5, 6, 7, 8, 9))
    (library / "IMG_0001.AAE").write_text("<plist>edits</plist>")
    (library / "IMG_0001.JPG.json").write_text(TAKEOUT)
    pipeline = make_pipeline()
    report = run_batch(pipeline)
    assert report.success, report.error
    assert report.quarantined == []
    day = pipeline.settings.storage_dir("uploaded") / "2023/05/06"
    assert sorted(p.name for p in day.iterdir()) == ["IMG_0001.AAE", "IMG_0001.JPG", "IMG_0001.JPG.json"]
    assert (day / "IMG_0001.AAE").read_text() == "<plist>edits</plist>"
    assert sorted(Path(s["sidecar"]).name for s in report.sidecars) == ["IMG_0001.AAE", "IMG_0001.JPG.json"]
    assert "IMG_0001.AAE" in report.to_markdown()
    # verify --full checks them like the photo (no strays, bit rot found).
    integrity = check_everything(pipeline.settings, pipeline.catalog, enabled_destinations(pipeline.settings))
    assert integrity.ok, integrity.to_text()
    (day / "IMG_0001.AAE").write_text("<plist>changed</plist>")
    integrity = check_everything(pipeline.settings, pipeline.catalog, enabled_destinations(pipeline.settings))
    assert integrity.counts["differing"] == 1 and "sidecar" in integrity.to_text()


def test_a_sidecar_without_its_photo_is_named_so(tmp_path: Path) -> None:
    orphan = tmp_path / "IMG_0042.AAE"
    orphan.write_text('<?xml version="1.0"?><plist version="1.0"><dict/></plist>')
    with pytest.raises(UnsupportedMedia, match=r"a sidecar \(\.aae\) whose photo is not beside it"):
        identify(orphan)


def test_with_sorting_off_sidecars_stay_beside_the_kept_copy(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    library = tmp_path / "library"
    make_photo(library / "IMG_0002.JPG", size=(320, 240), taken=datetime(2023, 5, 6, 7, 8, 9))
    (library / "IMG_0002.xmp").write_text("<x:xmpmeta/>")
    pipeline = make_pipeline(ENABLE_SORTING="false")
    report = run_batch(pipeline)
    assert report.success, report.error
    (photo,) = pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
    kept = pipeline.settings.storage.media_root / (photo.sorted_path or "")
    (sidecar,) = sidecars_of(pipeline.catalog, photo.id)
    assert sidecar.sorted_path is not None
    assert (pipeline.settings.storage.media_root / sidecar.sorted_path) == kept.with_suffix(".xmp")
