"""The Telegram settings, parsed from `Settings.raw`; everything is off unless ENABLE_TELEGRAM is true."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from media_assets.settings import Settings, SettingsError, parse_bool, parse_int

DEFAULT_API_URL = "https://api.telegram.org"
#: Lowest value a chat id may have (group chats are negative); only the owner's private chat is used here.
_MIN_CHAT_ID = -(10**15)


@dataclass(frozen=True)
class TelegramConfig:
    enabled: bool
    token: str = field(repr=False)
    chat_id: int
    user_id: int
    #: API root, e.g. https://api.telegram.org; tests point it at a local stand-in.
    api_url: str
    #: Dagster UI address for run links, e.g. http://127.0.0.1:3000 (empty: no links).
    ui_base_url: str
    throttle_minutes: int
    free_space_alert_gb: int
    media_root: Path
    state_file: Path
    #: Every configured secret value, removed from anything we send.
    secrets: tuple[str, ...] = field(repr=False, default=())

    @property
    def base_url(self) -> str:
        return f"{self.api_url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.api_url}/file/bot"

    def run_url(self, run_id: str | None) -> str | None:
        if not (self.ui_base_url and run_id):
            return None
        return f"{self.ui_base_url}/runs/{run_id}"


def telegram_config(settings: Settings) -> TelegramConfig:
    """Parse the Telegram section; with ENABLE_TELEGRAM true the token and chat id must be set."""
    raw = settings.raw
    enabled = parse_bool("ENABLE_TELEGRAM", raw.get("ENABLE_TELEGRAM", "false"))
    token = raw.get("TELEGRAM_BOT_TOKEN", "").strip()
    chat_raw = raw.get("TELEGRAM_CHAT_ID", "").strip()
    user_raw = raw.get("TELEGRAM_USER_ID", "").strip() or chat_raw  # in a private chat the two are the same
    if enabled and not token:
        raise SettingsError("TELEGRAM_BOT_TOKEN must hold the bot's token when ENABLE_TELEGRAM is true.")
    if enabled and not chat_raw:
        raise SettingsError("TELEGRAM_CHAT_ID must hold the owner's chat id when ENABLE_TELEGRAM is true.")
    secrets = {*settings.secret_values(), token}
    return TelegramConfig(
        enabled=enabled, token=token,
        chat_id=parse_int("TELEGRAM_CHAT_ID", chat_raw, minimum=_MIN_CHAT_ID) if chat_raw else 0,
        user_id=parse_int("TELEGRAM_USER_ID", user_raw, minimum=1) if user_raw else 0,
        api_url=(raw.get("TELEGRAM_BASE_URL", "").strip() or DEFAULT_API_URL).rstrip("/"),
        ui_base_url=raw.get("DAGSTER_UI_BASE_URL", "").strip().rstrip("/"),
        throttle_minutes=parse_int("ALERT_THROTTLE_MINUTES", raw.get("ALERT_THROTTLE_MINUTES", "60"), minimum=0),
        free_space_alert_gb=parse_int("FREE_SPACE_ALERT_GB", raw.get("FREE_SPACE_ALERT_GB", "5"), minimum=0),
        media_root=settings.media_root, state_file=settings.data_dir / "telegram-alerts.json",
        secrets=tuple(sorted((s for s in secrets if s), key=len, reverse=True)))
