"""iCloud Photos as a source, with the real pyicloud against the local HTTPS stand-in: sign-in and 2FA, the
incremental walk and its stop rule, paging, Live Photos, same-name files, and every transfer fault."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import pytest
from dagster import DagsterInstance, SkipReason, build_sensor_context

from media_assets.catalog.repository import MediaFile
from media_assets.catalog.states import FileState
from media_assets.defs.batch.sensors import batch_sensor
from media_assets.defs.instance import Pipeline
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.icloud.config import ICloudConfig, icloud_config
from media_assets.icloud.session import (
    REFUSED_FILE,
    CodeProvider,
    ICloudAuthError,
    connect,
    login_in_terminal,
    record_trust,
)
from media_assets.media import sample_library as sample
from media_assets.phases import download as download_phase
from media_assets.runner import run_batch
from media_assets.settings import Settings
from media_assets.sources.icloud import icloud_source
from media_assets_tests.conftest import ICLOUD_PASSWORD, MakePipeline, present
from media_assets_tests.icloud_standin import ICloudStandIn, StandInAsset


def icloud_settings(standin: ICloudStandIn, tmp_path: Path, **more: str) -> dict[str, str]:
    return {"ICLOUD_USERNAME": "owner@example.com", "ICLOUD_PASSWORD": ICLOUD_PASSWORD,
            "ICLOUD_ENDPOINT": standin.base_url, "ICLOUD_CA_BUNDLE": str(standin.write_ca(tmp_path)),
            "ENABLE_ICLOUD_DOWNLOAD": "true", "ENABLE_FOLDER_SOURCE": "false", "ENABLE_ICLOUD_UPLOAD": "false",
            "ENABLE_COMPRESSION": "false", "ICLOUD_BACKOFF_MS": "5", "ICLOUD_REQUESTS_PER_SECOND": "200", **more}


def answer(code: str, asked: list[str] | None = None) -> CodeProvider:
    def provider(prompt: str, deadline_seconds: float) -> str | None:
        if asked is not None:
            asked.append(prompt)
        return code

    return provider


def login(settings: Settings, standin: ICloudStandIn) -> None:
    connect(icloud_config(settings), code_provider=answer(standin.code))


def add_photos(standin: ICloudStandIn, count: int, start: int = 0, name: str | None = None) -> list[StandInAsset]:
    return [standin.add_asset(name or f"IMG_{n:04d}.JPG", sample.photo_bytes(size=(48, 36), seed=n))
            for n in range(start, start + count)]


def _downloaded(pipeline: Pipeline, batch_id: str) -> dict[str, MediaFile]:
    return {f.source_id: f for f in pipeline.catalog.iter_files(batch_id, *FileState)
            if f.state is not FileState.QUARANTINED}


# --- authentication ---------------------------------------------------------------------------------------------

def test_first_login_asks_for_a_code_and_the_trusted_session_is_reused(standin: ICloudStandIn,
                                                                       make_pipeline: MakePipeline,
                                                                       tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    config = icloud_config(pipeline.settings)
    asked: list[str] = []
    connect(config, code_provider=answer(standin.code, asked))
    assert len(asked) == 1 and standin.codes_checked == [standin.code] and standin.codes_sent == 1

    again: list[str] = []
    connection = connect(config, code_provider=answer(standin.code, again))
    assert again == [] and standin.codes_sent == 1  # no new code: the session was trusted
    assert connection.trust_expires is not None
    assert stat.S_IMODE(config.cookie_dir.stat().st_mode) == 0o700
    for path in config.cookie_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert ICLOUD_PASSWORD not in path.read_text()


def test_a_wrong_code_then_the_right_one(standin: ICloudStandIn, make_pipeline: MakePipeline, tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    codes = iter(["000000", standin.code])
    prompts: list[str] = []

    def provider(prompt: str, deadline_seconds: float) -> str | None:
        prompts.append(prompt)
        return next(codes)

    connect(icloud_config(pipeline.settings), code_provider=provider)
    assert standin.codes_checked == ["000000", standin.code]
    assert "not accepted" in prompts[1] and "attempt 1 of 3" in prompts[1]


def test_wrong_codes_are_capped_and_alerted(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                            tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_2FA_MAX_ATTEMPTS="2"))
    alerts: list[tuple[str, str]] = []
    with pytest.raises(ICloudAuthError, match="rejected 2 2FA codes"):
        connect(icloud_config(pipeline.settings), code_provider=answer("111111"),
                alert=lambda key, text: alerts.append((key, text)))
    assert standin.codes_checked == ["111111", "111111"]
    assert alerts and alerts[0][0] == "icloud-2fa-codes-refused:owner@example.com"


def test_a_wrong_password_is_refused_once_and_never_tried_again_until_it_changes(standin: ICloudStandIn,
                                                                                 make_pipeline: MakePipeline,
                                                                                 tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_PASSWORD="correct horse battery stapel"))
    add_photos(standin, 2)
    report = run_batch(pipeline)
    assert not report.success and "Apple refused the Apple ID or password for owner@example.com" in (report.error or "")
    assert standin.password_failures == 2 and standin.codes_sent == 0  # a second handshake, then no more

    signins = standin.count("/signin/")
    alerts: list[str] = []
    with pytest.raises(ICloudAuthError, match="not tried again"):
        connect(icloud_config(pipeline.settings), code_provider=answer(standin.code),
                alert=lambda key, text: alerts.append(text))
    assert standin.count("/signin/") == signins and standin.password_failures == 2  # Apple was not asked
    assert "ICLOUD_PASSWORD" in alerts[0]
    refused = icloud_config(pipeline.settings).cookie_dir / REFUSED_FILE
    assert stat.S_IMODE(refused.stat().st_mode) == 0o600

    connect(replace(icloud_config(pipeline.settings), password=ICLOUD_PASSWORD), code_provider=answer(standin.code))
    assert standin.password_failures == 2 and standin.codes_checked == [standin.code]
    assert not refused.exists()


def test_the_sensor_waits_for_a_new_password_instead_of_starting_batches_that_would_fail(standin: ICloudStandIn,
                                                                                         make_pipeline: MakePipeline,
                                                                                         tmp_path: Path) -> None:
    make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_PASSWORD="wrong", PIPELINE_EXECUTION_MODE="continuous"))
    add_photos(standin, 1)
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    resources = {"settings": settings, "catalog": CatalogResource(settings=settings)}
    for _tick in range(2):
        with build_sensor_context(instance=DagsterInstance.ephemeral(), resources=resources) as context:
            result = batch_sensor(context)
        assert isinstance(result, SkipReason) and "Apple refused" in (result.skip_message or "")
    assert standin.password_failures == 2 and standin.count("/signin/complete") == 2


def test_icloud_login_tries_a_refused_password_again(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                     tmp_path: Path) -> None:
    """The owner changed the password at Apple to the one in the settings: only a person's login retries it."""
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_PASSWORD="new password"))
    config = icloud_config(pipeline.settings)
    with pytest.raises(ICloudAuthError, match="Apple refused the Apple ID or password"):
        connect(config, code_provider=answer(standin.code))
    standin.passwords["owner@example.com"] = "new password"
    with pytest.raises(ICloudAuthError, match="not tried again"):
        connect(config, code_provider=answer(standin.code))
    assert "Signed in to iCloud as owner@example.com" in login_in_terminal(config, read=lambda prompt: standin.code)
    assert standin.password_failures == 2 and standin.count("/signin/complete") == 3


