"""What the dashboard shows about batches: every phase's numbers after a recovery."""

from __future__ import annotations

import zlib

from dagster import AssetKey

from media_assets.defs.batch.assets import PHASES
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch


def _photos(pipeline, *names: str) -> None:  # noqa: ANN001
    library = pipeline.settings.sources.folder_source_paths[0]
    for name in names:
        sample.make_photo(library / name, seed=zlib.crc32(name.encode()), size=(64, 48))


def _latest_metadata(pipeline, phase: str) -> dict[str, object]:  # noqa: ANN001
    event = pipeline.instance.get_latest_materialization_event(AssetKey(phase))
    assert event is not None and event.asset_materialization is not None
    return {label: value.value for label, value in event.asset_materialization.metadata.items()}


def test_every_phase_reports_the_batch_totals_after_a_retry(make_pipeline) -> None:
    pipeline = make_pipeline()
    names = ["a.jpg", "b.jpg", "c.jpg"]
    _photos(pipeline, *names)
    library = pipeline.settings.sources.folder_source_paths[0]
    destination = pipeline.settings.destinations.local_destination_dir
    (destination / "b.jpg").mkdir()  # a real fault: the upload of b.jpg fails, the batch stops there
    failed = run_batch(pipeline)
    assert not failed.success
    (destination / "b.jpg").rmdir()
    assert run_batch(pipeline, failed.batch_id).success

    # The retry found everything up to the upload done; its numbers are still the whole batch's.
    download = _latest_metadata(pipeline, "download")
    assert (download["files"], download["failed"]) == (3, 0)
    assert download["bytes_in"] == sum((library / name).stat().st_size for name in names)
    for phase in ("deduplication", "compression", "file_preparation", "verification"):
        assert _latest_metadata(pipeline, phase)["files"] == 3, phase
    upload = _latest_metadata(pipeline, "icloud_upload")
    assert (upload["files"], upload["failed"], upload["uploaded"]) == (3, 0, 3)
    compression = _latest_metadata(pipeline, "compression")
    assert compression["bytes_in"] - compression["bytes_out"] == compression["bytes_saved"]
    assert set(PHASES) <= {key.to_user_string() for key in pipeline.instance.all_asset_keys()}
