"""What the dashboard shows about batches and the jobs it offers: every phase's numbers after a recovery, the
retry job for several failed batches, starting a batch by hand, keys that are not batch ids refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    evaluate_automation_conditions,
)

from media_assets import cli
from media_assets.batches import is_batch_id
from media_assets.catalog.phase_totals import phase_totals
from media_assets.catalog.repository import path_inside_source
from media_assets.catalog.states import FileState
from media_assets.definitions import defs
from media_assets.defs.batch.assets import PHASES
from media_assets.defs.instance import DAGSTER_STORAGE_ENV, Pipeline
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch
from media_assets.storage import folder_bytes
from media_assets.telegram.messages import report_text
from media_assets_tests.conftest import MakePipeline, present


@pytest.fixture
def cli_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI opens its own Dagster instance: a home of this test's, so no other test's database leaks in."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(DAGSTER_STORAGE_ENV, "unused: this home has no dagster.yaml")


def _photos(pipeline: Pipeline, *names: str) -> None:
    library = pipeline.settings.sources.folder_source_paths[0]
    for name in names:
        sample.make_photo(library / name, seed=zlib.crc32(name.encode()), size=(64, 48))


def _latest_metadata(pipeline: Pipeline, phase: str) -> dict[str, Any]:
    event = pipeline.instance.get_latest_materialization_event(AssetKey(phase))
    assert event is not None and event.asset_materialization is not None
    return {label: value.value for label, value in event.asset_materialization.metadata.items()}


def test_every_phase_reports_the_batch_totals_after_a_retry(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    names = ["a.jpg", "b.jpg", "c.jpg"]
    _photos(pipeline, *names)
    library = pipeline.settings.sources.folder_source_paths[0]
    destination = pipeline.settings.destinations.local_destination_dir
    (destination / "b.jpg").mkdir()  # a real fault: the upload of b.jpg fails, the batch stops there
    failed = run_batch(pipeline)
    assert not failed.success
    (destination / "b.jpg").rmdir()
    retried = run_batch(pipeline, failed.batch_id)
    assert retried.success

    # The retry found everything up to the upload done; its numbers are still the whole batch's.
    assert {p["phase"]: p["files"] for p in retried.phases}["download"] == 3  # the report's phase table
    download = _latest_metadata(pipeline, "download")
    assert (download["files"], download["failed"]) == (3, 0)
    assert download["bytes_in"] == sum((library / name).stat().st_size for name in names)
    for phase in ("deduplication", "compression", "file_preparation", "verification"):
        assert _latest_metadata(pipeline, phase)["files"] == 3, phase
    upload = _latest_metadata(pipeline, "icloud_upload")
    assert (upload["files"], upload["failed"], upload["uploaded"]) == (3, 0, 3)
    compression = _latest_metadata(pipeline, "compression")
    assert compression["bytes_in"] - compression["bytes_out"] == compression["bytes_saved"]
    # A measure is the run's own, never summed nor cut to a whole number among the batch's counts.
    verification = phase_totals(pipeline.catalog, retried.batch_id, "verification")
    assert "pruning_seconds" in _latest_metadata(pipeline, "verification")
    assert "pruning_seconds" not in verification.counts and verification.files == 3
    assert set(PHASES) <= {key.to_user_string() for key in pipeline.instance.all_asset_keys()}


def test_the_retry_job_finishes_several_failed_batches_without_redoing_finished_files(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    destination = pipeline.settings.destinations.local_destination_dir
    failed = []
    for names in (["a.jpg", "b.jpg"], ["c.jpg", "d.jpg"]):
        _photos(pipeline, *names)
        (destination / names[1]).mkdir()  # a real fault: the second file of each batch cannot be written
        report = run_batch(pipeline)
        assert not report.success
        failed.append(report.batch_id)
    assert pipeline.catalog.failed_batches() == failed
    for name in ("b.jpg", "d.jpg"):
        (destination / name).rmdir()

    result = defs.resolve_job_def("retry_failed_batches").execute_in_process(instance=pipeline.instance)
    assert result.success
    assert pipeline.catalog.failed_batches() == []
    for batch_id in failed:
        assert pipeline.catalog.count_by_state(batch_id) == {"verified": 2}
    assert sorted(p.name for p in destination.iterdir()) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    moves = pipeline.catalog.conn.execute(
        "SELECT to_state, count(*) AS n, count(DISTINCT file_id) AS files FROM state_changes"
        " WHERE to_state IN ('downloaded', 'uploaded', 'verified') GROUP BY to_state").fetchall()
    assert {row["to_state"]: (row["n"], row["files"]) for row in moves} == {
        "downloaded": (4, 4), "uploaded": (4, 4), "verified": (4, 4)}


def test_the_new_batch_job_starts_a_batch_with_an_id_of_its_own(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    job = defs.resolve_job_def("new_batch")
    assert job.execute_in_process(instance=pipeline.instance).success  # nothing new: no batch
    assert pipeline.catalog.recent_batches() == []
    _photos(pipeline, "a.jpg")
    assert job.execute_in_process(instance=pipeline.instance).success
    [batch] = pipeline.catalog.recent_batches()
    assert batch.status == "succeeded" and is_batch_id(batch.id)
    assert pipeline.instance.has_dynamic_partition("batch", batch.id)


def test_a_partition_key_that_is_not_a_batch_id_is_refused(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg")
    pipeline.instance.add_dynamic_partitions("batch", ["ui-test-1"])
    result = defs.resolve_job_def("media_batch").execute_in_process(partition_key="ui-test-1",
                                                                    instance=pipeline.instance, raise_on_error=False)
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert "'ui-test-1' is not a batch id" in present(failure.step_failure_data.error).message
    assert pipeline.catalog.batch("ui-test-1") is None and pipeline.catalog.count_by_state() == {}


def test_a_failed_upload_names_the_place_the_cause_and_the_first_file(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg", "b.jpg", "c.jpg")
    destination = pipeline.settings.destinations.local_destination_dir
    (destination / "b.jpg").mkdir()  # a real fault: b.jpg cannot be written there
    report = run_batch(pipeline)
    assert not report.success
    assert f"1 file(s) could not be copied to the local folder {destination}: " in (report.error or "")
    assert "(first: b.jpg)" in (report.error or "")
    assert "Is a directory" in (report.error or ""), report.error


def test_verification_carries_a_table_of_the_batch_files(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg")
    library = pipeline.settings.sources.folder_source_paths[0]
    (library / "sub").mkdir()
    (library / "sub" / "a.jpg").write_bytes((library / "a.jpg").read_bytes())  # same name, another folder
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff not a picture")
    assert run_batch(pipeline).success
    table = _latest_metadata(pipeline, "verification")["files_table"]
    rows = {record.data["source_path"]: record.data for record in table.records}
    assert set(rows) == {"a.jpg", "sub/a.jpg", "broken.jpg"}  # by their path inside the source folder
    kept, copy = sorted((rows["a.jpg"], rows["sub/a.jpg"]), key=lambda r: r["state"] == "duplicate")
    assert kept["state"] == "verified" and kept["compression"] and "local uploaded" in kept["destinations"]
    assert copy["state"] == "duplicate" and copy["duplicate_of"] == f"{kept['source_path']} (exact)"
    assert rows["broken.jpg"]["state"] == "quarantined"
    assert rows["broken.jpg"]["quarantine_reason"]


def test_find_prints_a_files_whole_history(make_pipeline: MakePipeline, cli_instance: None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = make_pipeline()
    _photos(pipeline, "IMG_1234.jpg", "other.jpg")
    report = run_batch(pipeline)
    assert report.success
    assert cli.main(["find", "img_1234"]) == 0
    out = capsys.readouterr().out
    library = pipeline.settings.sources.folder_source_paths[0]
    assert out.startswith("IMG_1234.jpg (file ") and f"batch {report.batch_id}): verified" in out
    assert f"  at the source: {library / 'IMG_1234.jpg'}\n" in out
    assert "other.jpg" not in out
    [file] = [f for f in pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
              if f.original_name == "IMG_1234.jpg"]
    [upload] = pipeline.catalog.uploads_of(file.id)
    assert f"destinations: local uploaded {upload.remote_id} verified" in out
    moves = [line.split("-> ")[1] for line in out.splitlines() if "-> " in line]
    assert moves[0] == "discovered" and moves[-1] == "verified" and "uploaded" in moves
    assert cli.main(["find", "nothing-like-this"]) == 0
    assert "no file in the catalog matches 'nothing-like-this'" in capsys.readouterr().out


def test_loading_the_definitions_warns_about_no_preview_feature() -> None:
    """Every code server start loads them: a warning there is repeated dozens of times a day in the logs."""
    script = ("import warnings; from dagster import PreviewWarning; warnings.simplefilter('error', PreviewWarning);"
              " import media_assets.definitions")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert loaded.returncode == 0, loaded.stderr[-2000:]


def test_status_json_gives_each_batch_the_destinations_and_the_next_step(
        make_pipeline: MakePipeline, cli_instance: None, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg", "b.jpg")
    library = pipeline.settings.sources.folder_source_paths[0]
    (library / "a-copy.jpg").write_bytes((library / "a.jpg").read_bytes())
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff not a picture")
    report = run_batch(pipeline)
    assert report.success
    assert cli.main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    [batch] = data["batches"]
    assert (batch["id"], batch["status"], batch["files"]) == (report.batch_id, "succeeded", 4)
    assert (batch["duplicates"], batch["quarantined"], batch["bytes_saved"]) == (1, 1, report.bytes_saved)
    local = data["destinations"]["local"]
    assert local["bytes"] == folder_bytes(pipeline.settings.destinations.local_destination_dir) > 0
    assert local["free_bytes"] > 0
    assert data["automation"]["mode"] == "once" and not data["automation"]["starts_batch"]
    assert "'once'" in data["automation"]["reason"]
    assert data["files_by_state"] == {"verified": 2, "duplicate": 1, "quarantined": 1}
    assert cli.main(["status"]) == 0
    text = capsys.readouterr().out
    assert f"{report.batch_id}  succeeded  4 files, 1 duplicates, 1 quarantined" in text
    assert "Automation (once): waits: PIPELINE_EXECUTION_MODE is 'once'" in text


def test_the_report_names_files_by_their_path_inside_the_source(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    _photos(pipeline, "x.jpg")
    (library / "trip").mkdir()
    (library / "trip" / "x.jpg").write_bytes((library / "x.jpg").read_bytes())  # same name, another folder
    (library / "trip" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a picture")
    report = run_batch(pipeline)
    assert report.success
    text = report.to_markdown()
    [duplicate] = report.duplicates
    assert {duplicate.source_path, duplicate.keeper_path} == {"x.jpg", "trip/x.jpg"}
    assert f"- {duplicate.source_path} is an exact duplicate of {duplicate.keeper_path}" in text
    assert "- trip/broken.jpg: " in text and str(library) not in text
    written = (pipeline.settings.storage.reports_dir / f"report-{report.batch_id}.md").read_text()
    assert written == text
    phone = report_text(report)
    assert f"• {duplicate.source_path} = {duplicate.keeper_path} (exact)" in phone
    assert "• trip/broken.jpg: " in phone and str(library) not in phone


def test_with_several_source_folders_a_path_starts_with_its_folders_name(tmp_path: Path) -> None:
    dad, mum = tmp_path / "Dad", tmp_path / "Mum"
    assert path_inside_source(str(mum / "2019" / "IMG_1.jpg"), [dad, mum]) == "Mum/2019/IMG_1.jpg"
    assert path_inside_source(str(mum / "2019" / "IMG_1.jpg"), [mum]) == "2019/IMG_1.jpg"
    assert path_inside_source("/elsewhere/IMG_1.jpg", [dad, mum]) == "/elsewhere/IMG_1.jpg"  # no longer a source
    assert path_inside_source("icloud:IMG_0001.HEIC", [dad]) == "icloud:IMG_0001.HEIC"


def test_a_name_holding_a_newline_is_named_on_one_line(tmp_path: Path) -> None:
    """A file called "new<LF>line.jpg" broke its report line (and the Markdown list) in two."""
    assert path_inside_source(str(tmp_path / "a\nb\tc\u2028d é.jpg"), [tmp_path]) == "a\\nb\\tc\\u2028d é.jpg"


def test_the_code_location_loads_as_the_webserver_and_daemon_load_it(tmp_path: Path) -> None:
    """`-m media_assets.definitions` must hold exactly one Definitions at module scope, or the location fails."""
    dagster = Path(sys.executable).parent / "dagster"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    loaded = subprocess.run([str(dagster), "definitions", "validate", "-m", "media_assets.definitions"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, check=False)
    assert loaded.returncode == 0, (loaded.stdout + loaded.stderr)[-3000:]


def test_library_stats_is_refreshed_for_a_batch_verified_while_it_refreshes() -> None:
    """A refresh that lands on the same automation tick as the next batch's verification must not swallow it
    (after a recovery, library_stats kept showing two failed batches)."""
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("batch", ["20261130-000001", "20261130-000002"])
    stats = AssetSelection.assets("library_stats")

    def verified(*keys: str) -> None:
        for key in keys:
            partition = None if key == "library_stats" else key.split("/")[1]
            asset = "library_stats" if partition is None else "verification"
            instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=partition))

    tick = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=stats)
    assert tick.total_requested == 0
    verified("verification/20261130-000001")
    tick = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=stats, cursor=tick.cursor)
    assert tick.total_requested == 1
    verified("library_stats", "verification/20261130-000002")  # the refresh lands, then the next batch is verified
    tick = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=stats, cursor=tick.cursor)
    assert tick.total_requested == 1
    tick = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=stats, cursor=tick.cursor)
    assert tick.total_requested == 0  # nothing new: no refresh


def test_status_times_each_phase_over_every_run_of_the_batch(make_pipeline: MakePipeline) -> None:
    """After a recovery, `status` must not read "download 0.0s" because the retry found the download done."""
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg", "b.jpg")
    destination = pipeline.settings.destinations.local_destination_dir
    (destination / "b.jpg").mkdir()
    failed = run_batch(pipeline)
    (destination / "b.jpg").rmdir()
    assert run_batch(pipeline, failed.batch_id).success
    # The first download took 30 s (set so, not measured); the retry's download did nothing.
    pipeline.catalog.conn.execute(
        "UPDATE phase_runs SET finished_at = started_at + interval '30 seconds' WHERE id = (SELECT min(id)"
        " FROM phase_runs WHERE batch_id = %s AND phase = 'download')", (failed.batch_id,))
    line = next(line for line in cli._status_text(pipeline).splitlines() if line.strip().startswith(failed.batch_id))
    download_seconds = float(line.split("download ")[1].split("s")[0])
    assert download_seconds >= 30.0
