"""The iCloud round trip against the local HTTPS stand-in with the real pyicloud: nothing uploaded back to the
account it came from, capture dates carried both ways."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from media_assets.catalog.states import FileState
from media_assets.cli import _status_text
from media_assets.defs.instance import Pipeline
from media_assets.icloud.config import icloud_config
from media_assets.icloud.session import connect
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline
from media_assets_tests.icloud_standin import ICloudStandIn, StandInAsset
from media_assets_tests.test_icloud import add_photos, answer, icloud_settings, login

pytestmark = pytest.mark.slow  # whole batches


def _uploads(pipeline: Pipeline) -> list[dict]:
    return pipeline.catalog.conn.execute(
        "SELECT f.source_id, u.status, u.remote_id FROM uploads u JOIN media_files f ON f.id = u.file_id"
        " WHERE u.destination = 'icloud' ORDER BY f.id").fetchall()


# --- never upload back ----------------------------------------------------------------------------------------

def test_the_default_set_up_with_icloud_download_uploads_nothing_back(standin: ICloudStandIn,
                                                                      make_pipeline: MakePipeline,
                                                                      tmp_path: Path
                                                                      ) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_UPLOAD="true",
                                               ENABLE_COMPRESSION="true"))
    assets = add_photos(standin, 2)
    assets.append(standin.add_asset("IMG_BIG.JPG", sample.photo_bytes(size=(800, 600), seed=3, quality=98)))
    login(pipeline.settings, standin)
    report = run_batch(pipeline)
    assert report.success, report.error
    assert standin.count("/photosupload/") == 0 and len(standin.assets) == 3
    rows = _uploads(pipeline)
    assert sorted((r["status"], r["remote_id"]) for r in rows) == [("in_library", a.asset_id) for a in assets]
    assert report.already_in_icloud == 3 and "Already in iCloud" in report.to_markdown()
    assert "Already in iCloud (taken from its library, not uploaded back): 3" in _status_text(pipeline)
    assert {f.state for f in pipeline.catalog.iter_files(report.batch_id, *FileState)} == {FileState.VERIFIED}

    again = run_batch(pipeline)  # nothing new in iCloud: no copy of a copy
    assert again.success and again.files_processed == 0 and len(standin.assets) == 3


def test_an_icloud_source_uploads_to_another_apple_id(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                      tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_UPLOAD="true",
                                               ICLOUD_UPLOAD_USERNAME="family@example.com",
                                               ICLOUD_UPLOAD_PASSWORD="other"))
    add_photos(standin, 1)
    login(pipeline.settings, standin)
    connect(icloud_config(pipeline.settings, role="destination"), code_provider=answer(standin.code))
    report = run_batch(pipeline)
    assert report.success, report.error
    assert standin.count("/photosupload/putAsset") == 1 and report.already_in_icloud == 0
    assert [r["status"] for r in _uploads(pipeline)] == ["uploaded"]


# --- dates both ways ------------------------------------------------------------------------------------------

def test_a_dateless_asset_is_filed_under_its_asset_date(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                        tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    taken_utc = datetime(2021, 3, 4, 23, 30, tzinfo=timezone.utc)  # 08:30 the next morning in Tokyo
    standin.add_asset("IMG_0001.JPG", sample.photo_bytes(size=(48, 36), seed=1, make=None, model=None),
                      asset_ms=int(taken_utc.timestamp() * 1000), time_zone_seconds=9 * 3600)
    login(pipeline.settings, standin)
    report = run_batch(pipeline)
    assert report.success, report.error
    [file] = pipeline.catalog.iter_files(report.batch_id, *FileState)
    assert (file.capture_date_source, file.capture_date_tag) == ("source", "icloud_asset_date")
    assert (file.captured_at, file.capture_utc_offset_minutes) == (datetime(2021, 3, 5, 8, 30), 540)
    assert (file.sorted_path or "").startswith("uploaded/2021/03/05/")


def test_an_upload_carries_the_capture_date(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                            tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_DOWNLOAD="false",
                                               ENABLE_FOLDER_SOURCE="true", ENABLE_ICLOUD_UPLOAD="true"))
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "IMG_1.JPG", size=(48, 36), seed=1,
                      taken=datetime(2019, 5, 4, 10, 0, 0), offset="+02:00")
    login(pipeline.settings, standin)
    report = run_batch(pipeline)
    assert report.success, report.error
    [asset] = standin.assets
    assert asset.asset_ms == int(datetime(2019, 5, 4, 8, 0, tzinfo=timezone.utc).timestamp() * 1000)
    assert asset.time_zone_seconds == 2 * 3600


# --- replace-originals only where the result is the same asset ------------------------------------------------

def test_a_live_photo_a_burst_an_edit_and_a_caption_are_never_replaced(standin: ICloudStandIn,
                                                                       make_pipeline: MakePipeline,
                                                                       tmp_path: Path) -> None:
    video = sample.make_video(tmp_path / "live.mov", seconds=0.5, size=(64, 48),
                              creation_time=datetime(2023, 7, 1, 12, 0, 0))
    if video is None:
        pytest.skip("no ffmpeg")
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_UPLOAD="true",
                                               ENABLE_COMPRESSION="true", ICLOUD_REPLACE_ORIGINALS="true",
                                               ICLOUD_UPLOAD_FORMATS="jpeg,mov,mp4"))

    def photo(name: str, seed: int, **more: Any) -> StandInAsset:  # a stand-in asset
        return standin.add_asset(name, sample.photo_bytes(size=(800, 600), seed=seed, quality=98), **more)

    live = photo("IMG_0001.JPG", 1, live_video=video.read_bytes())
    burst = photo("IMG_0002.JPG", 2, fields={"burstId": "BURST-0001"})
    edited = photo("IMG_0003.JPG", 3, fields={"adjustmentType": "com.apple.photo"})
    plain = photo("IMG_0004.JPG", 4)
    captioned = photo("IMG_0005.JPG", 5, fields={"captionEnc": "QmlydGhkYXk="})
    login(pipeline.settings, standin)
    report = run_batch(pipeline)
    assert report.success, report.error
    assert standin.deletes == [plain.asset_id]  # only the plain photo's upload is the same asset
    reasons = {(k["original_name"], k["reason"].split(":")[0]) for k in report.kept_in_icloud}
    assert reasons == {("IMG_0001.JPG", "a Live Photo"), ("IMG_0001.MOV", "a Live Photo"),
                       ("IMG_0002.JPG", "part of a burst"), ("IMG_0003.JPG", "edited in Photos"),
                       ("IMG_0005.JPG", "captioned in Photos")}
    assert "Kept in iCloud: cannot be replaced faithfully" in report.to_markdown()
    assert not {live.asset_id, burst.asset_id, edited.asset_id, captioned.asset_id} & set(standin.deletes)


# --- deleted at the source ------------------------------------------------------------------------------------

def test_an_asset_deleted_in_icloud_keeps_its_local_copies_and_is_counted(standin: ICloudStandIn,
                                                                          make_pipeline: MakePipeline,
                                                                          tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    gone, _kept = add_photos(standin, 2)
    login(pipeline.settings, standin)
    first = run_batch(pipeline)
    assert first.success, first.error
    [file] = [f for f in pipeline.catalog.iter_files(first.batch_id, *FileState)
              if f.source_id == f"{gone.asset_id}/original"]
    gone.deleted = True  # the owner deletes it in Photos
    pipeline.catalog.conn.execute("UPDATE icloud_sync SET last_full_scan_at = now() - interval '8 days'")
    assert run_batch(pipeline).success  # a full walk notices
    assert "Deleted at source (gone from iCloud Photos, local copies kept): 1" in _status_text(pipeline)
    kept = pipeline.settings.storage.media_root / (file.sorted_path or "")
    assert kept.read_bytes() == gone.data
    assert pipeline.catalog.get_file(file.id).state is FileState.VERIFIED

    gone.deleted = False  # restored from Recently Deleted
    pipeline.catalog.conn.execute("UPDATE icloud_sync SET last_full_scan_at = now() - interval '8 days'")
    assert run_batch(pipeline).success
    assert "Deleted at source" not in _status_text(pipeline)


# --- bytes verified at iCloud ---------------------------------------------------------------------------------

def _folder_to_icloud(make_pipeline: MakePipeline, standin: ICloudStandIn, tmp_path: Path, count: int,
                      **more: str) -> Pipeline:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_DOWNLOAD="false",
                                               ENABLE_FOLDER_SOURCE="true", ENABLE_ICLOUD_UPLOAD="true", **more))
    for n in range(count):
        sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / f"IMG_{n}.JPG", size=(48, 36), seed=n)
    login(pipeline.settings, standin)
    return pipeline


def test_verify_full_finds_a_corrupted_byte_at_icloud(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from media_assets.cli import main

    pipeline = _folder_to_icloud(make_pipeline, standin, tmp_path, 3, ICLOUD_VERIFY_SAMPLE="0")
    assert run_batch(pipeline).success
    assert main(["verify", "--full"]) == 0 and standin.count("/content/") == 3  # every upload read back
    damaged = standin.assets[1]
    standin.corrupt(damaged)  # Apple's record (and its checksum) unchanged: only the bytes tell
    assert main(["verify", "--full"]) == 1
    assert f"at icloud ({damaged.asset_id}): the bytes downloaded back do not match" in capsys.readouterr().out
    assert main(["verify", "--full", "--sample", "3"]) == 1  # a sample of all three finds it too
    downloads = standin.count("/content/")
    assert main(["verify", "--full", "--sample", "1"]) in (0, 1) and standin.count("/content/") == downloads + 1


def test_each_batch_reads_back_a_sample_of_its_uploads(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                       tmp_path: Path) -> None:
    pipeline = _folder_to_icloud(make_pipeline, standin, tmp_path, 3)  # ICLOUD_VERIFY_SAMPLE defaults to 2
    standin.corrupt_uploads = True
    report = run_batch(pipeline)
    assert not report.success and "not found intact at icloud" in (report.error or "")
    assert standin.count("/content/") == 2


def test_verify_repair_uploads_a_corrupted_and_a_deleted_asset_again(standin: ICloudStandIn,
                                                                     make_pipeline: MakePipeline, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from media_assets.cli import main

    pipeline = _folder_to_icloud(make_pipeline, standin, tmp_path, 3, ICLOUD_VERIFY_SAMPLE="0")
    assert run_batch(pipeline).success
    damaged, deleted, intact = sorted(standin.assets, key=lambda asset: asset.filename)
    standin.corrupt(damaged)
    deleted.deleted = True  # deleted in Photos by someone
    assert main(["verify", "--full"]) == 1
    out = capsys.readouterr().out
    assert f"differing: IMG_0.JPG at icloud ({damaged.asset_id}): the bytes downloaded back" in out
    assert f"missing: IMG_1.JPG at icloud ({deleted.asset_id})" in out

    assert main(["verify", "--repair"]) == 0, capsys.readouterr().out
    assert damaged.deleted and damaged.asset_id in standin.deletes  # the bad asset went to Recently Deleted
    ids = {row["remote_id"] for row in _uploads(pipeline)}
    assert intact.asset_id in ids and not ids & {damaged.asset_id, deleted.asset_id} and len(ids) == 3
    assert len(standin.live_assets()) == 3 and standin.count("/photosupload/putAsset") == 5
    assert main(["verify", "--full"]) == 0, capsys.readouterr().out
