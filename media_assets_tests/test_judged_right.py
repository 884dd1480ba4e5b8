"""Every file judged right through the whole road: its true extension, the displayed picture for near copies,
the most original name and the richest file as keeper."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from media_assets.catalog.states import FileState
from media_assets.media.sample_library import make_photo
from media_assets.runner import run_batch


def test_heic_bytes_named_jpg_arrive_everywhere_as_heic(make_pipeline, tmp_path: Path) -> None:
    library = tmp_path / "library"
    make_photo(library / "IMG_0007.JPG", size=(320, 240), fmt="HEIC", taken=datetime(2022, 4, 5, 6, 7, 8))
    pipeline = make_pipeline()
    report = run_batch(pipeline)
    assert report.success, report.error
    (file,) = pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
    assert file.media_format == "heic"
    assert file.sorted_path is not None and file.sorted_path.endswith("2022/04/05/IMG_0007.heic")
    (upload,) = pipeline.catalog.uploads_of(file.id)
    assert upload["remote_id"].endswith("IMG_0007.heic")
    assert (pipeline.settings.local_destination_dir / upload["remote_id"]).is_file()
