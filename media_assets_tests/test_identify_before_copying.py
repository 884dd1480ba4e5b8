"""A file is identified at its source before a byte is copied: junk (a disk image, a log named .mov) and media
over its kind's size limit are quarantined by source path and reason, with nothing written to the storage."""

from __future__ import annotations

import os

import pytest

import media_assets.phases.download as download_phase
from media_assets.catalog.repository import MediaFile
from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.media.identify import MediaKind
from media_assets.phases.common import PhaseContext, run_phase
from media_assets.sources.configured import enabled_sources
from media_assets_tests.conftest import MakePipeline


def _download(pipeline: Pipeline) -> dict[str, MediaFile]:
    pipeline.catalog.create_batch("b1")
    ctx = PhaseContext(batch_id="b1", settings=pipeline.settings, catalog=pipeline.catalog)
    run_phase("download", ctx, lambda c, o: download_phase.download(c, o, enabled_sources(pipeline.settings)))
    return {f.original_name: f for f in pipeline.catalog.iter_files("b1", *FileState)}


def _stored_files(pipeline: Pipeline) -> list[str]:
    return sorted(p.name for p in pipeline.settings.storage.media_root.rglob("*") if p.is_file())


def test_a_non_media_file_is_quarantined_without_copying_its_bytes(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    junk = os.urandom(2_000_000)
    (library / "backup.mov").write_bytes(junk)
    sample.make_photo(library / "photo.jpg", size=(64, 48), seed=1)

    files = _download(pipeline)

    backup = files["backup.mov"]
    assert backup.state is FileState.QUARANTINED and "not a photo or video" in (backup.error or "")
    assert backup.original_path is None and backup.source_id.endswith("backup.mov"), "known by its source path"
    assert files["photo.jpg"].state is FileState.DOWNLOADED
    assert _stored_files(pipeline) == [f"{files['photo.jpg'].id}-photo.jpg"], "the junk's bytes were never copied"
    assert (library / "backup.mov").read_bytes() == junk


def test_media_above_its_kind_s_limit_is_refused_with_the_limit_named(make_pipeline: MakePipeline,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    (library / "panorama.jpg").write_bytes(sample.photo_bytes(size=(640, 480), seed=2))
    monkeypatch.setattr(download_phase, "SIZE_LIMITS", {MediaKind.PHOTO: 5_000, MediaKind.VIDEO: 10**12})

    files = _download(pipeline)

    panorama = files["panorama.jpg"]
    assert panorama.state is FileState.QUARANTINED
    assert "above the 5.0 kB limit for photos" in (panorama.error or ""), panorama.error
    assert _stored_files(pipeline) == []
