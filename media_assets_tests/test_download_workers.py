"""The download phase identifies and dates its files in worker processes while it copies the next ones, and
records them as before: in the order they came, a broken file quarantined with its reason among good ones."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import pytest

import media_assets.phases.download as download_phase
from media_assets.catalog.states import FileState
from media_assets.media import sample_library as sample
from media_assets.phases.common import PhaseContext, run_phase
from media_assets.phases.workers import Workers
from media_assets.sources.configured import enabled_sources
from media_assets_tests.conftest import MakePipeline


class CountedWorkers(Workers):
    """The phase's pools, remembered with the number of workers each was given."""

    made: list[int] = []

    def __init__(self, count: int, **options: Any) -> None:
        super().__init__(count, **options)
        CountedWorkers.made.append(count)


def test_files_are_identified_in_worker_processes_and_a_truncated_jpeg_is_still_quarantined(
        make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    good = {f"IMG_{n:02d}.jpg": sample.photo_bytes(size=(64, 48), seed=n, taken=datetime(2020, 5, n + 1, 9, 30))
            for n in range(18)}
    truncated = sample.photo_bytes(size=(320, 240), seed=40)
    for name, data in good.items():
        (library / name).write_bytes(data)
    (library / "IMG_08b.jpg").write_bytes(truncated[: len(truncated) // 2])
    sample.make_photo(library / "IMG_09b.jpg", size=(64, 48), seed=41, fmt="PNG")  # a PNG named .jpg
    monkeypatch.setattr(download_phase, "available_cores", lambda: 2)
    monkeypatch.setattr(download_phase, "Workers", CountedWorkers)
    CountedWorkers.made.clear()

    pipeline.catalog.create_batch("b1")
    ctx = PhaseContext(batch_id="b1", settings=pipeline.settings, catalog=pipeline.catalog)
    outcome = run_phase("download", ctx, lambda c, o: download_phase.download(c, o, enabled_sources(pipeline.settings)))

    assert CountedWorkers.made[-1] == 2, "20 files: two worker processes identify them"
    assert (outcome.files, outcome.counts["photos"], outcome.counts["quarantined"]) == (20, 19, 1)
    files = {f.original_name: f for f in pipeline.catalog.iter_files("b1", *FileState)}
    assert [f.original_name for f in sorted(files.values(), key=lambda f: f.id)] == sorted(files), "in scan order"
    broken = files["IMG_08b.jpg"]
    assert broken.state is FileState.QUARANTINED and (broken.error or "").startswith("truncated JPEG"), broken.error
    assert broken.original_path == f"quarantine/b1/{broken.id}-IMG_08b.jpg"
    assert ctx.path(broken.original_path).read_bytes() == truncated[: len(truncated) // 2]
    png = files["IMG_09b.jpg"]
    assert png.state is FileState.DOWNLOADED and png.media_format == "png"
    assert png.original_path == f"originals/b1/{png.id}-IMG_09b.png", "renamed to what its bytes are"
    for n, (name, data) in enumerate(good.items()):
        file = files[name]
        assert file.state is FileState.DOWNLOADED and file.media_format == "jpeg"
        assert (file.width, file.height) == (64, 48)
        assert file.content_hash == hashlib.sha256(data).hexdigest()
        assert ctx.path(file.original_path or "").read_bytes() == data
        assert file.captured_at == datetime(2020, 5, n + 1, 9, 30) and file.capture_date_tag == "exif_datetimeoriginal"
    assert ctx.progress.done == 20
