"""Signing in while Apple is busy, against the local HTTPS stand-in with the real pyicloud: every sign-in and 2FA
request is retried with backoff (never sooner than Retry-After), none of it counts as a refused password or a
wrong code, and the trust record is written whenever Apple trusts the session."""

from __future__ import annotations

import pytest

from media_assets.icloud import pacing
from media_assets.icloud.config import icloud_config
from media_assets.icloud.session import REFUSED_FILE, ICloudAuthError, connect, trusted_at
from media_assets_tests.test_icloud import answer, icloud_settings, standin  # noqa: F401


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait of the pacer and the retries, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(pacing, "pause", recorded.append)
    return recorded


def test_a_429_then_200_at_signin_init_and_at_account_login_signs_in(standin, make_pipeline, tmp_path,  # noqa: F811
                                                                     waits) -> None:
    config = icloud_config(make_pipeline(**icloud_settings(standin, tmp_path)).settings)
    standin.fail_next("/signin/init", 429, retry_after="3")
    standin.fail_next("/setup/ws/1/accountLogin", 429, retry_after="2")  # right after the code was accepted
    asked: list[str] = []
    connection = connect(config, code_provider=answer(standin.code, asked))
    assert standin.count("/signin/init") == 2 and standin.count("/accountLogin") == 2
    assert len(asked) == 1 and standin.password_failures == 0 and not (config.cookie_dir / REFUSED_FILE).exists()
    assert any(w >= 3 for w in waits) and any(2 <= w < 3 for w in waits)  # Apple's Retry-After, honoured
    assert trusted_at(config.cookie_dir) is not None and connection.trust_expires is not None


def test_a_busy_apple_during_2fa_costs_no_code_and_still_records_the_trust(standin, make_pipeline,  # noqa: F811
                                                                            tmp_path, waits) -> None:
    config = icloud_config(make_pipeline(**icloud_settings(standin, tmp_path)).settings)
    standin.fail_next("/signin/complete", 0)  # the connection drops
    standin.fail_next("/verify/phone/securitycode", 503)
    standin.fail_next("/2sv/trust", 502, times=2)
    asked: list[str] = []
    connect(config, code_provider=answer(standin.code, asked))
    assert len(asked) == 1 and standin.codes_checked == [standin.code]  # the 503 was not a wrong code
    assert standin.password_failures == 0 and trusted_at(config.cookie_dir) is not None
    assert standin.count("/2sv/trust") == 3


def test_apple_unavailable_at_sign_in_is_not_a_refused_password(standin, make_pipeline, tmp_path,  # noqa: F811
                                                                waits) -> None:
    config = icloud_config(make_pipeline(**icloud_settings(standin, tmp_path, ICLOUD_MAX_RETRIES="3")).settings)
    standin.fail_next("/signin/complete", 503, times=3)
    with pytest.raises(ICloudAuthError, match="Apple answered 503 .* the password was not refused"):
        connect(config, code_provider=answer(standin.code))
    assert standin.count("/signin/complete") == 3 and not (config.cookie_dir / REFUSED_FILE).exists()
    connect(config, code_provider=answer(standin.code))  # Apple is back: the same password signs in
    assert standin.password_failures == 0
