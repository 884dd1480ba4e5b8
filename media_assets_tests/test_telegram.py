"""Telegram with the real python-telegram-bot against a local Bot API stand-in: reports, alerts, throttling, the
2FA relay, a down or rate-limiting Telegram, and no secret in anything sent."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, SensorDefinition, asset, build_sensor_context
from dagster._core.definitions.sensor_definition import SensorExecutionData

from media_assets.catalog.files import QuarantinedFile
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.defs.telegram.resources import TelegramResource
from media_assets.defs.telegram.sensors import (
    telegram_batch_report,
    telegram_free_space_alert,
    telegram_run_failure_alert,
)
from media_assets.media import sample_library as sample
from media_assets.reporting import RunReport
from media_assets.runner import run_batch
from media_assets.settings import Settings, load_settings
from media_assets.telegram import check_free_space, send_alert, wait_for_code, wrong_code_prompt
from media_assets.telegram.client import TEXT_LIMIT
from media_assets.telegram.config import telegram_config
from media_assets.telegram.notify import send_report
from media_assets.telegram.redaction import REDACTED, redact
from media_assets_tests.conftest import MakePipeline, write_settings
from media_assets_tests.telegram_stub import TelegramStub

OWNER = 5550001
STRANGER = 5550002
UI = "http://dagster.example:3000"


@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    server = TelegramStub().start()
    yield server
    server.stop()


def telegram_settings(stub: TelegramStub, **more: str) -> dict[str, str]:
    return {"ENABLE_TELEGRAM": "true", "TELEGRAM_BOT_TOKEN": stub.token, "TELEGRAM_CHAT_ID": str(OWNER),
            "TELEGRAM_USER_ID": str(OWNER), "TELEGRAM_BASE_URL": f"http://127.0.0.1:{stub.port}",
            "DAGSTER_UI_BASE_URL": UI, **more}


def settings_for(tmp_path: Path, stub: TelegramStub, **more: str) -> Settings:
    return load_settings(write_settings(tmp_path, **telegram_settings(stub, **more)), environ={})


def _sensor(sensor_def: SensorDefinition, instance: DagsterInstance, resources: Mapping[str, object],
            cursor: str | None = None) -> SensorExecutionData:
    with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        return sensor_def.evaluate_tick(context)


# --- reports ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_batch_sends_its_report_and_the_daemon_sensor_does_not_repeat_it(make_pipeline: MakePipeline,
                                                                           stub: TelegramStub, tmp_path: Path) -> None:
    pipeline = make_pipeline(**telegram_settings(stub))
    sample.write_sample_library(pipeline.settings.sources.folder_source_paths[0])
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    resources = {"telegram": TelegramResource(settings=settings), "catalog": CatalogResource(settings=settings)}
    cursor = _sensor(telegram_batch_report, pipeline.instance, resources).cursor

    report = run_batch(pipeline)

    assert report.success
    [message] = stub.wait_for_sent(1)
    assert message.method == "sendMessage" and message.chat_id == OWNER
    text = message.text
    assert f"Batch {report.batch_id} succeeded" in text
    assert f"Phases: 8/8 · Files: {report.files_processed}" in text
    assert f"Duplicates: {len(report.duplicates)} · Quarantined: 1" in text
    assert "• broken.jpg: " in text and "truncated" in text
    assert "• download: succeeded, " in text and "• verification: succeeded, " in text
    assert f"{UI}/runs/" in text
    # The daemon's report sensor sees the same run finish, and leaves it to the CLI that already reported it.
    evaluation = _sensor(telegram_batch_report, pipeline.instance, resources, cursor)
    assert "reported it itself" in (evaluation.skip_message or "")
    assert len(stub.sent) == 1


def test_the_report_sensor_reports_a_batch_run_by_the_daemon(make_pipeline: MakePipeline, stub: TelegramStub,
                                                             tmp_path: Path) -> None:
    from media_assets.definitions import defs

    pipeline = make_pipeline(**telegram_settings(stub))
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    resources = {"telegram": TelegramResource(settings=settings), "catalog": CatalogResource(settings=settings)}
    cursor = _sensor(telegram_batch_report, pipeline.instance, resources).cursor
    pipeline.catalog.create_batch("b1")
    pipeline.instance.add_dynamic_partitions("batch", ["b1"])
    result = defs.resolve_job_def("media_batch").execute_in_process(partition_key="b1", instance=pipeline.instance)

    evaluation = _sensor(telegram_batch_report, pipeline.instance, resources, cursor)
    assert evaluation.skip_message is None
    [message] = stub.wait_for_sent(1)
    assert "Batch b1 succeeded" in message.text and "Files: 1" in message.text
    assert f"{UI}/runs/{result.run_id}" in message.text


def _report(quarantined: int, error: str | None = None) -> RunReport:
    return RunReport(batch_id="20240101-000000", success=error is None, duration_seconds=3725.0, phases_succeeded=8,
                     phases_total=8, files_processed=quarantined, files_by_state={"quarantined": quarantined},
                     bytes_in=5 * 10**6, bytes_out=2 * 10**6,
                     phases=[{"phase": "download", "status": "succeeded", "files": quarantined, "seconds": 1.25}],
                     quarantined=[QuarantinedFile(id=i, original_name=f"IMG_{i:04d}_with_a_longish_name.jpg",
                                                  error="image file is truncated (12 bytes not processed)",
                                                  source_path=f"library/IMG_{i:04d}_with_a_longish_name.jpg")
                                  for i in range(quarantined)], error=error)


def test_a_long_report_goes_as_a_document(tmp_path: Path, stub: TelegramStub) -> None:
    report = _report(300)
    assert send_report(telegram_config(settings_for(tmp_path, stub)), report, "run-1")

    message, document = stub.wait_for_sent(2)
    assert message.method == "sendMessage" and len(message.text) <= TEXT_LIMIT
    assert "1 h 02 min" in message.text and "Saved: 3.0 MB" in message.text
    assert "… and 295 more" in message.text and "attached" in message.text
    assert document.method == "sendDocument" and document.filename == "report-20240101-000000.md"
    assert document.document.decode() == report.to_markdown()
    assert "IMG_0299_with_a_longish_name.jpg" in document.document.decode()


def test_a_short_report_is_one_message(tmp_path: Path, stub: TelegramStub) -> None:
    assert send_report(telegram_config(settings_for(tmp_path, stub)), _report(3), None)
    [message] = stub.wait_for_sent(1)
    assert "IMG_0002_with_a_longish_name.jpg" in message.text and "Run:" not in message.text
    time.sleep(0.2)
    assert stub.count("sendDocument") == 0


# --- alerts ----------------------------------------------------------------------------------------------------
def test_failure_alert_for_a_batch_job_run(make_pipeline: MakePipeline, stub: TelegramStub, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import media_assets.defs.batch.assets as assets
    from media_assets.definitions import defs

    pipeline = make_pipeline(**telegram_settings(stub))
    resources = {"telegram": TelegramResource(settings=SettingsResource(settings_file=str(tmp_path / "settings.env")))}
    cursor = _sensor(telegram_run_failure_alert, pipeline.instance, resources).cursor

    def broken_download(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the source disk is on fire\nsecond line of detail")

    monkeypatch.setattr(assets, "download_files", broken_download)
    pipeline.catalog.create_batch("b7")
    pipeline.instance.add_dynamic_partitions("batch", ["b7"])
    result = defs.resolve_job_def("media_batch").execute_in_process(partition_key="b7", instance=pipeline.instance,
                                                                     raise_on_error=False)
    assert not result.success

    evaluation = _sensor(telegram_run_failure_alert, pipeline.instance, resources, cursor)
    assert evaluation.skip_message is None
    [message] = stub.wait_for_sent(1)
    assert "Run failed: batch b7 (media_batch)" in message.text
    assert "Failed at download: RuntimeError: the source disk is on fire" in message.text
    assert "second line" not in message.text
    assert f"Run: {UI}/runs/{result.run_id}" in message.text


def test_failure_alert_for_an_asset_backfill_run(tmp_path: Path, stub: TelegramStub) -> None:
    settings_for(tmp_path, stub)
    resources = {"telegram": TelegramResource(settings=SettingsResource(settings_file=str(tmp_path / "settings.env")))}
    instance = DagsterInstance.ephemeral()

    @asset
    def compression_of_everything() -> None:
        raise OSError("No space left on device")

    job = Definitions(assets=[compression_of_everything]).resolve_implicit_global_asset_job_def()
    cursor = _sensor(telegram_run_failure_alert, instance, resources).cursor
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert result.dagster_run.job_name == "__ASSET_JOB"

    assert _sensor(telegram_run_failure_alert, instance, resources, cursor).skip_message is None
    [message] = stub.wait_for_sent(1)
    assert "(__ASSET_JOB)" in message.text
    assert "compression_of_everything: OSError: No space left on device" in message.text
    assert f"{UI}/runs/{result.run_id}" in message.text


def test_repeated_alerts_are_throttled_per_problem(tmp_path: Path, stub: TelegramStub) -> None:
    settings = settings_for(tmp_path, stub, ALERT_THROTTLE_MINUTES="60")
    now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert send_alert("icloud-session", "iCloud session lapses in 2 days", settings=settings, now=now)
    assert not send_alert("icloud-session", "iCloud session lapses in 2 days", settings=settings,
                          now=now + timedelta(minutes=59))
    assert send_alert("supabase-mirror", "mirror failing for 3 cycles", settings=settings, now=now)
    assert send_alert("icloud-session", "iCloud session lapsed", settings=settings, now=now + timedelta(minutes=61))
    texts = [m.text for m in stub.wait_for_sent(3)]
    assert texts == ["iCloud session lapses in 2 days", "mirror failing for 3 cycles", "iCloud session lapsed"]


def test_an_undelivered_alert_is_not_counted_as_sent(tmp_path: Path, stub: TelegramStub) -> None:
    settings = settings_for(tmp_path, stub)
    stub.fail_next("sendMessage", 403, "Forbidden: bot can't initiate conversation with a user")
    assert not send_alert("icloud-session", "lapsed", settings=settings)
    assert stub.count("sendMessage") == 1  # a 403 is not retried
    assert send_alert("icloud-session", "lapsed", settings=settings)


def test_low_free_space_is_alerted_once_per_window(tmp_path: Path, stub: TelegramStub) -> None:
    low = settings_for(tmp_path, stub, FREE_SPACE_ALERT_GB=str(10**9))
    assert check_free_space(low)
    [message] = stub.wait_for_sent(1)
    assert "Low free space" in message.text and str(low.storage.media_root) in message.text
    resources = {"telegram": TelegramResource(settings=SettingsResource(settings_file=str(tmp_path / "settings.env")))}
    evaluation = _sensor(telegram_free_space_alert, DagsterInstance.ephemeral(), resources)
    assert "free space is low" in (evaluation.skip_message or "")
    assert len(stub.sent) == 1  # throttled
    assert not check_free_space(settings_for(tmp_path, stub, FREE_SPACE_ALERT_GB="0"))


# --- a down or rate-limiting Telegram ----------------------------------------------------------------------------
def test_a_batch_succeeds_while_telegram_is_down(make_pipeline: MakePipeline, stub: TelegramStub,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    pipeline = make_pipeline(**telegram_settings(stub))
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    stub.stop()
    with caplog.at_level(logging.WARNING, logger="media_assets.telegram"):
        report = run_batch(pipeline)
    assert report.success and report.files_processed == 1
    assert "Telegram message not delivered" in caplog.text and "unreachable" in caplog.text
    assert stub.token not in caplog.text


def test_flood_limit_and_server_errors_are_retried(tmp_path: Path, stub: TelegramStub) -> None:
    settings = settings_for(tmp_path, stub)
    stub.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    stub.fail_next("sendMessage", 500, "Internal Server Error")
    assert send_alert("k", "after a pause", settings=settings)
    assert stub.count("sendMessage") == 3
    assert [m.text for m in stub.sent] == ["after a pause"]


def test_a_flood_wait_beyond_the_bound_gives_up(tmp_path: Path, stub: TelegramStub) -> None:
    stub.fail_next("sendMessage", 429, "Too Many Requests: retry after 3600", retry_after=3600)
    assert not send_alert("k", "never", settings=settings_for(tmp_path, stub))
    assert stub.count("sendMessage") == 1 and stub.sent == []


def test_telegram_off_sends_nothing(tmp_path: Path, stub: TelegramStub) -> None:
    settings = settings_for(tmp_path, stub, ENABLE_TELEGRAM="false")
    assert not send_alert("k", "hello", settings=settings)
    assert wait_for_code("code?", deadline_seconds=5, settings=settings) is None
    assert stub.calls == []


# --- secrets ---------------------------------------------------------------------------------------------------
def test_no_secret_leaves_in_a_message_or_document(tmp_path: Path, stub: TelegramStub) -> None:
    secrets = {"ICLOUD_PASSWORD": "apple-pw-Zq81", "POSTGRES_PASSWORD": "pg-pw-77Lm", "SUPABASE_KEY": "sb-key-Q0Q0"}
    settings = settings_for(tmp_path, stub, **secrets)
    leaky = f"login failed for {' '.join(secrets.values())} with token {stub.token}"
    assert send_alert("leak", leaky, settings=settings)
    assert send_report(telegram_config(settings), _report(300, error=leaky))
    message, report_message, document = stub.wait_for_sent(3)
    for sent in (message.text, report_message.text, document.document.decode()):
        assert REDACTED in sent
        for secret in [*secrets.values(), stub.token]:
            assert secret not in sent


def test_redact_takes_the_longest_secret_whole() -> None:
    assert redact("pw=abc and abcdef", ["abc", "abcdef"]) == f"pw={REDACTED} and {REDACTED}"
    assert redact("nothing to hide", ["", "xyz"]) == "nothing to hide"


# --- the 2FA relay ---------------------------------------------------------------------------------------------
def _answer_after_prompt(stub: TelegramStub, messages: list[dict]) -> threading.Thread:
    """Once the prompt is out, the given users write (date offsets relative to the prompt)."""

    def act() -> None:
        [prompt] = stub.wait_for_sent(1)
        for message in messages:
            stub.inject_message(**{**message, "date": prompt.date + message["date"]})

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_the_owners_code_is_relayed_and_never_logged(tmp_path: Path, stub: TelegramStub,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path, stub)
    caplog.set_level(logging.DEBUG)
    _answer_after_prompt(stub, [{"chat_id": OWNER, "user_id": OWNER, "text": " 481 516 ", "date": 2}])
    assert wait_for_code("Apple sent a code to your iPhone: reply with it.", deadline_seconds=10,
                         settings=settings) == "481516"
    assert stub.sent[0].text == "Apple sent a code to your iPhone: reply with it." and stub.sent[0].chat_id == OWNER
    assert stub.pending_update_ids() == []  # confirmed, so it is not delivered again
    assert [stub.user_messages[m] for m in stub.deleted] == [" 481 516 "]  # and gone from the chat
    assert "481516" not in caplog.text and "481 516" not in caplog.text  # nor in any DEBUG record
    assert "2FA code received" in caplog.text


def test_strangers_groups_and_non_codes_are_ignored(tmp_path: Path, stub: TelegramStub) -> None:
    settings = settings_for(tmp_path, stub)
    _answer_after_prompt(stub, [
        {"chat_id": STRANGER, "user_id": STRANGER, "text": "111111", "date": 1},
        {"chat_id": -100, "user_id": OWNER, "text": "222222", "date": 1, "chat_type": "group"},
        {"chat_id": OWNER, "user_id": OWNER, "text": "12345", "date": 1},
        {"chat_id": OWNER, "user_id": OWNER, "text": "code 123456", "date": 1},
        {"chat_id": OWNER, "user_id": OWNER, "text": "654321", "date": 2},
    ])
    assert wait_for_code("code?", deadline_seconds=10, settings=settings) == "654321"


def test_old_messages_are_ignored(tmp_path: Path, stub: TelegramStub) -> None:
    settings = settings_for(tmp_path, stub)
    stub.inject_message(chat_id=OWNER, user_id=OWNER, text="999999")  # waiting before the prompt: backlog
    _answer_after_prompt(stub, [
        {"chat_id": OWNER, "user_id": OWNER, "text": "888888", "date": -60},  # delivered late, written earlier
        {"chat_id": OWNER, "user_id": OWNER, "text": "777777", "date": 0},  # the same second as the prompt
        {"chat_id": OWNER, "user_id": OWNER, "text": "135 790", "date": 3},
    ])
    assert wait_for_code("code?", deadline_seconds=10, settings=settings) == "135790"


def test_no_answer_returns_none_at_the_deadline(tmp_path: Path, stub: TelegramStub,
                                                caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path, stub)
    _answer_after_prompt(stub, [{"chat_id": STRANGER, "user_id": STRANGER, "text": "111111", "date": 1}])
    with caplog.at_level(logging.WARNING, logger="media_assets.telegram"):
        assert wait_for_code("code?", deadline_seconds=1.5, settings=settings) is None
    assert "No 2FA code" in caplog.text
    assert stub.pending_update_ids() == []  # the rejected message was confirmed too


def test_the_relay_gives_up_when_telegram_is_down(tmp_path: Path, stub: TelegramStub) -> None:
    settings = settings_for(tmp_path, stub)
    stub.stop()
    assert wait_for_code("code?", deadline_seconds=30, settings=settings) is None


def test_wrong_code_prompt_counts_down() -> None:
    assert "attempt 1 of 3" in wrong_code_prompt("Apple", 1, 3, 60) and "2 tries left" in wrong_code_prompt(
        "Apple", 1, 3, 60)
    assert "1 try left" in wrong_code_prompt("Apple", 2, 3, 60)
