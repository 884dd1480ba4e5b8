"""iCloud Photos as the destination, against the local HTTPS stand-in: upload without waiting for indexing,
duplicates, declined formats, verification after an indexing delay, and replace-originals only after it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.destinations.base import UploadJob
from media_assets.destinations.icloud import ICloudDestination
from media_assets.icloud.config import ICloudConfig, icloud_config
from media_assets.icloud.replace import replace_originals
from media_assets.icloud.session import connect
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline, present
from media_assets_tests.icloud_standin import ICloudStandIn
from media_assets_tests.test_icloud import add_photos, answer, icloud_settings, login

pytestmark = pytest.mark.slow  # each test runs whole batches (10-20 s)


def _uploads(pipeline: Pipeline) -> list[dict]:
    return pipeline.catalog.conn.execute(
        "SELECT f.original_name, f.source_id, f.output_hash, u.status, u.remote_id, u.detail, u.verified_at"
        " FROM uploads u JOIN media_files f ON f.id = u.file_id WHERE u.destination = 'icloud' ORDER BY f.id"
    ).fetchall()


def _folder_pipeline(make_pipeline: MakePipeline, standin: ICloudStandIn, tmp_path: Path,
                     **more: str) -> Pipeline:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_DOWNLOAD="false",
                                               ENABLE_FOLDER_SOURCE="true", ENABLE_ICLOUD_UPLOAD="true",
                                               ENABLE_DEDUPLICATION="false", **more))
    login(pipeline.settings, standin)
    return pipeline


def test_upload_verifies_later_and_declines_other_formats(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                          tmp_path: Path) -> None:
    pipeline = _folder_pipeline(make_pipeline, standin, tmp_path, ICLOUD_INDEX_WAIT_SECONDS="30")
    library = pipeline.settings.sources.folder_source_paths[0]
    photos = [sample.make_photo(library / f"IMG_{n}.JPG", size=(48, 36), seed=n) for n in range(3)]
    (library / "SCREEN.PNG").write_bytes(sample.screenshot_bytes(size=(40, 60)))
    standin.index_delay = 1.5  # records appear only after a while, as with Apple (14-20 s)
    report = run_batch(pipeline)
    assert report.success, report.error
    rows = _uploads(pipeline)
    uploaded = [r for r in rows if r["status"] == "uploaded"]
    assert len(uploaded) == 3 and all(r["verified_at"] is not None for r in uploaded)
    [declined] = [r for r in rows if r["status"] == "not_accepted"]
    assert declined["original_name"] == "SCREEN.PNG" and "not accepted by iCloud" in declined["detail"]
    stored = {a.asset_id: a.data for a in standin.assets}
    for row in uploaded:
        assert hashlib.sha256(stored[row["remote_id"]]).hexdigest() == row["output_hash"]
    assert len(photos) == 3 and standin.count("/records/lookup") > 3  # verification polled during indexing


def test_verification_fails_when_the_asset_never_gets_indexed(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                              tmp_path: Path) -> None:
    pipeline = _folder_pipeline(make_pipeline, standin, tmp_path, ICLOUD_INDEX_WAIT_SECONDS="1")
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "IMG_1.JPG", size=(48, 36), seed=1)
    standin.index_delay = 3600
    report = run_batch(pipeline)
    assert not report.success
    assert (f"verification: 1 file(s) of batch {report.batch_id} are not accounted for (still 1 sorted); "
            "IMG_1.JPG: not found intact at icloud") in (report.error or ""), report.error
    standin.index_delay = 0
    for asset in standin.assets:
        asset.indexed_at = 0
    assert run_batch(pipeline, report.batch_id).success  # a re-run verifies once Apple has indexed it


def test_a_duplicate_upload_counts_as_already_there(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                    tmp_path: Path) -> None:
    pipeline = _folder_pipeline(make_pipeline, standin, tmp_path)
    photo = sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "IMG_1.JPG", size=(48, 36), seed=1)
    existing = standin.add_asset("IMG_1.JPG", photo.read_bytes())
    standin.fail_next("/photosupload/putAsset", 503)  # and a transient failure on the way
    report = run_batch(pipeline)
    assert report.success, report.error
    [row] = _uploads(pipeline)
    assert row["status"] == "uploaded" and row["remote_id"] == existing.asset_id
    assert len(standin.assets) == 1


def test_replace_originals_deletes_the_source_only_after_verification(standin: ICloudStandIn,
                                                                      make_pipeline: MakePipeline,
                                                                      tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_UPLOAD="true",
                                               ENABLE_COMPRESSION="true", ICLOUD_REPLACE_ORIGINALS="true"))
    big = standin.add_asset("IMG_BIG.JPG", sample.photo_bytes(size=(800, 600), seed=3, quality=98))
    login(pipeline.settings, standin)
    config = icloud_config(pipeline.settings)
    source = lambda: connect(config, code_provider=None)  # noqa: E731
    standin.index_delay = 3600  # the successor is uploaded but not yet indexed: verification fails
    first = run_batch(pipeline)
    assert not first.success
    assert replace_originals(pipeline.catalog, first.batch_id, source, account=config.username) == 0
    assert standin.deletes == []

    for asset in standin.assets:
        asset.indexed_at = 0
    standin.index_delay = 0
    assert run_batch(pipeline, first.batch_id).success  # verified: the verification asset replaces the original
    assert standin.deletes == [big.asset_id]
    assert replace_originals(pipeline.catalog, first.batch_id, source, account=config.username) == 0  # once
    row = present(pipeline.catalog.conn.execute("SELECT source_asset_id, successor_asset_id FROM icloud_replacements"
                                                ).fetchone())
    assert row["source_asset_id"] == big.asset_id and row["successor_asset_id"] != big.asset_id
    assert [f.state for f in pipeline.catalog.iter_files(first.batch_id, *FileState)] == [FileState.VERIFIED]


def test_an_asset_that_is_its_own_successor_is_never_deleted(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                             tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_UPLOAD="true",
                                               ICLOUD_REPLACE_ORIGINALS="true"))  # no compression: same bytes
    add_photos(standin, 1)
    login(pipeline.settings, standin)
    config = icloud_config(pipeline.settings)
    report = run_batch(pipeline)
    assert report.success, report.error
    assert replace_originals(pipeline.catalog, report.batch_id, lambda: connect(config, code_provider=None),
                             account=config.username) == 0
    assert standin.deletes == [] and len(standin.assets) == 1


def test_a_heic_replaced_by_its_jpeg_derivative_is_never_deleted(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                                 tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ENABLE_ICLOUD_UPLOAD="true",
                                               ENABLE_COMPRESSION="true", COMPRESSION_HEIC_JPEG_DERIVATIVE="true",
                                               ICLOUD_REPLACE_ORIGINALS="true"))
    heic = standin.add_asset("IMG_0001.HEIC", sample.photo_bytes(size=(400, 300), seed=5, fmt="HEIC"))
    jpeg = standin.add_asset("IMG_0002.JPG", sample.photo_bytes(size=(800, 600), seed=6, quality=98))
    login(pipeline.settings, standin)
    report = run_batch(pipeline)
    assert report.success, report.error
    assert sorted(u["original_name"] for u in _uploads(pipeline) if u["status"] == "uploaded") == [
        "IMG_0001.HEIC", "IMG_0002.JPG"]  # the HEIC went up as its JPEG derivative
    assert standin.deletes == [jpeg.asset_id] and heic.asset_id not in standin.deletes


def test_source_and_destination_may_be_different_accounts(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                          tmp_path: Path) -> None:
    pipeline = _folder_pipeline(make_pipeline, standin, tmp_path, ICLOUD_UPLOAD_USERNAME="family@example.com",
                                ICLOUD_UPLOAD_PASSWORD="other")
    connect(icloud_config(pipeline.settings, role="destination"), code_provider=answer(standin.code))
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "IMG_1.JPG", size=(48, 36), seed=1)
    assert run_batch(pipeline).success
    sessions = sorted(p.name for p in (pipeline.settings.storage.data_dir / "icloud-session").iterdir())
    assert sessions == ["family_example.com", "owner_example.com"]


# --- upload_many: upload URLs reserved per group -----------------------------------------------------------------

def _destination(standin: ICloudStandIn, tmp_path: Path, concurrency: int) -> ICloudDestination:
    config = ICloudConfig(username="up@example.com", password="pw", cookie_dir=tmp_path / "session",
                          transfer_dir=tmp_path / "transfer", endpoint=standin.base_url,
                          ca_bundle=str(standin.write_ca(tmp_path)), requests_per_second=200,
                          backoff_seconds=0.005, concurrency=concurrency)
    connect(config, code_provider=answer(standin.code))
    return ICloudDestination(config, lambda: connect(config, code_provider=None))


def _upload_photos(standin: ICloudStandIn, tmp_path: Path, count: int, concurrency: int = 2) -> None:
    files = [sample.make_photo(tmp_path / "up" / f"IMG_{n}.JPG", size=(48, 36), seed=100 + n) for n in range(count)]
    results = list(_destination(standin, tmp_path, concurrency).upload_many([UploadJob(p, p.name, "") for p in files]))
    assert [job[0] for job, _result in results] == files
    stored = {a.asset_id: a.data for a in standin.assets}
    assert all(stored[str(result)] == job[0].read_bytes() for job, result in results)  # each id holds its own file
    assert standin.count("/photosupload/putAsset") == count


def test_upload_many_reserves_the_upload_urls_of_a_group_in_one_request(standin: ICloudStandIn, tmp_path: Path) -> None:
    _upload_photos(standin, tmp_path, 8)
    assert standin.count("/photosupload/createUploadUrl") == 2  # 2 threads, a group of 4 files each
    assert standin.count("/upload/") == 8


def test_a_refused_reserved_url_makes_the_file_reserve_its_own(standin: ICloudStandIn, tmp_path: Path) -> None:
    standin.fail_next("/upload/", 403)  # final: the file reserves another URL at once
    standin.fail_next("/upload/", 503)  # transient: the retry also reserves another
    _upload_photos(standin, tmp_path, 8)
    assert standin.count("/photosupload/createUploadUrl") == 2 + 2


def test_a_failed_reservation_lets_each_file_reserve_its_own(standin: ICloudStandIn, tmp_path: Path) -> None:
    standin.fail_next("/photosupload/createUploadUrl", 400)
    _upload_photos(standin, tmp_path, 8)
    assert standin.count("/photosupload/createUploadUrl") == 1 + 4 + 1
