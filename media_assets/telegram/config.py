"""What the Telegram code needs, as a view of the checked settings (`settings.telegram`); everything is off
unless ENABLE_TELEGRAM is true."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from media_assets.settings import Settings


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
    telegram = settings.telegram
    chat_id = telegram.chat_id or 0
    secrets = {*settings.secret_values(), telegram.bot_token}
    return TelegramConfig(
        enabled=telegram.enabled, token=telegram.bot_token, chat_id=chat_id,
        user_id=telegram.user_id or max(chat_id, 0),  # in a private chat the two are the same
        api_url=telegram.base_url, ui_base_url=settings.ui.base_url, throttle_minutes=telegram.throttle_minutes,
        state_file=settings.storage.data_dir / "telegram-alerts.json",
        secrets=tuple(sorted((s for s in secrets if s), key=len, reverse=True)))
