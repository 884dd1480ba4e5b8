"""Signing in to iCloud: the persistent cookie folder, the 2FA code asked for through a `CodeProvider` (Telegram
in a run, the terminal in `media-pipeline icloud login`) within one process and one deadline, a cap on wrong
codes, a warning before Apple's trust in this browser lapses (about 30 days after the last code), and no second
try of a password Apple has refused twice (repeated failures lock the Apple ID)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import requests
from pyicloud import PyiCloudService
from pyicloud.exceptions import PyiCloudConnectionException, PyiCloudFailedLoginException

from media_assets.icloud.config import ICloudConfig
from media_assets.icloud.pacing import PacedAdapter, Pacer, RetryPolicy
from media_assets.settings import Settings
from media_assets.sources.base import SourceNeedsSettings

log = logging.getLogger("media_assets.icloud")
TRUST_FILE = "trust.json"
REFUSED_FILE = "refused-password.json"
#: One alert throttle key per problem (and account), so one problem's alert never silences another's.
PASSWORD_REFUSED = "icloud-password-refused"
NO_CODE_PROVIDER = "icloud-2fa-unanswerable"
CODE_TIMEOUT = "icloud-2fa-timeout"
CODES_REFUSED = "icloud-2fa-codes-refused"
TRUST_LAPSING = "icloud-trust-expiry"


class CodeProvider(Protocol):
    """Asks the owner for the 6-digit code Apple sent; None when no answer came within `deadline_seconds`."""

    def __call__(self, prompt: str, deadline_seconds: float) -> str | None: ...


#: Tells the owner about a problem: `alert(key, text)` (Telegram's `send_alert` in a run).
Alert = Callable[[str, str], object]


class ICloudAuthError(RuntimeError):
    """Signing in failed in a way a person must look at; the message says what to do."""


class PasswordRefused(ICloudAuthError, SourceNeedsSettings):
    """Apple refused the configured password; it is not tried again until it changes."""


class EndpointService(PyiCloudService):
    """pyicloud with every Apple host replaced by `endpoint` when one is given (a local stand-in)."""

    def __init__(self, *args: Any, endpoint: str | None = None, **kwargs: Any) -> None:
        self._endpoint_override = endpoint
        super().__init__(*args, **kwargs)

    def _setup_endpoints(self) -> None:
        super()._setup_endpoints()
        if self._endpoint_override:
            self._idmsa_endpoint = self._endpoint_override
            self._auth_endpoint = f"{self._endpoint_override}/appleauth/auth"
            self._home_endpoint = self._endpoint_override
            self._setup_endpoint = f"{self._endpoint_override}/setup/ws/1"


@dataclass
class Connection:
    """A signed-in account with its pacing and retry policy, shared by the transfer threads."""

    config: ICloudConfig
    service: PyiCloudService
    pacer: Pacer
    retry: RetryPolicy
    trust_expires: datetime | None
    _photos_lock: threading.Lock = field(default_factory=threading.Lock)
    _photos: Any = None

    def photos(self) -> Any:
        """The Photos service, opened once (every access of pyicloud's property asks Apple again)."""
        with self._photos_lock:
            if self._photos is None:
                self._photos = self.retry.call(lambda: self.service.photos, what="opening Photos")
            return self._photos


def prepare_cookie_dir(folder: Path) -> Path:
    """The session folder, readable by the owner only (it holds tokens that sign in as the owner)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (folder.parent, folder):
        os.chmod(path, 0o700)
    return folder


def _serialise_saves(session: Any) -> None:
    """pyicloud rewrites its session and cookie files after every request; with several transfer threads the
    writes must not interleave, so only that step is serialised (the requests themselves run in parallel)."""
    save = session._save_session_data
    lock = threading.Lock()

    def locked_save() -> None:
        with lock:
            save()

    session._save_session_data = locked_save


def trusted_at(cookie_dir: Path) -> datetime | None:
    try:
        return datetime.fromisoformat(json.loads((cookie_dir / TRUST_FILE).read_text())["trusted_at"])
    except (OSError, ValueError, KeyError):
        return None


def record_trust(cookie_dir: Path, at: datetime | None = None) -> None:
    path = cookie_dir / TRUST_FILE
    path.write_text(json.dumps({"trusted_at": (at or datetime.now(timezone.utc)).isoformat()}))
    path.chmod(0o600)


def _password_fingerprint(config: ICloudConfig, salt: bytes) -> str:
    """A slow salted hash: enough to recognise the same password, costly to guess it from (it is often a
    near miss of the right one)."""
    return hashlib.pbkdf2_hmac("sha256", f"{config.username}\n{config.password}".encode(), salt, 200_000).hex()


def record_refused_password(config: ICloudConfig) -> None:
    salt = os.urandom(16)
    path = config.cookie_dir / REFUSED_FILE
    path.write_text(json.dumps({"salt": salt.hex(), "fingerprint": _password_fingerprint(config, salt),
                                "at": datetime.now(timezone.utc).isoformat()}))
    path.chmod(0o600)


def password_refused_on(config: ICloudConfig) -> datetime | None:
    """When Apple refused the configured password, or None when it has not (or the password has changed)."""
    try:
        refused = json.loads((config.cookie_dir / REFUSED_FILE).read_text())
        same = _password_fingerprint(config, bytes.fromhex(refused["salt"])) == refused["fingerprint"]
        return datetime.fromisoformat(refused["at"]) if same else None
    except (OSError, ValueError, KeyError):
        return None


def connect(config: ICloudConfig, *, code_provider: CodeProvider | None, alert: Alert | None = None,
            now: datetime | None = None, interactive: bool = True) -> Connection:
    """Sign in, reusing the trusted session when Apple still accepts it, else asking for a code (unless not
    `interactive`: the automation sensor must never block on a prompt; it lets the run ask instead)."""
    prepare_cookie_dir(config.cookie_dir)
    pacer = Pacer(config.requests_per_second)
    retry = RetryPolicy(attempts=config.max_retries, base_seconds=config.backoff_seconds, pacer=pacer)
    service = EndpointService(config.username, config.password, cookie_directory=str(config.cookie_dir),
                              verify=config.ca_bundle or True, authenticate=False, endpoint=config.endpoint,
                              with_family=False)
    service.session.mount("https://", PacedAdapter(pacer, max(10, 2 * config.concurrency), config.ca_bundle,
                                                   sign_in_retry=retry))
    _serialise_saves(service.session)
    refused_on = password_refused_on(config)
    if refused_on is not None:
        raise _fail(alert, PASSWORD_REFUSED, config,
                    f"Apple refused this password for {config.username} on {refused_on:%Y-%m-%d %H:%M} UTC, so it "
                    "is not tried again (repeated failures lock the Apple ID). Put the right one in ICLOUD_PASSWORD "
                    "(ICLOUD_UPLOAD_PASSWORD for a separate upload account), or run `media-pipeline icloud login` if "
                    "it has since been changed at Apple.", PasswordRefused)
    _sign_in(service, config, alert)
    (config.cookie_dir / REFUSED_FILE).unlink(missing_ok=True)
    if service.requires_2fa and not interactive:
        raise ICloudAuthError(f"iCloud sign-in for {config.username} needs a 2FA code; the next run asks for it")
    fresh_code = service.requires_2fa
    if fresh_code:
        lapsed = trusted_at(config.cookie_dir) is not None
        _complete_2fa(service, config, code_provider, alert, lapsed=lapsed)
    if service.is_trusted_session and (fresh_code or trusted_at(config.cookie_dir) is None):
        record_trust(config.cookie_dir)  # whenever Apple trusts the session, so the expiry warning can fire
    for path in config.cookie_dir.iterdir():
        path.chmod(0o600)
    expires = _check_trust(config, alert, now or datetime.now(timezone.utc))
    return Connection(config, service, pacer, retry, expires)


def _sign_in(service: PyiCloudService, config: ICloudConfig, alert: Alert | None) -> None:
    """Apple's SRP sign-in (each request already retried on 429/5xx and broken connections by the transport).
    A refused password gets one more handshake (SRP clients are known to fail a correct password now and then,
    and two attempts are far from Apple's lockout); refused twice, it is remembered. Anything else is Apple
    being unavailable, never a refused password."""
    for attempt in (1, 2):
        try:
            service.authenticate()
            return
        except PyiCloudFailedLoginException as error:
            status = _status_of(error.__cause__)
            if status != 401:
                raise _unavailable(config, status) from error
            if attempt == 1:
                log.warning("Apple refused the sign-in for %s; trying once more with a new handshake", config.username)
        except (PyiCloudConnectionException, requests.HTTPError) as error:
            raise _unavailable(config, _status_of(error)) from error
    record_refused_password(config)
    raise _fail(alert, PASSWORD_REFUSED, config,
                f"Apple refused the Apple ID or password for {config.username} twice: check ICLOUD_PASSWORD "
                "(ICLOUD_UPLOAD_PASSWORD for a separate upload account). This password is not tried again, so the "
                "Apple ID is not locked.", PasswordRefused)


def _status_of(error: BaseException | None) -> int | None:
    """The HTTP status behind a pyicloud or requests error, None for a connection that broke."""
    code = getattr(error, "code", None)
    response = getattr(error, "response", None)
    return code if isinstance(code, int) else getattr(response, "status_code", None)


def _unavailable(config: ICloudConfig, status: int | None) -> ICloudAuthError:
    answer = f"answered {status}" if status is not None else "could not be reached"
    return ICloudAuthError(f"Apple {answer} during the iCloud sign-in for {config.username} after "
                           f"{config.max_retries} attempts; the password was not refused, the next run tries again.")


def alert_key(problem: str, config: ICloudConfig) -> str:
    return f"{problem}:{config.username}"


def _fail(alert: Alert | None, problem: str, config: ICloudConfig, text: str,
          kind: type[ICloudAuthError] = ICloudAuthError) -> ICloudAuthError:
    log.error(text)
    if alert is not None:
        alert(alert_key(problem, config), text)
    return kind(text)


def _complete_2fa(service: PyiCloudService, config: ICloudConfig, provider: CodeProvider | None,
                  alert: Alert | None, *, lapsed: bool) -> None:
    from media_assets.telegram.messages import deadline_text
    from media_assets.telegram.relay import wrong_code_prompt

    account = config.username
    if provider is None:
        raise _fail(alert, NO_CODE_PROVIDER, config, f"iCloud sign-in for {account} needs a 2FA code and nothing "
                                                     "can ask for one: turn on Telegram or run `media-pipeline icloud "
                                                     "login`.")
    why = "Apple's trust in this pipeline has lapsed" if lapsed else "iCloud sign-in"
    within = deadline_text(config.code_timeout_seconds)
    prompt = f"{why} ({account}): Apple sent a 6-digit code to your devices. Reply with it within {within}."
    deadline = time.monotonic() + config.code_timeout_seconds
    for attempt in range(1, config.code_attempts + 1):
        remaining = deadline - time.monotonic()
        code = provider(prompt, remaining) if remaining > 0 else None
        if code is None:
            raise _fail(alert, CODE_TIMEOUT, config, f"No iCloud 2FA code for {account} within {within}; the run "
                                                     "stops. Answer the next prompt or run `media-pipeline icloud "
                                                     "login`.")
        if service.validate_2fa_code(code):
            log.info("iCloud sign-in for %s trusted after a 2FA code", account)
            return
        log.warning("Apple rejected a 2FA code for %s (attempt %d of %d)", account, attempt, config.code_attempts)
        prompt = wrong_code_prompt("Apple", attempt, config.code_attempts, deadline - time.monotonic())
    raise _fail(alert, CODES_REFUSED, config, f"Apple rejected {config.code_attempts} 2FA codes for {account}; "
                                              "stopped asking so the account is not locked. Run `media-pipeline "
                                              "icloud login` when you have a fresh code.")


def _check_trust(config: ICloudConfig, alert: Alert | None, now: datetime) -> datetime | None:
    """When the trusted session lapses; the owner is warned ICLOUD_TRUST_WARN_DAYS before."""
    since = trusted_at(config.cookie_dir)
    if since is None:
        return None
    expires = since + timedelta(days=config.trust_days)
    left = expires - now
    if left <= timedelta(days=config.trust_warn_days) and alert is not None:
        alert(alert_key(TRUST_LAPSING, config),
              f"iCloud sign-in for {config.username} lapses in about {max(left.days, 0)} day(s) ({expires:%Y-%m-%d})."
              " Run `media-pipeline icloud login` (or answer the code prompt the next run sends) to renew it.")
    return expires


def telegram_code_provider(settings: Settings) -> CodeProvider:
    """Ask for the code on Telegram (the relay keeps to the owner's private chat and the deadline)."""
    from media_assets.telegram import wait_for_code

    def ask(prompt: str, deadline_seconds: float) -> str | None:
        return wait_for_code(prompt, deadline_seconds=deadline_seconds, settings=settings)

    return ask


def telegram_alert(settings: Settings) -> Alert:
    from media_assets.telegram import send_alert

    return lambda key, text: send_alert(key, text, settings=settings)


def account_connector(config: ICloudConfig, settings: Settings, code_provider: CodeProvider | None = None,
                      *, interactive: bool = True) -> Callable[[], Connection]:
    """Signs in when first needed, asking for a code on Telegram unless another provider is given."""
    return lambda: connect(config, code_provider=code_provider or telegram_code_provider(settings),
                           alert=telegram_alert(settings), interactive=interactive)


def terminal_code_provider(read: Callable[[str], str] | None = None) -> CodeProvider:
    """Ask in the terminal (`media-pipeline icloud login`); an empty answer gives up."""

    def ask(prompt: str, deadline_seconds: float) -> str | None:
        answer = "".join((read or input)(f"{prompt}\nCode: ").split())
        return answer or None

    return ask


def login_in_terminal(config: ICloudConfig, read: Callable[[str], str] | None = None) -> str:
    """Sign in now, asking for the code here; the trusted session then serves runs for about a month. A person
    asking is the one case where a password Apple refused before is tried again (it may have been changed at
    Apple to match the settings)."""
    (config.cookie_dir / REFUSED_FILE).unlink(missing_ok=True)
    connection = connect(config, code_provider=terminal_code_provider(read))
    until = f" until about {connection.trust_expires:%Y-%m-%d}" if connection.trust_expires else ""
    return f"Signed in to iCloud as {config.username}; the session is trusted{until}."
