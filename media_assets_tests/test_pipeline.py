"""The whole road on a generated library: every phase, re-runs, incremental batches and the toggles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.media.hashing import sha256_file
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline, present
from media_assets_tests.first_phases import download_and_deduplicate


def _library(pipeline: Pipeline) -> Path:
    library = pipeline.settings.sources.folder_source_paths[0]
    sample.write_sample_library(library)
    return library


def _files(pipeline: Pipeline, batch_id: str) -> list:
    return list(pipeline.catalog.iter_files(batch_id, *FileState))


def _media_files_on_disk(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_a_batch_goes_through_every_phase(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    library = _library(pipeline)
    report = run_batch(pipeline)

    assert report.success, report.error
    assert report.phases_succeeded == report.phases_total == 8
    states = pipeline.catalog.count_by_state(report.batch_id)
    videos = 1 if (library / sample.VIDEO).exists() else 0
    assert states == {"verified": 5 + videos, "duplicate": 2, "quarantined": 1}
    # The exact and the near duplicate name their keepers; the corrupt file has its reason.
    duplicates = {(d.original_name, d.keeper_name, d.kind) for d in report.duplicates}
    assert duplicates == {(Path(sample.EXACT_DUPLICATE).name, Path(sample.HOLIDAY_NIGHT).name, "exact"),
                          (Path(sample.NEAR_DUPLICATE).name, Path(sample.HOLIDAY_DAY).name, "near")}
    [quarantined] = report.quarantined
    assert quarantined.original_name == "broken.jpg" and "truncated" in (quarantined.error or "")
    # Sorted by local capture date: 23:30 at +09:00 stays on the 1st of July.
    uploaded = pipeline.settings.storage_dir("uploaded")
    assert (uploaded / "2023/07/01" / Path(sample.HOLIDAY_NIGHT).name).is_file()
    assert (uploaded / "2024/01/05" / Path(sample.SCREENSHOT).name).is_file()
    # Every verified file is at the destination with the same bytes, and nothing half-written is left.
    destination = pipeline.settings.destinations.local_destination_dir
    for file in pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED):
        assert sha256_file(pipeline.settings.storage.media_root / present(file.sorted_path)) == file.output_hash
        [upload] = pipeline.catalog.uploads_of(file.id)
        assert upload.verified_at is not None
        assert sha256_file(destination / present(upload.remote_id)) == file.output_hash
    leftovers = [p for root in (pipeline.settings.storage.media_root, destination) for p in _media_files_on_disk(root)
                 if p.name.startswith((".partial-", ".syncthing."))]
    assert leftovers == []
    assert _media_files_on_disk(pipeline.settings.storage_dir("bridge")) == []
    # The source was only read.
    assert (library / sample.CORRUPT).exists() and (library / sample.EXACT_DUPLICATE).exists()
    # The report exists in both forms.
    reports = pipeline.settings.storage.reports_dir
    data = json.loads((reports / f"report-{report.batch_id}.json").read_text())
    assert data["files_processed"] == 8 + videos
    assert "| download | succeeded |" in (reports / f"report-{report.batch_id}.md").read_text()


def test_a_second_batch_takes_only_new_files_and_finds_late_duplicates(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    library = _library(pipeline)
    first = run_batch(pipeline)
    second = run_batch(pipeline)
    assert second.success and second.files_processed == 0

    shutil.copy(library / sample.GARDEN, library / "late-copy-of-garden.jpg")
    sample.make_photo(library / "new/IMG_20240601_120000.jpg", seed=99)
    third = run_batch(pipeline)
    assert third.success and third.files_processed == 2
    [late] = third.duplicates
    keeper = pipeline.catalog.get_file(late.keeper_id)
    assert keeper.batch_id == first.batch_id and keeper.original_name == Path(sample.GARDEN).name
    assert pipeline.catalog.count_by_state(third.batch_id) == {"verified": 1, "duplicate": 1}


def test_rerunning_a_finished_batch_does_nothing_twice(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    _library(pipeline)
    report = run_batch(pipeline)
    before = {f.id: (f.state, f.sorted_path) for f in _files(pipeline, report.batch_id)}
    destination_files = _media_files_on_disk(pipeline.settings.destinations.local_destination_dir)

    again = run_batch(pipeline, report.batch_id)
    assert again.success
    assert {f.id: (f.state, f.sorted_path) for f in _files(pipeline, report.batch_id)} == before
    assert _media_files_on_disk(pipeline.settings.destinations.local_destination_dir) == destination_files
    uploads = present(pipeline.catalog.conn.execute("SELECT count(*) AS n FROM uploads").fetchone())["n"]
    assert uploads == len([f for f in before.values() if f[0] is FileState.VERIFIED])


def test_a_batch_interrupted_after_deduplication_continues_where_it_stopped(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    _library(pipeline)
    batch_id = "interrupted"
    download_and_deduplicate(pipeline, batch_id)
    # A half-written temp file like the ones a killed copy leaves behind.
    (pipeline.settings.storage_dir("originals") / batch_id / ".partial-9-x.jpg").write_bytes(b"half")

    report = run_batch(pipeline, batch_id)
    assert report.success, report.error
    assert set(pipeline.catalog.count_by_state(batch_id)) == {"verified", "duplicate", "quarantined"}
    assert not list(pipeline.settings.storage_dir("originals").rglob(".partial-*"))
    changes = present(pipeline.catalog.conn.execute(
        "SELECT count(*) AS n FROM state_changes WHERE to_state = 'downloaded'").fetchone())["n"]
    assert changes == present(pipeline.catalog.conn.execute(
        "SELECT count(*) AS n FROM media_files WHERE content_hash IS NOT NULL AND state <> 'quarantined'"
    ).fetchone())["n"]


def test_compression_off_stages_the_originals(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(ENABLE_COMPRESSION="false")
    _library(pipeline)
    report = run_batch(pipeline)
    assert report.success
    assert next(p for p in report.phases if p["phase"] == "compression")["status"] == "skipped"
    for file in pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED):
        assert file.output_hash == file.content_hash
        assert file.compression_decision == "kept original: compression turned off"


def test_deduplication_off_lets_the_copy_flow_on(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(ENABLE_DEDUPLICATION="false")
    _library(pipeline)
    report = run_batch(pipeline)
    assert report.success and report.duplicates == []
    names = [f.original_name for f in pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)]
    assert Path(sample.EXACT_DUPLICATE).name in names and Path(sample.HOLIDAY_NIGHT).name in names


def test_sorting_and_verification_off(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(ENABLE_SORTING="false", ENABLE_VERIFICATION="false")
    _library(pipeline)
    report = run_batch(pipeline)
    assert report.success
    statuses = {p["phase"]: p["status"] for p in report.phases}
    assert statuses["sorting"] == statuses["verification"] == "skipped"
    states = pipeline.catalog.count_by_state(report.batch_id)
    assert "verified" not in states and states["sorted"] >= 6
    assert _media_files_on_disk(pipeline.settings.storage_dir("uploaded")) == []
    for file in pipeline.catalog.iter_files(report.batch_id, FileState.SORTED):
        assert file.sorted_path == file.staged_path
        assert (pipeline.settings.storage.media_root / present(file.sorted_path)).is_file()


def test_pixel_upload_writes_whole_files_into_the_sync_folder(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    pipeline = make_pipeline(ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR=str(tmp_path / "pixel"))
    _library(pipeline)
    report = run_batch(pipeline)
    assert report.success, report.error
    synced = _media_files_on_disk(tmp_path / "pixel")
    verified = list(pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED))
    assert len(synced) == len(verified)
    assert not [p for p in synced if p.name.startswith(".")]
    for file in verified:
        assert {u.destination for u in pipeline.catalog.uploads_of(file.id)} == {"local", "pixel"}


def test_uploads_off_still_sorts_and_verifies(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(ENABLE_ICLOUD_UPLOAD="false")
    _library(pipeline)
    report = run_batch(pipeline)
    assert report.success
    assert _media_files_on_disk(pipeline.settings.destinations.local_destination_dir) == []
    assert pipeline.catalog.count_by_state(report.batch_id)["verified"] >= 6


def test_verification_fails_loudly_when_a_kept_copy_is_damaged(make_pipeline: MakePipeline,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline()
    _library(pipeline)
    import media_assets.phases.sorting as sorting

    real_move = sorting.move_file

    def damaging_move(source: Path, target: Path, *, durable: bool = True) -> None:
        real_move(source, target, durable=durable)
        if target.name == Path(sample.GARDEN).name:
            target.write_bytes(b"bit rot")

    monkeypatch.setattr(sorting, "move_file", damaging_move)
    report = run_batch(pipeline)
    assert not report.success
    assert "not accounted for" in (report.error or "") and "DSC_0420.JPG" in (report.error or "")
    assert present(pipeline.catalog.batch(report.batch_id)).status == "failed"
    verification = next(p for p in report.phases if p["phase"] == "verification")
    assert verification["status"] == "failed"


def test_reports_keep_only_the_newest(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(REPORTS_KEEP="2")
    _library(pipeline)
    batches = [run_batch(pipeline).batch_id for _ in range(3)]
    kept = sorted(p.name for p in pipeline.settings.storage.reports_dir.iterdir())
    assert kept == sorted(f"report-{b}.{ext}" for b in batches[1:] for ext in ("json", "md"))


def test_each_phase_reports_numbers_dagster_can_plot(make_pipeline: MakePipeline) -> None:
    from dagster import AssetKey

    pipeline = make_pipeline()
    _library(pipeline)
    report = run_batch(pipeline)
    event = present(pipeline.instance.get_latest_materialization_event(AssetKey("download")))
    materialization = present(event.asset_materialization)
    assert materialization.partition == report.batch_id
    metadata: dict[str, Any] = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["files"] == report.files_processed and metadata["quarantined"] == 1
    assert isinstance(metadata["bytes_in"], int) and metadata["bytes_in"] > 0
    assert isinstance(metadata["seconds"], float)
