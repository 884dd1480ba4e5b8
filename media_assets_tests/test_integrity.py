"""`media-pipeline verify --full` finds bit rot, missing copies and strays, and says so in its exit status."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from dagster import build_schedule_context

from media_assets.catalog.database import dagster_storage_url
from media_assets.catalog.states import FileState
from media_assets.cli import main
from media_assets.definitions import defs
from media_assets.defs.instance import DAGSTER_STORAGE_ENV
from media_assets.defs.resources import SettingsResource
from media_assets.destinations.configured import enabled_destinations
from media_assets.integrity import check_everything
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def finished(make_pipeline):
    pipeline = make_pipeline()
    sample.write_sample_library(pipeline.settings.sources.folder_source_paths[0])
    report = run_batch(pipeline)
    assert report.success
    return pipeline, report


def _check(pipeline):
    return check_everything(pipeline.settings, pipeline.catalog, enabled_destinations(pipeline.settings))


def test_a_healthy_library_matches(finished) -> None:
    pipeline, report = finished
    result = _check(pipeline)
    assert result.ok, result.to_text()
    verified = pipeline.catalog.count_by_state(report.batch_id)["verified"]
    # Kept copies and destination copies hold their bytes; the originals were pruned (the folder holds them).
    assert result.counts["matching"] >= 2 * verified
    assert result.counts["pruned"] >= verified


def test_one_flipped_byte_missing_copy_and_stray_are_reported(finished) -> None:
    pipeline, report = finished
    files = list(pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED))
    _flip_one_byte(pipeline.settings.storage.media_root / files[0].sorted_path)
    [upload] = pipeline.catalog.uploads_of(files[1].id)
    (pipeline.settings.destinations.local_destination_dir / upload.remote_id).unlink()
    (pipeline.settings.storage_dir("uploaded") / "stray.jpg").write_bytes(b"who am I")

    result = _check(pipeline)
    assert not result.ok
    assert result.counts["differing"] == 1 and result.counts["missing"] == 1 and result.counts["unknown_extra"] == 1
    assert any(files[0].sorted_path in p for p in result.problems)


def test_the_command_exits_non_zero_on_bit_rot(finished, monkeypatch, tmp_path, capsys) -> None:
    pipeline, report = finished
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv(DAGSTER_STORAGE_ENV, dagster_storage_url(pipeline.catalog.conninfo))
    assert main(["verify", "--full"]) == 0
    [file, *_] = pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
    _flip_one_byte(pipeline.settings.storage.media_root / file.sorted_path)
    assert main(["verify", "--full"]) == 1
    assert "1 differing" in capsys.readouterr().out


def test_a_flipped_byte_at_the_destination_is_differing_and_a_stray_there_is_extra(finished) -> None:
    pipeline, report = finished
    destination = pipeline.settings.destinations.local_destination_dir
    files = list(pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED))
    [upload] = pipeline.catalog.uploads_of(files[0].id)
    _flip_one_byte(destination / upload.remote_id)
    (destination / "not-ours.jpg").write_bytes(b"put there by hand")

    result = _check(pipeline)
    assert (result.counts["differing"], result.counts["missing"], result.counts["unknown_extra"]) == (1, 0, 1)
    assert any(upload.remote_id in p and p.startswith("differing") for p in result.problems)
    assert "unknown_extra: local not-ours.jpg: at the destination, not sent by the pipeline" in result.problems


def test_the_weekly_scrub_is_off_in_once_mode_and_reports_its_counts_as_a_check(finished, make_pipeline,
                                                                                 tmp_path: Path) -> None:
    pipeline, report = finished
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    schedule = defs.get_schedule_def("weekly_scrub")
    with build_schedule_context(instance=pipeline.instance, resources={"settings": settings}) as context:
        skipped = schedule.evaluate_tick(context)
    assert not skipped.run_requests and "'once'" in (skipped.skip_message or "")

    [file, *_] = pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
    _flip_one_byte(pipeline.settings.storage.media_root / file.sorted_path)
    result = defs.resolve_job_def("scrub").execute_in_process(instance=pipeline.instance, raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["differing"].value == 1 and evaluation.metadata["missing"].value == 0
    assert evaluation.metadata["matching"].value > 0

    make_pipeline(PIPELINE_EXECUTION_MODE="interval")
    sunday = datetime(2026, 11, 29, 3, tzinfo=timezone.utc)
    with build_schedule_context(instance=pipeline.instance, scheduled_execution_time=sunday,
                                resources={"settings": SettingsResource(settings_file=str(tmp_path / "settings.env"))}
                                ) as context:
        [request] = schedule.evaluate_tick(context).run_requests or []
    assert request.run_key == "scrub-20261129"
