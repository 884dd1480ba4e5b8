"""Operations in process: the library's numbers, the asset checks failing when they should, the refresh of
`library_stats` after each batch, and `media-pipeline retry-failed` after a real upload failure."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    TableMetadataValue,
    evaluate_automation_conditions,
    materialize,
)

from media_assets import cli
from media_assets.catalog.dashboard import totals_by_month
from media_assets.catalog.states import FileState
from media_assets.definitions import defs
from media_assets.defs.instance import DAGSTER_STORAGE_ENV, Pipeline
from media_assets.defs.library.assets import library_stats
from media_assets.defs.library.checks import free_space
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.media import sample_library as sample
from media_assets.media.hashing import sha256_file
from media_assets.operations import (
    check_free_space,
    check_no_file_in_between,
    check_uploads_verified,
)
from media_assets.operations import (
    library_stats as compute_library_stats,
)
from media_assets.runner import run_batch
from media_assets.storage import folder_bytes
from media_assets_tests.conftest import MakePipeline, present


def _photos(pipeline: Pipeline, *names: str) -> None:
    library = pipeline.settings.sources.folder_source_paths[0]
    for name in names:
        sample.make_photo(library / name, seed=zlib.crc32(name.encode()), size=(64, 48))


def test_library_stats_count_the_whole_library(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg", "b.jpg")
    library = pipeline.settings.sources.folder_source_paths[0]
    (library / "a-copy.jpg").write_bytes((library / "a.jpg").read_bytes())
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff not a picture")
    assert run_batch(pipeline).success
    _photos(pipeline, "c.jpg")
    assert run_batch(pipeline).success

    stats = compute_library_stats(pipeline.catalog, pipeline.settings)
    assert all(isinstance(value, int | float) and not isinstance(value, bool) for value in stats.values())
    assert (stats["files_verified"], stats["files_duplicate"], stats["files_quarantined"]) == (3, 1, 1)
    assert stats["files_total"] == 5 and stats["files_staged"] == 0
    assert stats["batches_succeeded"] == 2 and stats["batches_failed"] == 0
    assert stats["duplicates_exact"] == 1
    assert stats["bytes_not_stored_twice"] == (library / "a.jpg").stat().st_size
    kept = sum((library / n).stat().st_size for n in ("a.jpg", "b.jpg", "c.jpg"))
    assert stats["bytes_before_compression"] == kept
    assert stats["bytes_saved_by_compression"] == kept - stats["bytes_after_compression"]
    # The destination and uploaded/ hold exactly the kept (possibly compressed) copies.
    assert stats["destination_bytes"] == folder_bytes(pipeline.settings.destinations.local_destination_dir)
    assert stats["destination_bytes"] == stats["uploaded_bytes"] == stats["bytes_after_compression"] > 0
    assert stats["bridge_bytes"] == 0
    assert stats["uploaded_free_gb"] > 0


def test_library_stats_asset_reports_numeric_metadata(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    pipeline = make_pipeline(FREE_SPACE_ALERT_GB="0")
    _photos(pipeline, "a.jpg")
    assert run_batch(pipeline).success
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    result = materialize([library_stats, free_space], instance=DagsterInstance.ephemeral(),
                         resources={"settings": settings, "catalog": CatalogResource(settings=settings)})
    assert result.success
    [materialization] = result.asset_materializations_for_node("library_stats")
    metadata = dict(materialization.metadata)
    assert metadata["files_verified"].value == 1
    by_capture_month, by_batch_month = metadata.pop("by_capture_month"), metadata.pop("by_batch_month")
    assert isinstance(by_capture_month, TableMetadataValue) and isinstance(by_batch_month, TableMetadataValue)
    [capture_month], [batch_month] = by_capture_month.value.records, by_batch_month.value.records
    assert {type(v.value) for v in metadata.values()} <= {int, float}
    assert capture_month.data["files"] == batch_month.data["files"] == 1
    assert batch_month.data["month"] == pipeline.catalog.recent_batches(1)[0].created_at.strftime("%Y-%m")
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["threshold_gb"].value == 0


def test_library_totals_by_capture_month_and_batch_month(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg", "b.jpg")
    library = pipeline.settings.sources.folder_source_paths[0]
    (library / "a-copy.jpg").write_bytes((library / "a.jpg").read_bytes())
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff not a picture")
    assert run_batch(pipeline).success
    catalog = pipeline.catalog
    catalog.conn.execute("UPDATE media_files SET captured_at = '2019-05-04 10:00' WHERE original_name = 'a.jpg'")
    catalog.conn.execute("UPDATE media_files SET captured_at = '2021-12-24 18:00' WHERE original_name <> 'a.jpg'")
    catalog.conn.execute("UPDATE media_files SET captured_at = NULL WHERE state = 'quarantined'")

    by_capture = {m.month: m for m in totals_by_month(catalog, "capture")}
    assert sorted(by_capture) == ["2019-05", "2021-12", "unknown"]
    assert (by_capture["2019-05"].files, by_capture["2021-12"].files) == (1, 2)
    assert (by_capture["2021-12"].duplicates, by_capture["unknown"].quarantined) == (1, 1)
    [batch_month] = totals_by_month(catalog, "batch")
    assert (batch_month.files, batch_month.duplicates, batch_month.quarantined) == (4, 1, 1)
    stats = compute_library_stats(catalog, pipeline.settings)
    assert sum(m.bytes_saved for m in by_capture.values()) == stats["bytes_saved_by_compression"]
    assert batch_month.bytes_in == sum(p.stat().st_size for p in library.iterdir())


def test_checks_fail_when_they_should(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg", "b.jpg")
    report = run_batch(pipeline)
    assert report.success
    catalog, batch = pipeline.catalog, report.batch_id
    assert check_no_file_in_between(catalog, batch).passed
    assert check_uploads_verified(catalog, batch, verification_enabled=True).passed

    [first, _second] = catalog.iter_files(batch, FileState.VERIFIED)
    catalog.conn.execute("UPDATE uploads SET verified_at = NULL WHERE file_id = %s", (first.id,))
    unverified = check_uploads_verified(catalog, batch, verification_enabled=True)
    assert not unverified.passed and "a.jpg at local" in unverified.description
    assert unverified.metadata == {"uploads": 2, "unverified": 1}
    assert check_uploads_verified(catalog, batch, verification_enabled=False).passed

    catalog.conn.execute("UPDATE media_files SET state = 'staged' WHERE id = %s", (first.id,))
    stuck = check_no_file_in_between(catalog, batch)
    assert not stuck.passed and "1 staged" in stuck.description

    settings = pipeline.settings
    huge = settings.model_copy(update={"storage": settings.storage.model_copy(
        update={"free_space_alert_gb": 1000000000})})
    low = check_free_space(huge)
    assert not low.passed and "FREE_SPACE_ALERT_GB=1000000000" in low.description
    assert check_free_space(pipeline.settings).passed  # default 5 GB; the test machine has more


def test_the_blocking_check_fails_the_run(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg")
    batch = run_batch(pipeline).batch_id
    pipeline.catalog.conn.execute("UPDATE uploads SET verified_at = NULL")
    # Every phase finds nothing left to do, so only the check can fail this re-run.
    again = run_batch(pipeline, batch)
    assert not again.success and "uploads_verified" in (again.error or "")
    assert present(pipeline.catalog.batch(batch)).status == "failed"
    assert again.phases_succeeded == 8


def test_library_stats_refresh_after_each_batch_even_past_a_failed_one(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    instance = pipeline.instance
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0

    _photos(pipeline, "a.jpg")
    destination = pipeline.settings.destinations.local_destination_dir
    (destination / "a.jpg").mkdir()  # the upload of a.jpg fails: the batch stops at icloud_upload
    assert not run_batch(pipeline).success
    after_failure = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert after_failure.total_requested == 0

    _photos(pipeline, "b.jpg")
    assert run_batch(pipeline).success  # a new batch; the failed one stays without a verification
    after_success = evaluate_automation_conditions(defs=defs, instance=instance, cursor=after_failure.cursor)
    assert after_success.get_requested_partitions(library_stats.key) == {None}
    quiet = evaluate_automation_conditions(defs=defs, instance=instance, cursor=after_success.cursor)
    assert quiet.total_requested == 0


def test_the_library_stats_sensor_runs_from_a_fresh_install() -> None:
    """Dagster's implicit automation sensor starts stopped; ours is declared running and owns library_stats."""
    sensor = defs.get_sensor_def("library_stats_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert present(sensor.asset_selection).resolve(defs.resolve_asset_graph()) == {library_stats.key}


def test_retry_failed_completes_a_batch_without_duplicate_uploads(make_pipeline: MakePipeline,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # The CLI sets these for its instance (DATA_DIR/dagster_home, storage in the catalog database).
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv(DAGSTER_STORAGE_ENV, raising=False)
    pipeline = make_pipeline()
    _photos(pipeline, "a.jpg", "b.jpg", "c.jpg")
    destination = pipeline.settings.destinations.local_destination_dir
    (destination / "b.jpg").mkdir()  # a real fault: the folder destination cannot write b.jpg
    failed = run_batch(pipeline)
    assert not failed.success and "icloud_upload" in (failed.error or "")
    assert pipeline.catalog.failed_batches() == [failed.batch_id]
    assert sorted(p.name for p in destination.iterdir()) == ["a.jpg", "b.jpg", "c.jpg"]

    (destination / "b.jpg").rmdir()
    assert cli.main(["retry-failed"]) == 0
    assert "1 of 1 failed batch(es) now succeeded" in capsys.readouterr().out
    assert pipeline.catalog.failed_batches() == []
    assert pipeline.catalog.count_by_state(failed.batch_id) == {"verified": 3}
    # Each file reached the destination once, under its own name, and was verified once.
    assert sorted(p.name for p in destination.iterdir()) == ["a.jpg", "b.jpg", "c.jpg"]
    for file in pipeline.catalog.iter_files(failed.batch_id, FileState.VERIFIED):
        [upload] = pipeline.catalog.uploads_of(file.id)
        assert sha256_file(destination / present(upload.remote_id)) == file.output_hash
    verified_moves = pipeline.catalog.conn.execute(
        "SELECT file_id, count(*) AS n FROM state_changes WHERE to_state = 'verified' GROUP BY file_id").fetchall()
    assert sorted(row["n"] for row in verified_moves) == [1, 1, 1]
    assert cli.main(["retry-failed"]) == 0  # nothing left: a no-op
