"""Signing in while Apple is busy, against the local HTTPS stand-in with the real pyicloud: every sign-in and 2FA
request is retried with backoff (never sooner than Retry-After), none of it counts as a refused password or a
wrong code, and the trust record is written whenever Apple trusts the session. What the owner reads about it
on Telegram (the real client against the local Bot API stand-in): one throttle key per problem, real deadlines,
and nothing of Apple's request details."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from media_assets.icloud import pacing
from media_assets.icloud.config import icloud_config
from media_assets.icloud.session import REFUSED_FILE, ICloudAuthError, connect, telegram_alert, trusted_at
from media_assets.telegram.messages import deadline_text, run_failure_text
from media_assets.telegram.notify import send_alert
from media_assets.telegram.redaction import REDACTED
from media_assets_tests.conftest import MakePipeline
from media_assets_tests.icloud_standin import ICloudStandIn
from media_assets_tests.telegram_stub import TelegramStub
from media_assets_tests.test_icloud import answer, icloud_settings
from media_assets_tests.test_telegram import settings_for, stub, telegram_settings  # noqa: F401


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait of the pacer and the retries, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(pacing, "pause", recorded.append)
    return recorded


def test_a_429_then_200_at_signin_init_and_at_account_login_signs_in(standin: ICloudStandIn,
                                                                     make_pipeline: MakePipeline, tmp_path: Path,
                                                                     waits: list[float]) -> None:
    config = icloud_config(make_pipeline(**icloud_settings(standin, tmp_path)).settings)
    standin.fail_next("/signin/init", 429, retry_after="3")
    standin.fail_next("/setup/ws/1/accountLogin", 429, retry_after="2")  # right after the code was accepted
    asked: list[str] = []
    connection = connect(config, code_provider=answer(standin.code, asked))
    assert standin.count("/signin/init") == 2 and standin.count("/accountLogin") == 2
    assert len(asked) == 1 and standin.password_failures == 0 and not (config.cookie_dir / REFUSED_FILE).exists()
    assert any(w >= 3 for w in waits) and any(2 <= w < 3 for w in waits)  # Apple's Retry-After, honoured
    assert trusted_at(config.cookie_dir) is not None and connection.trust_expires is not None


def test_a_busy_apple_during_2fa_costs_no_code_and_still_records_the_trust(standin: ICloudStandIn,
                                                                           make_pipeline: MakePipeline,
                                                                           tmp_path: Path, waits: list[float]) -> None:
    config = icloud_config(make_pipeline(**icloud_settings(standin, tmp_path)).settings)
    standin.fail_next("/signin/complete", 0)  # the connection drops
    standin.fail_next("/verify/phone/securitycode", 503)
    standin.fail_next("/2sv/trust", 502, times=2)
    asked: list[str] = []
    connect(config, code_provider=answer(standin.code, asked))
    assert len(asked) == 1 and standin.codes_checked == [standin.code]  # the 503 was not a wrong code
    assert standin.password_failures == 0 and trusted_at(config.cookie_dir) is not None
    assert standin.count("/2sv/trust") == 3


def test_apple_unavailable_at_sign_in_is_not_a_refused_password(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                                tmp_path: Path, waits: list[float]) -> None:
    config = icloud_config(make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_MAX_RETRIES="3")).settings)
    standin.fail_next("/signin/complete", 503, times=3)
    with pytest.raises(ICloudAuthError, match="Apple answered 503 .* the password was not refused"):
        connect(config, code_provider=answer(standin.code))
    assert standin.count("/signin/complete") == 3 and not (config.cookie_dir / REFUSED_FILE).exists()
    connect(config, code_provider=answer(standin.code))  # Apple is back: the same password signs in
    assert standin.password_failures == 0


# --- what the owner reads --------------------------------------------------------------------------------------

def test_a_message_with_a_url_is_redacted(tmp_path: Path, stub: TelegramStub) -> None:  # noqa: F811
    """A failed request names its full URL: the address may go out, its query string and the ids may not."""
    url = ("https://p42-ckdatabasews.icloud.com/database/1/com.apple.photos.cloud/production/private/records/query"
           "?clientBuildNumber=2406Project&clientId=auth-0a1b2c3d-1111-2222-3333-444455556666&dsid=20000001")
    cause = (f"HTTPError: 503 Server Error: Service Unavailable for url: {url}\n"
             'body {"dsInfo": {"dsid": "20000001"}}, client auth-0a1b2c3d-1111-2222-3333-444455556666, '
             "X-Apple-ID-Session-Id: sid-9f8e")
    settings = settings_for(tmp_path, stub)
    assert send_alert("icloud-listing", cause, settings=settings)
    failure = run_failure_text(job_name="media_batch", partition="20260101-000000", cause=url,
                               run_url="http://dagster.example:3000/runs/0a1b2c3d-aaaa-bbbb-cccc-444455556666")
    assert send_alert("run-failed", failure, settings=settings)
    texts = [m.text or "" for m in stub.wait_for_sent(2)]
    for text in texts:
        assert "20000001" not in text and "0a1b2c3d-1111" not in text and "clientBuildNumber" not in text
        assert "sid-9f8e" not in text and REDACTED in text
    assert f"{url.split('?')[0]}?{REDACTED}" in texts[0]
    assert "http://dagster.example:3000/runs/0a1b2c3d-aaaa-bbbb-cccc-444455556666" in texts[1]  # no query: kept


def test_each_sign_in_problem_has_its_own_throttle_key(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                       tmp_path: Path,
                                                       stub: TelegramStub) -> None:  # noqa: F811
    pipeline = make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_2FA_TIMEOUT_SECONDS="90",
                                               ICLOUD_2FA_MAX_ATTEMPTS="2", **telegram_settings(stub)))
    config, alert = icloud_config(pipeline.settings), telegram_alert(pipeline.settings)
    prompts: list[str] = []

    def silent(prompt: str, deadline_seconds: float) -> None:
        prompts.append(prompt)

    with pytest.raises(ICloudAuthError, match="within 90 seconds"):
        connect(config, code_provider=silent, alert=alert)
    assert "Reply with it within 90 seconds." in prompts[0]
    with pytest.raises(ICloudAuthError, match="rejected 2 2FA codes"):
        connect(config, code_provider=answer("000000", prompts), alert=alert)
    assert re.search(r"not accepted by Apple .* within \d+ seconds; 1 try left", prompts[-1])
    texts = [m.text or "" for m in stub.wait_for_sent(2)]  # the second alert is not swallowed by the first
    assert "No iCloud 2FA code" in texts[0] and "Apple rejected 2 2FA codes" in texts[1]


@pytest.mark.parametrize(("seconds", "text"), [(15, "15 seconds"), (90, "90 seconds"), (60, "1 minute"),
                                               (600, "10 minutes"), (150, "2 minutes 30 seconds"), (1, "1 second")])
def test_deadlines_are_stated_as_they_are(seconds: int, text: str) -> None:
    assert deadline_text(seconds) == text


def test_a_trusted_session_without_its_trust_record_gets_one(standin: ICloudStandIn, make_pipeline: MakePipeline,
                                                             tmp_path: Path) -> None:
    """A run killed between Apple's trust and the record (or a record lost) must not silence the expiry warning."""
    config = icloud_config(make_pipeline(**icloud_settings(standin, tmp_path)).settings)
    connect(config, code_provider=answer(standin.code))
    (config.cookie_dir / "trust.json").unlink()
    connection = connect(config, code_provider=None)  # Apple still trusts the session: no code asked
    assert trusted_at(config.cookie_dir) is not None and connection.trust_expires is not None
    assert standin.codes_sent == 1
