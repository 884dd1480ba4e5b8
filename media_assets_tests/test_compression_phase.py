"""The compression phase inside a batch: outputs, catalog records, Dagster metadata, crashes and re-runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from dagster import AssetKey

from media_assets.catalog.repository import MediaFile
from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.media.hashing import sha256_file
from media_assets.phases import common, compression
from media_assets.phases.common import PhaseContext, run_phase
from media_assets.runner import run_batch
from media_assets.settings import SettingsError
from media_assets_tests.conftest import MakePipeline, present
from media_assets_tests.first_phases import download_and_deduplicate
from media_assets_tests.test_compression import camera_jpeg

HIGH_QUALITY = "2024/camera/IMG_20240601_120000.jpg"


def _library(pipeline: Pipeline) -> Path:
    library = pipeline.settings.sources.folder_source_paths[0]
    sample.write_sample_library(library)
    (library / HIGH_QUALITY).parent.mkdir(parents=True)
    camera_jpeg(library / HIGH_QUALITY, 96, size=(1600, 1200))
    return library


def _quality(pipeline: Pipeline, file_id: int) -> float | None:
    return present(pipeline.catalog.conn.execute("SELECT quality_score FROM media_files WHERE id = %s",
                                                 (file_id,)).fetchone())["quality_score"]


@pytest.mark.slow
def test_a_batch_saves_bytes_and_records_every_decision(make_pipeline: MakePipeline) -> None:
    # More than 4 files: the process pool does the work. Originals kept after verification, to check them.
    pipeline = make_pipeline(COMPRESSION_WORKERS="2", KEEP_ORIGINALS="always")
    library = _library(pipeline)
    report = run_batch(pipeline)
    assert report.success, report.error
    files = {f.original_name: f for f in pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)}
    camera = files[Path(HIGH_QUALITY).name]
    assert present(camera.compression_decision).startswith("re-encoded from ~q96 to q85")
    assert present(camera.output_size) <= 0.9 * present(camera.size_bytes)
    assert present(_quality(pipeline, camera.id)) >= 0.98
    assert (library / HIGH_QUALITY).stat().st_size == camera.size_bytes  # the source was only read
    assert sha256_file(pipeline.settings.storage.media_root / present(camera.original_path)) == camera.content_hash
    heic = files[Path(sample.HEIC_PHOTO).name]
    assert heic.output_hash == heic.content_hash and "HEIC stays HEIC" in (heic.compression_decision or "")
    for file in files.values():
        assert file.compression_decision and present(file.output_size) <= present(file.size_bytes)
        assert sha256_file(pipeline.settings.storage.media_root / present(file.sorted_path)) == file.output_hash
    assert not list(pipeline.settings.storage_dir("compressed").rglob(".partial-*"))

    event = present(pipeline.instance.get_latest_materialization_event(AssetKey("compression")))
    metadata: dict[str, Any] = {k: v.value for k, v in present(event.asset_materialization).metadata.items()}
    saved = sum(present(f.size_bytes) - present(f.output_size) for f in files.values())
    assert metadata["bytes_saved"] == saved > 0
    assert 0.98 <= metadata["quality_min"] <= metadata["quality_median"] <= 1.0
    assert metadata["reencoded"] >= 1


def test_a_crash_while_compressing_lets_the_original_flow_on(make_pipeline: MakePipeline,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(COMPRESSION_WORKERS="1")
    _library(pipeline)
    batch_id = "crash"
    ctx = download_and_deduplicate(pipeline, batch_id)

    def explode(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(compression, "compress_photo", explode)
    outcome = run_phase("compression", ctx, compression.compress)
    assert outcome.status == "succeeded" and outcome.counts["compression_failed"] >= 5
    states = pipeline.catalog.count_by_state(batch_id)
    assert "unique" not in states and states["compressed"] == outcome.files
    for file in pipeline.catalog.iter_files(batch_id, FileState.COMPRESSED):
        if file.media_type == "photo":
            assert file.output_path == file.original_path and file.output_hash == file.content_hash
            assert "compression failed: MemoryError: out of memory" in (file.compression_decision or "")


@pytest.mark.parametrize(("name", "value"), [("COMPRESSION_MIN_SSIM", "1.5"), ("COMPRESSION_JPEG_QUALITY", "x"),
                                             ("COMPRESSION_VIDEO_CODEC", "av1")])
def test_wrong_settings_are_named(make_pipeline: MakePipeline, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):  # refused as the settings are read, before any phase
        compression.CompressionConfig.from_settings(make_pipeline(**{name: value}).settings)


@pytest.mark.parametrize(("media_type", "size", "alone"), [
    ("video", (1920, 1080), True), ("video", (3840, 2160), True), ("video", None, True),
    ("video", (1280, 720), False), ("photo", (4000, 3000), False)])
def test_a_large_video_is_compressed_with_no_other_file_beside_it(media_type: str, size: tuple[int, int] | None,
                                                                   alone: bool) -> None:
    """ffmpeg at 1080p (~150 MB) beside a 12 MP re-encode (~140 MB) was the run's memory peak."""
    width, height = size or (None, None)
    file = cast(MediaFile, SimpleNamespace(media_type=media_type, width=width, height=height))
    assert compression.runs_alone(file) is alone


def test_a_phase_starts_by_giving_back_the_memory_the_previous_one_freed(make_pipeline: MakePipeline,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Deduplication holds the batch's fingerprints and near index in the run's process; once freed, glibc kept
    the pages while compression's workers (the run's peak) ran beside it."""
    pipeline = make_pipeline()
    pipeline.catalog.create_batch("trim")
    ctx = PhaseContext(batch_id="trim", settings=pipeline.settings, catalog=pipeline.catalog)
    happened: list[str] = []
    monkeypatch.setattr(common, "release_freed_memory", lambda: happened.append("released"))
    run_phase("compression", ctx, lambda _ctx, _outcome: happened.append("compressed"))
    assert happened == ["released", "compressed"]
