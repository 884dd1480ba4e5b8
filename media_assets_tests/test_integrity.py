"""`media-pipeline verify --full` finds bit rot, missing copies and strays, and says so in its exit status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from dagster import build_schedule_context

from media_assets import find
from media_assets.catalog.database import dagster_storage_url
from media_assets.catalog.integrity import last_integrity_check
from media_assets.catalog.states import FileState
from media_assets.cli import main
from media_assets.definitions import defs
from media_assets.defs.instance import DAGSTER_STORAGE_ENV, Pipeline
from media_assets.defs.resources import SettingsResource
from media_assets.destinations.configured import enabled_destinations
from media_assets.integrity import IntegrityReport, check_everything
from media_assets.media import sample_library as sample
from media_assets.media.hashing import sha256_file
from media_assets.reporting import RunReport
from media_assets.runner import run_batch
from media_assets.storage import copy_identity
from media_assets_tests.conftest import MakePipeline, present
from media_assets_tests.telegram_stub import TelegramStub
from media_assets_tests.test_telegram import telegram_settings


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def finished(make_pipeline: MakePipeline) -> tuple[Pipeline, RunReport]:
    pipeline = make_pipeline()
    sample.write_sample_library(pipeline.settings.sources.folder_source_paths[0])
    report = run_batch(pipeline)
    assert report.success
    return pipeline, report


def _check(pipeline: Pipeline) -> IntegrityReport:
    return check_everything(pipeline.settings, pipeline.catalog, enabled_destinations(pipeline.settings))


def test_a_healthy_library_matches(finished: tuple[Pipeline, RunReport]) -> None:
    pipeline, report = finished
    result = _check(pipeline)
    assert result.ok, result.to_text()
    verified = pipeline.catalog.count_by_state(report.batch_id)["verified"]
    # Kept copies and destination copies hold their bytes; the originals were pruned (the folder holds them).
    assert result.counts["matching"] >= 2 * verified
    assert result.counts["pruned"] >= verified


def test_one_flipped_byte_missing_copy_and_stray_are_reported(finished: tuple[Pipeline, RunReport]) -> None:
    pipeline, report = finished
    files = list(pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED))
    flipped = present(files[0].sorted_path)
    _flip_one_byte(pipeline.settings.storage.media_root / flipped)
    [upload] = pipeline.catalog.uploads_of(files[1].id)
    (pipeline.settings.destinations.local_destination_dir / present(upload.remote_id)).unlink()
    (pipeline.settings.storage_dir("uploaded") / "stray.jpg").write_bytes(b"who am I")

    result = _check(pipeline)
    assert not result.ok
    assert result.counts["differing"] == 1 and result.counts["missing"] == 1 and result.counts["unknown_extra"] == 1
    assert any(flipped in p for p in result.problems)


def test_the_command_exits_non_zero_on_bit_rot(finished: tuple[Pipeline, RunReport], monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline, report = finished
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv(DAGSTER_STORAGE_ENV, dagster_storage_url(pipeline.catalog.conninfo))
    assert main(["verify", "--full"]) == 0
    [file, *_] = pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
    _flip_one_byte(pipeline.settings.storage.media_root / present(file.sorted_path))
    assert main(["verify", "--full"]) == 1
    assert "1 differing" in capsys.readouterr().out


def test_a_flipped_byte_at_the_destination_is_differing_and_a_stray_there_is_extra(finished: tuple[Pipeline,
                                                                                   RunReport]) -> None:
    pipeline, report = finished
    destination = pipeline.settings.destinations.local_destination_dir
    files = list(pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED))
    [upload] = pipeline.catalog.uploads_of(files[0].id)
    remote_id = present(upload.remote_id)
    _flip_one_byte(destination / remote_id)
    (destination / "not-ours.jpg").write_bytes(b"put there by hand")

    result = _check(pipeline)
    assert (result.counts["differing"], result.counts["missing"], result.counts["unknown_extra"]) == (1, 0, 1)
    assert any(remote_id in p and p.startswith("differing") for p in result.problems)
    assert "unknown_extra: local not-ours.jpg: at the destination, not sent by the pipeline" in result.problems


def test_the_weekly_scrub_is_off_in_once_mode_and_reports_its_counts_as_a_check(make_pipeline: MakePipeline,
                                                                                 tmp_path: Path) -> None:
    pixel = tmp_path / "pixel"
    pipeline = make_pipeline(ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR=str(pixel))
    for n in range(3):
        sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / f"IMG_{n}.jpg", seed=n, size=(64, 48))
    report = run_batch(pipeline)
    assert report.success, report.error
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    schedule = defs.get_schedule_def("weekly_scrub")
    with build_schedule_context(instance=pipeline.instance, resources={"settings": settings}) as context:
        skipped = schedule.evaluate_tick(context)
    assert not skipped.run_requests and "'once'" in (skipped.skip_message or "")

    file, other = list(pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED))[:2]
    _flip_one_byte(pipeline.settings.storage.media_root / present(file.sorted_path))
    _flip_one_byte(pixel / (present(pipeline.catalog.upload_for(other.id, "pixel")).remote_id or ""))
    (pixel / "Camera").mkdir()
    (pixel / "Camera" / "PXL_1.jpg").write_bytes(b"taken on the phone")
    (pipeline.settings.destinations.local_destination_dir / "by-hand.jpg").write_bytes(b"copied there by hand")
    result = defs.resolve_job_def("scrub").execute_in_process(instance=pipeline.instance, raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    metadata: dict[str, Any] = {key: value.value for key, value in evaluation.metadata.items()}
    assert (metadata["differing"], metadata["missing"], metadata["unknown_extra"]) == (2, 0, 2)
    assert (metadata["kept_differing"], metadata["pixel_differing"]) == (1, 1)  # a flipped byte is not "missing"
    assert (metadata["local_unknown_extra"], metadata["pixel_unknown_extra"]) == (1, 1)
    assert (metadata["local_matching"], metadata["pixel_matching"]) == (3, 2)
    last = last_integrity_check(pipeline.catalog)
    assert last is not None and last.started_by == "ui" and not last.ok and last.counts["pixel_differing"] == 1

    make_pipeline(PIPELINE_EXECUTION_MODE="interval")
    sunday = datetime(2026, 11, 29, 3, tzinfo=timezone.utc)
    with build_schedule_context(instance=pipeline.instance, scheduled_execution_time=sunday,
                                resources={"settings": SettingsResource(settings_file=str(tmp_path / "settings.env"))}
                                ) as context:
        [request] = schedule.evaluate_tick(context).run_requests or []
    assert request.run_key == "scrub-20261129"


# --- verify --repair, the alert and the record --------------------------------------------------------------------

@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    server = TelegramStub().start()
    yield server
    server.stop()


def _cli(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`main` uses this test's catalog and a Dagster home of its own."""
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv(DAGSTER_STORAGE_ENV, dagster_storage_url(pipeline.catalog.conninfo))


