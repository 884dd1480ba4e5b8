"""Pacing and retries: pyicloud has neither, and Apple answers bursts with 503/429 and growing lockouts.

Every HTTP request of an account passes one `Pacer` (a minimum spacing between request starts, shared by all
transfer threads), and each logical call is retried on transient answers with exponential backoff and full
jitter; a 429 also pushes the shared pacer back (by Apple's Retry-After when it sends one), so the other threads
slow down instead of piling on.

Sign-in and 2FA requests are retried by the transport itself, request by request: pyicloud folds their
failures into "login failed" or "wrong code" answers, which would cost a refused password or a 2FA attempt
for what was only Apple being busy."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
from pyicloud.common.cloudkit.client import CloudKitApiError, CloudKitRateLimited
from pyicloud.exceptions import (
    PyiCloudAPIResponseException,
    PyiCloudConnectionException,
    PyiCloudServiceUnavailable,
)
from requests.adapters import HTTPAdapter

log = logging.getLogger("media_assets.icloud")
T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Paths of Apple's sign-in (idmsa `/appleauth/auth/...`: SRP, 2FA, trust) and account setup (`accountLogin`,
#: `validate`): every request to them is retried on its own by `PacedAdapter`.
SIGN_IN_PATHS = ("/appleauth/auth", "/setup/ws/1/")
#: The longest Retry-After honoured; a longer one is Apple asking for a break the next run can take.
MAX_RETRY_AFTER_SECONDS = 120.0


def pause(seconds: float) -> None:
    """Every wait of the pacer and the retries goes through here (tests watch the waits instead of the clock)."""
    time.sleep(seconds)


def retry_after(response: requests.Response) -> float | None:
    """Apple's Retry-After (seconds or an HTTP date), capped at MAX_RETRY_AFTER_SECONDS; None when absent."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class TransferError(Exception):
    """A download or upload of bytes went wrong; `status` is the HTTP status, 0 for a broken connection."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Pacer:
    """At most `rate` request starts per second across all threads."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            pause(slot - now)

    def hold(self, seconds: float) -> None:
        """Start no request for `seconds` (after a 429: the server asked everyone to slow down)."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


class PacedAdapter(HTTPAdapter):
    """The transport of every request to Apple: waits for the pacer before each one, holds it back by a 429's
    Retry-After, and retries sign-in requests (`sign_in_retry`). `ca_bundle` (a stand-in's certificate) wins over
    REQUESTS_CA_BUNDLE, which requests would otherwise prefer to the session's own."""

    def __init__(self, pacer: Pacer, pool_size: int, ca_bundle: str | None = None,
                 sign_in_retry: RetryPolicy | None = None) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_size)
        self.pacer = pacer
        self.ca_bundle = ca_bundle
        self.sign_in_retry = sign_in_retry

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.ca_bundle:
            kwargs["verify"] = self.ca_bundle
        path = requests.utils.urlparse(request.url or "").path
        if self.sign_in_retry is not None and path.startswith(SIGN_IN_PATHS):
            what = path.rsplit("/", 1)[-1] or "sign-in"
            return self.sign_in_retry.send(lambda: self._paced_send(request, **kwargs), what=f"sign-in ({what})")
        return self._paced_send(request, **kwargs)

    def _paced_send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.pacer.wait()
        response = super().send(request, **kwargs)
        wait = retry_after(response)
        if response.status_code == 429 and wait:
            self.pacer.hold(wait)
        return response


def transient_status(error: BaseException) -> int | None:
    """The status of a failure worth retrying (0 for a connection problem), None for one that is final."""
    if isinstance(error, TransferError):
        return error.status if error.status in TRANSIENT_STATUSES or error.status == 0 else None
    if isinstance(error, CloudKitRateLimited):
        return 429
    if isinstance(error, PyiCloudConnectionException | requests.ConnectionError | requests.Timeout):
        return 0
    if isinstance(error, PyiCloudAPIResponseException):
        code = error.code
        if isinstance(code, int) and code in TRANSIENT_STATUSES:
            return code
        return _status_in(str(error))
    if isinstance(error, CloudKitApiError):
        return _status_in(str(error))
    if isinstance(error, PyiCloudServiceUnavailable) and error.__cause__ is not None:
        return transient_status(error.__cause__)  # pyicloud wraps the failed first query of Photos
    return None


def _status_in(message: str) -> int | None:
    match = re.search(r"HTTP (\d{3})", message)
    status = int(match.group(1)) if match else None
    return status if status in TRANSIENT_STATUSES else None


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits a random time up to base * 2**n (capped)."""

    attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    pacer: Pacer | None = None
    retried: int = field(default=0, init=False)

    def delay(self, attempt: int) -> float:
        return random.uniform(self.base_seconds / 2, min(self.cap_seconds, self.base_seconds * 2**attempt))

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        for attempt in range(self.attempts):
            try:
                return fn()
            except Exception as error:
                status = transient_status(error)
                if status is None or attempt == self.attempts - 1:
                    raise
                delay = self.delay(attempt)
                self.retried += 1
                if status == 429 and self.pacer is not None:
                    self.pacer.hold(delay)
                log.info("iCloud %s: %s (attempt %d of %d), retrying in %.1f s", what,
                         status or "connection problem", attempt + 1, self.attempts, delay)
                pause(delay)
        raise AssertionError("unreachable")

    def send(self, request: Callable[[], requests.Response], *, what: str) -> requests.Response:
        """One HTTP request, sent again on a transient status or a broken connection with the same backoff, and
        never sooner than Apple's Retry-After; the last answer is returned as it is for the caller to judge."""
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                response = request()
            except (requests.ConnectionError, requests.Timeout):
                if last:
                    raise
                status, wait = 0, None
            else:
                if response.status_code not in TRANSIENT_STATUSES or last:
                    return response
                status, wait = response.status_code, retry_after(response)
                response.close()
            delay = max(self.delay(attempt), wait or 0.0)
            self.retried += 1
            log.info("iCloud %s: %s (attempt %d of %d), retrying in %.1f s", what, status or "connection problem",
                     attempt + 1, self.attempts, delay)
            pause(delay)
        raise AssertionError("unreachable")