def test_one_spurious_refusal_of_the_right_password_is_not_remembered(standin: ICloudStandIn,
                                                                      make_pipeline: MakePipeline,
                                                                      tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    standin.fail_next("/signin/complete", 401, body={"serviceErrors": [{"code": "-20101"}]})
    connect(icloud_config(pipeline.settings), code_provider=answer(standin.code))
    assert standin.count("/signin/complete") == 2
    assert not (icloud_config(pipeline.settings).cookie_dir / REFUSED_FILE).exists()


def test_the_standin_checks_passwords_by_srp(standin: ICloudStandIn, tmp_path: Path) -> None:
    """The stand-in's own check must be able to fail, or the test above proves nothing."""
    for username, password in (("owner@example.com", "pw"), ("nobody@example.com", ICLOUD_PASSWORD)):
        config = ICloudConfig(username=username, password=password, cookie_dir=tmp_path / username,
                              transfer_dir=tmp_path / "t", endpoint=standin.base_url,
                              ca_bundle=str(standin.write_ca(tmp_path)), backoff_seconds=0.005)
        with pytest.raises(ICloudAuthError, match="refused"):
            connect(config, code_provider=answer(standin.code))
    assert standin.password_failures == 4  # each account refused twice


def test_no_code_before_the_deadline_fails_clearly_with_an_alert(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                                 tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_2FA_TIMEOUT_SECONDS="7"))
    deadlines: list[float] = []
    alerts: list[str] = []

    def silent(prompt: str, deadline_seconds: float) -> None:
        deadlines.append(deadline_seconds)
        return None

    with pytest.raises(ICloudAuthError, match="No iCloud 2FA code .* within 7 s"):
        connect(icloud_config(pipeline.settings), code_provider=silent, alert=lambda key, text: alerts.append(text))
    assert 0 < deadlines[0] <= 7 and standin.codes_checked == []
    assert "media-pipeline icloud login" in alerts[0]