def test_verify_repair_sends_a_bad_and_a_missing_copy_again_and_leaves_matching_ones_alone(
        make_pipeline: MakePipeline, stub: TelegramStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pixel = tmp_path / "pixel"
    pipeline = make_pipeline(ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR=str(pixel), **telegram_settings(stub))
    library = pipeline.settings.sources.folder_source_paths[0]
    (library / "2019" / "Trip").mkdir(parents=True)
    for n, name in enumerate(("2019/Trip/IMG_1.jpg", "2019/IMG_2.jpg", "IMG_3.jpg")):
        sample.make_photo(library / name, seed=n, size=(64, 48))
    report = run_batch(pipeline)
    assert report.success, report.error
    _cli(pipeline, monkeypatch, tmp_path)
    sent_before = len(stub.sent)
    local = pipeline.settings.destinations.local_destination_dir
    by_name = {f.original_name: f for f in pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)}
    bad = pipeline.catalog.upload_for(by_name["IMG_1.jpg"].id, "local")
    gone = pipeline.catalog.upload_for(by_name["IMG_2.jpg"].id, "pixel")
    assert bad and gone and bad.remote_id and gone.remote_id
    _flip_one_byte(local / bad.remote_id)
    (pixel / gone.remote_id).unlink()
    untouched = {path: path.stat().st_mtime_ns for folder in (local, pixel) for path in folder.iterdir()
                 if path.name != bad.remote_id}

    assert main(["verify", "--full"]) == 1
    out = capsys.readouterr().out
    assert "1 differing, 1 missing" in out.splitlines()[0]
    assert f"differing: 2019/Trip/IMG_1.jpg at local ({bad.remote_id}): the copy there does not match" in out
    assert f"missing: 2019/IMG_2.jpg at pixel ({gone.remote_id})" in out
    assert "local: " in out and "1 differing" in out.split("local: ")[1].splitlines()[0]
    [alert] = stub.wait_for_sent(sent_before + 1)[sent_before:]
    assert "verify --full (by hand) found problems" in alert.text and "2019/Trip/IMG_1.jpg at local" in alert.text
    assert "verify --repair" in alert.text

    assert main(["verify", "--repair"]) == 0
    out = capsys.readouterr().out
    assert "2 repaired" in out
    assert f"repaired: 2019/Trip/IMG_1.jpg at local ({bad.remote_id}): sent again from the kept copy" in out
    assert sha256_file(local / bad.remote_id) == bad.checksum and sha256_file(pixel / gone.remote_id) == gone.checksum
    assert {path: path.stat().st_mtime_ns for path in untouched} == untouched  # matching copies never rewritten
    for damaged, folder in ((bad, local), (gone, pixel)):  # the new copies' identities, for verification's stat
        repaired = pipeline.catalog.upload_for(damaged.file_id, damaged.destination)
        assert repaired and repaired.copy_identity == copy_identity(folder / present(damaged.remote_id))
    history = find.file_history_text(pipeline.catalog, "IMG_1.jpg", pipeline.settings.sources.folder_source_paths)
    assert f"verified -> verified (repaired at local: the differing copy {bad.remote_id} sent again" in history

    assert main(["verify", "--full"]) == 0
    out = capsys.readouterr().out
    assert "0 differing, 0 missing, 0 unknown extra, 0 errors" in out
    assert main(["status", "--json"]) == 0
    last = json.loads(capsys.readouterr().out)["last_verify"]
    assert last["ok"] and last["started_by"] == "cli" and not last["repair"] and last["counts"]["differing"] == 0
    assert main(["status"]) == 0
    assert "Last verify --full: " in capsys.readouterr().out


def test_repair_never_sends_a_kept_copy_that_does_not_match_the_catalog(
        finished: tuple[Pipeline, RunReport], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pipeline, report = finished
    _cli(pipeline, monkeypatch, tmp_path)
    [file, *_] = pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
    [upload] = pipeline.catalog.uploads_of(file.id)
    destination = pipeline.settings.destinations.local_destination_dir / (upload.remote_id or "")
    destination.unlink()
    _flip_one_byte(pipeline.settings.storage.media_root / (file.sorted_path or ""))
    assert main(["verify", "--repair"]) == 1
    out = capsys.readouterr().out
    assert "does not match the catalog either, so it is not sent" in out and not destination.exists()
    assert main(["status"]) == 0
    assert "with --repair): 2 PROBLEM(S) LEFT" in capsys.readouterr().out  # the destination copy and the kept one
