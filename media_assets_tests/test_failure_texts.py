"""A failed phase says what failed, where, why and the first file, for every destination kind, in the batch's
error, its report and the Telegram alert: "1 file(s) could not be copied to the Pixel sync folder /p: Is a
directory (first: 2019/b.jpg)"."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import build_sensor_context

from media_assets.definitions import defs
from media_assets.defs.instance import Pipeline
from media_assets.defs.resources import SettingsResource
from media_assets.defs.telegram.resources import TelegramResource
from media_assets.defs.telegram.sensors import telegram_run_failure_alert
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline
from media_assets_tests.icloud_standin import ICloudStandIn
from media_assets_tests.telegram_stub import TelegramStub
from media_assets_tests.test_icloud import icloud_settings, login
from media_assets_tests.test_telegram import telegram_settings


@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    server = TelegramStub().start()
    yield server
    server.stop()


def _photos(pipeline: Pipeline, *names: str) -> None:
    library = pipeline.settings.sources.folder_source_paths[0]
    for name in names:
        (library / name).parent.mkdir(parents=True, exist_ok=True)
        sample.make_photo(library / name, seed=zlib.crc32(name.encode()), size=(64, 48))


def test_the_pixel_sync_folder_names_itself_the_cause_and_the_first_file_by_its_path(
        make_pipeline: MakePipeline, tmp_path: Path, stub: TelegramStub) -> None:
    pixel = tmp_path / "pixel"
    pipeline = make_pipeline(ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR=str(pixel), **telegram_settings(stub))
    _photos(pipeline, "a.jpg", "2019/b.jpg", "2019/c.jpg")
    (pixel / "b.jpg").mkdir(parents=True)  # a real fault: b.jpg cannot be written there
    (pixel / "c.jpg").mkdir()
    report = run_batch(pipeline)
    assert not report.success
    expected = f"2 file(s) could not be copied to the Pixel sync folder {pixel}: Is a directory (first: 2019/"
    assert expected in (report.error or ""), report.error
    [message] = stub.wait_for_sent(1)  # the CLI's report
    assert f"Error: pixel_upload: {expected}" in message.text, message.text


def test_the_daemons_alert_names_the_place_the_cause_and_the_first_file(make_pipeline: MakePipeline, tmp_path: Path,
                                                                       stub: TelegramStub) -> None:
    pipeline = make_pipeline(**telegram_settings(stub))
    resources = {"telegram": TelegramResource(settings=SettingsResource(settings_file=str(tmp_path / "settings.env")))}
    with build_sensor_context(instance=pipeline.instance, resources=resources) as context:
        cursor = telegram_run_failure_alert.evaluate_tick(context).cursor
    _photos(pipeline, "a.jpg", "trip/b.jpg")
    destination = pipeline.settings.destinations.local_destination_dir
    (destination / "b.jpg").mkdir()
    pipeline.catalog.create_batch("20260101-000000")
    pipeline.instance.add_dynamic_partitions("batch", ["20260101-000000"])
    result = defs.resolve_job_def("media_batch").execute_in_process(
        partition_key="20260101-000000", instance=pipeline.instance, raise_on_error=False)
    assert not result.success
    with build_sensor_context(instance=pipeline.instance, resources=resources, cursor=cursor) as context:
        assert telegram_run_failure_alert.evaluate_tick(context).skip_message is None
    [message] = stub.wait_for_sent(1)
    assert (f"Failed at icloud_upload: 1 file(s) could not be copied to the local folder {destination}: "
            "Is a directory (first: trip/b.jpg)") in message.text, message.text


@pytest.mark.slow
def test_icloud_names_itself_and_apples_answer(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                               tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_DOWNLOAD="false",
                                               ENABLE_FOLDER_SOURCE="true", ENABLE_ICLOUD_UPLOAD="true"))
    login(pipeline.settings, standin)
    _photos(pipeline, "2019/IMG_1.jpg")
    standin.fail_next("/photosupload/putAsset", 400, times=10)
    report = run_batch(pipeline)
    assert not report.success
    assert "icloud_upload: 1 file(s) could not be uploaded to iCloud Photos: " in (report.error or ""), report.error
    assert "(first: 2019/IMG_1.jpg)" in (report.error or "") and "400" in (report.error or "")
    assert "iCloud upload failed" not in (report.error or "")  # the sentence already says where