def test_a_lapsed_session_asks_for_a_code_again(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    login(pipeline.settings, standin)
    standin.lapse_trust()
    asked: list[str] = []
    connect(icloud_config(pipeline.settings), code_provider=answer(standin.code, asked))
    assert len(asked) == 1 and "lapsed" in asked[0]
    assert standin.codes_sent == 2


def test_the_owner_is_warned_before_the_trust_lapses(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                     tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    config = icloud_config(pipeline.settings)
    login(pipeline.settings, standin)
    alerts: list[tuple[str, str]] = []
    connect(config, code_provider=None, alert=lambda key, text: alerts.append((key, text)))
    assert alerts == []  # fresh trust: nothing to say
    record_trust(config.cookie_dir, datetime.now(timezone.utc) - timedelta(days=27))
    connect(config, code_provider=None, alert=lambda key, text: alerts.append((key, text)))
    assert [key for key, _ in alerts] == ["icloud-trust-expiry:owner@example.com"]
    assert "lapses in about 2 day" in alerts[0][1]


# --- the source -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_batch_downloads_a_library_larger_than_one_page(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    assets = add_photos(standin, 130)
    login(pipeline.settings, standin)
    copies: list[Path] = []
    copy = download_phase.write_atomically

    def copying(stream: BinaryIO, target: Path) -> tuple[int, str]:
        copies.append(target)
        return copy(stream, target)

    monkeypatch.setattr(download_phase, "write_atomically", copying)
    report = run_batch(pipeline)
    assert report.success, report.error
    files = _downloaded(pipeline, report.batch_id)
    assert len(files) == 130
    assert standin.count("/records/query") >= 3  # indexing state + two pages of 100
    for asset in (assets[0], assets[77], assets[-1]):
        file = files[f"{asset.asset_id}/original"]
        assert file.content_hash == hashlib.sha256(asset.data).hexdigest()
        assert (pipeline.settings.storage.media_root / (file.original_path or "")).read_bytes() == asset.data
    assert not any(pipeline.settings.icloud.download_dir.iterdir())  # nothing left in the transfer folder
    assert copies == []  # each download was moved into originals/, its bytes not written a second time


@pytest.mark.slow
def test_incremental_walk_stops_after_a_run_of_known_assets(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                            tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_STOP_AFTER_KNOWN="5"))
    add_photos(standin, 120)
    login(pipeline.settings, standin)
    assert run_batch(pipeline).success  # the first walk is a full reconciliation
    new = add_photos(standin, 3, start=500)
    source = icloud_source(pipeline.settings)
    queries = standin.count("/records/query")
    items = list(source.scan())
    assert [i.source_id for i in items[:3]] == [f"{a.asset_id}/original" for a in reversed(new)]
    assert len(items) == 3 + 5  # stopped after five known ones, far before the 123rd
    assert standin.count("/records/query") - queries == 2  # indexing state + one page

    report = run_batch(pipeline)
    assert report.success and len(_downloaded(pipeline, report.batch_id)) == 3


def test_a_full_reconciliation_finds_what_the_walk_missed(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                          tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_STOP_AFTER_KNOWN="3"))
    add_photos(standin, 10)
    login(pipeline.settings, standin)
    assert run_batch(pipeline).success
    # An asset that appears with an old added date (a shared-library move, a late sync) is behind the known run.
    late = standin.add_asset("LATE.JPG", sample.photo_bytes(size=(48, 36), seed=999), added_ms=1)
    source = icloud_source(pipeline.settings)
    assert f"{late.asset_id}/original" not in {i.source_id for i in source.scan()}
    pipeline.catalog.conn.execute("UPDATE icloud_sync SET last_full_scan_at = now() - interval '8 days'")
    assert f"{late.asset_id}/original" in {i.source_id for i in source.scan()}


