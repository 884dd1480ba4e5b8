"""Reports and alerts for the owner, best effort: nothing here raises into a batch, a sensor or a caller.

Repeated alerts about the same problem (same key) go out at most once per ALERT_THROTTLE_MINUTES; the last
sending time per key lives in a small JSON file in DATA_DIR, shared by the CLI, the daemon and run workers."""

from __future__ import annotations

import fcntl
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

from media_assets.reporting import RunReport
from media_assets.settings import GB, Settings, SettingsError, process_settings
from media_assets.storage import free_space
from media_assets.telegram.client import TelegramClient
from media_assets.telegram.config import TelegramConfig, telegram_config
from media_assets.telegram.messages import free_space_text, report_messages

log = logging.getLogger("media_assets.telegram")
FREE_SPACE_KEY = "free-space"


class AlertThrottle:
    """When each alert key was last sent, in a JSON file locked while read or written."""

    def __init__(self, path: Path, minutes: int) -> None:
        self.path = path
        self.window = timedelta(minutes=minutes)

    def _update(self, change: dict[str, str] | None = None, forget: str | None = None) -> dict[str, str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            try:
                state = json.loads(handle.read() or "{}")
            except ValueError:
                state = {}  # a damaged file only costs one repeated alert
            if change or forget:
                state.update(change or {})
                state.pop(forget or "", None)
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(state, indent=1, sort_keys=True))
            return state

    def due(self, key: str, now: datetime, *, once: bool = False) -> bool:
        last = self._update().get(key)
        return last is None or (not once and now - datetime.fromisoformat(last) >= self.window)

    def record(self, key: str, now: datetime) -> None:
        self._update({key: now.isoformat()})

    def forget(self, key: str) -> None:
        if self.path.exists() and key in self._update():
            self._update(forget=key)


def _config(settings: Settings | None) -> TelegramConfig | None:
    """The Telegram config, or None (logged) when settings are wrong: a notification never stops the work."""
    try:
        return telegram_config(settings or process_settings())
    except SettingsError as error:
        log.warning("Telegram notifications are off: %s", error)
        return None


def alert(config: TelegramConfig, key: str, text: str, *, now: datetime | None = None, once: bool = False) -> bool:
    """Send `text` unless an alert with `key` went out within the throttle window (with `once`: at all, until
    `forget_alert`); True when sent."""
    if not config.enabled:
        return False
    now = now or datetime.now(timezone.utc)
    throttle = AlertThrottle(config.state_file, config.throttle_minutes)
    if not throttle.due(key, now, once=once):
        log.info("Telegram alert %r throttled", key)
        return False
    sent = TelegramClient(config).deliver(text)
    if sent:
        throttle.record(key, now)
    return sent


def send_alert(key: str, text: str, *, settings: Settings | None = None, now: datetime | None = None,
               once: bool = False) -> bool:
    """For any module: tell the owner about a problem, at most once per ALERT_THROTTLE_MINUTES per `key`
    (e.g. "icloud-2fa-timeout:<account>", "supabase-mirror"), or with `once` only the first time until
    `forget_alert(key)` says it is solved. Secrets are removed; never raises; True when sent."""
    config = _config(settings)
    return config is not None and _safe_alert(config, key, text, now, once=once)


def forget_alert(key: str, *, settings: Settings | None = None) -> None:
    """The problem behind `key` is solved: the next time it happens is alerted again."""
    config = _config(settings)
    if config is not None and config.enabled:
        AlertThrottle(config.state_file, config.throttle_minutes).forget(key)


def _safe_alert(config: TelegramConfig, key: str, text: str, now: datetime | None, *, once: bool = False) -> bool:
    try:
        return alert(config, key, text, now=now, once=once)
    except Exception:  # best effort by contract
        log.exception("Telegram alert %r failed", key)
        return False


def check_free_space(settings: Settings | None = None, *, now: datetime | None = None) -> bool:
    """True when a folder the pipeline writes to has less than FREE_SPACE_ALERT_GB free (the same rule as the
    asset check); then the owner is alerted (throttled)."""
    config = _config(settings)
    if config is None:
        return False
    space = free_space(settings or process_settings())
    if not space.low:
        return False
    folders = ", ".join(str(space.folders[key]) for key in sorted(space.low))
    text = free_space_text(folder=folders, free_bytes=int(min(space.low.values()) * GB),
                           threshold_gb=space.threshold_gb)
    _safe_alert(config, FREE_SPACE_KEY, text, now)
    return True


def send_report(config: TelegramConfig, report: RunReport, run_id: str | None = None) -> bool:
    """The batch report, with the long form attached when it does not fit one message."""
    if not config.enabled:
        return False
    text, document = report_messages(report, run_url=config.run_url(run_id))
    return TelegramClient(config).deliver(text, document)


def notify_batch_finished(settings: Settings, report: RunReport, run_id: str | None = None) -> bool:
    """After a batch run in this process: send its report. Never raises, so a batch never fails for Telegram."""
    config = _config(settings)
    if config is None:
        return False
    try:
        return send_report(config, report, run_id)
    except Exception:
        log.exception("Telegram report of batch %s failed", report.batch_id)
        return False