def test_live_photos_download_both_files_linked_as_one_asset(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                             tmp_path: Path) -> None:
    video = sample.make_video(tmp_path / "live.mov", seconds=0.5, size=(64, 48),
                              creation_time=datetime(2023, 7, 1, 12, 0, 0))
    if video is None:
        pytest.skip("no ffmpeg")
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    live = standin.add_asset("IMG_0100.HEIC", sample.photo_bytes(size=(48, 36), seed=1, fmt="HEIC",
                                                                 taken=datetime(2023, 7, 1, 12, 0, 0)),
                             live_video=video.read_bytes())
    login(pipeline.settings, standin)
    report = run_batch(pipeline)
    assert report.success, report.error
    rows = pipeline.catalog.conn.execute(
        "SELECT source_id, original_name, media_type, pair_key FROM media_files ORDER BY source_id").fetchall()
    assert [(r["source_id"], r["original_name"], r["media_type"]) for r in rows] == [
        (f"{live.asset_id}/live", "IMG_0100.MOV", "video"), (f"{live.asset_id}/original", "IMG_0100.HEIC", "photo")]
    assert rows[0]["pair_key"] is not None and rows[0]["pair_key"] == rows[1]["pair_key"]


def test_same_name_files_never_overwrite_each_other(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                    tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    twins = add_photos(standin, 3, name="IMG_0001.JPG")
    login(pipeline.settings, standin)
    report = run_batch(pipeline)
    assert report.success, report.error
    files = _downloaded(pipeline, report.batch_id)
    hashes = {files[f"{a.asset_id}/original"].content_hash for a in twins}
    assert len(hashes) == 3 and all(f.original_name == "IMG_0001.JPG" for f in files.values())


def test_an_expired_download_url_is_refreshed(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                              tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    [asset] = add_photos(standin, 1)
    login(pipeline.settings, standin)
    source = icloud_source(pipeline.settings)
    [item] = list(source.scan())
    standin.expire_download_urls()
    with source.open(item.source_id) as stream:
        assert stream.read() == asset.data
    assert standin.count("/records/lookup") >= 1  # the record was looked up again for a fresh URL


def test_bursts_of_503_and_429_are_retried(standin: ICloudStandIn, make_pipeline: MakePipeline, tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    add_photos(standin, 6)
    login(pipeline.settings, standin)
    standin.fail_next("/records/query", 503, times=2)
    standin.fail_next("/content/", 429, times=3)
    standin.fail_next("/content/", 503, times=2)
    report = run_batch(pipeline)
    assert report.success, report.error
    assert len(_downloaded(pipeline, report.batch_id)) == 6


def test_an_interrupted_download_is_retried_intact(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                   tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path))
    [asset] = add_photos(standin, 1)
    login(pipeline.settings, standin)
    standin.cut_next_downloads(2)
    report = run_batch(pipeline)
    assert report.success, report.error
    [file] = _downloaded(pipeline, report.batch_id).values()
    assert file.size_bytes == len(asset.data) and standin.count("/content/") == 3


STREAM_CHILD = """
import hashlib, json, resource, sys
from pathlib import Path
from media_assets.icloud.config import ICloudConfig
from media_assets.icloud.library import download, files_of, lookup_asset
from media_assets.icloud.session import connect

args = json.loads(sys.argv[1])
config = ICloudConfig(username=args["username"], password=args["password"], cookie_dir=Path(args["cookies"]),
                      transfer_dir=Path(args["target"]).parent, endpoint=args["endpoint"], ca_bundle=args["ca"])
connection = connect(config, code_provider=None)
[file] = files_of(lookup_asset(connection, args["asset"]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
download(connection, file, Path(args["target"]))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grown_kb": grown, "size": file.size}))
"""


@pytest.mark.slow
def test_a_large_download_is_streamed_with_flat_memory(standin: ICloudStandIn, tmp_path: Path) -> None:
    """The download side runs in its own process, so its peak RSS is not the stand-in's copy of the bytes."""
    data = os.urandom(256 * 2**20)
    asset = standin.add_asset("BIG.MOV", data)
    config = ICloudConfig(username="owner@example.com", password=ICLOUD_PASSWORD, cookie_dir=tmp_path / "session",
                          transfer_dir=tmp_path / "transfer", endpoint=standin.base_url,
                          ca_bundle=str(standin.write_ca(tmp_path)))
    connect(config, code_provider=answer(standin.code))
    target = tmp_path / "transfer" / "BIG.MOV"
    target.parent.mkdir()
    args = {"username": config.username, "password": ICLOUD_PASSWORD, "cookies": str(config.cookie_dir),
            "endpoint": standin.base_url, "ca": config.ca_bundle, "asset": asset.asset_id, "target": str(target)}
    done = subprocess.run([sys.executable, "-c", STREAM_CHILD, json.dumps(args)], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["size"] == len(data) and target.stat().st_size == len(data)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert result["grown_kb"] < 32 * 1024, f"the download grew the process by {result['grown_kb'] // 1024} MB"


def test_a_failure_after_retries_fails_only_that_file_and_the_next_batch_takes_it(standin: ICloudStandIn,
                                                                                  make_pipeline: MakePipeline,
                                                                                  tmp_path: Path) -> None:
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_MAX_RETRIES="2"))
    assets = add_photos(standin, 4)
    login(pipeline.settings, standin)
    broken = assets[1]
    standin.fail_next(f"/content/{broken.asset_id}/", 503, times=2)
    first = run_batch(pipeline)
    assert first.success, first.error
    assert len(_downloaded(pipeline, first.batch_id)) == 3
    [quarantined] = first.quarantined
    assert "tries it again" in (quarantined.error or "")

    second = run_batch(pipeline)
    assert second.success, second.error
    assert list(_downloaded(pipeline, second.batch_id)) == [f"{broken.asset_id}/original"]
    retries = present(pipeline.catalog.conn.execute("SELECT count(*) AS n FROM icloud_download_retries").fetchone())
    assert retries["n"] == 0


# --- 2FA relayed through Telegram ------------------------------------------------------------------------------

def test_a_batch_asks_for_the_code_on_telegram_and_downloads(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                             tmp_path: Path) -> None:
    from media_assets_tests.telegram_stub import TelegramStub

    telegram = TelegramStub().start()
    try:
        owner = 5550001
        pipeline = make_pipeline(**icloud_settings(
            standin, tmp_path, ENABLE_TELEGRAM="true", TELEGRAM_BOT_TOKEN=telegram.token,
            TELEGRAM_CHAT_ID=str(owner), TELEGRAM_USER_ID=str(owner),
            TELEGRAM_BASE_URL=f"http://127.0.0.1:{telegram.port}", ICLOUD_2FA_TIMEOUT_SECONDS="30"))
        add_photos(standin, 2)

        def owner_answers() -> None:
            [prompt] = telegram.wait_for_sent(1, timeout=30)
            telegram.inject_message(chat_id=owner, user_id=owner, text="000000", date=prompt.date + 1)
            retry = telegram.wait_for_sent(2, timeout=30)[-1]
            telegram.inject_message(chat_id=owner, user_id=owner, text=standin.code, date=retry.date + 1)

        helper = threading.Thread(target=owner_answers, daemon=True)
        helper.start()
        report = run_batch(pipeline)
        helper.join(timeout=5)
        assert report.success, report.error
        assert len(_downloaded(pipeline, report.batch_id)) == 2
        assert standin.codes_checked == ["000000", standin.code]
        prompts = [s.text for s in telegram.sent[:2]]
        assert "6-digit code" in prompts[0] and "not accepted" in prompts[1]
    finally:
        telegram.stop()


def test_icloud_login_in_the_terminal(standin: ICloudStandIn, make_pipeline: MakePipeline, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from media_assets.cli import main

    make_pipeline(**icloud_settings(standin, tmp_path))
    answers = iter(["12 34 56"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    standin.code = "123456"
    assert main(["icloud", "login"]) == 0
    assert "Signed in to iCloud as owner@example.com" in capsys.readouterr().out
    assert standin.codes_checked == ["123456"]
