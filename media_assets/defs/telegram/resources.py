"""The owner's Telegram bot as a resource; the work is in `media_assets.telegram`."""

from __future__ import annotations

from dagster import ConfigurableResource

from media_assets.defs.resources import SettingsResource
from media_assets.telegram.config import TelegramConfig, telegram_config
from media_assets.telegram.notify import alert


class TelegramResource(ConfigurableResource):
    """The owner's Telegram bot (ENABLE_TELEGRAM, TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID, ... in the settings)."""

    settings: SettingsResource

    def config(self) -> TelegramConfig:
        return telegram_config(self.settings.load())

    def send_alert(self, key: str, text: str) -> bool:
        """Best effort, throttled per `key`; True when sent."""
        return alert(self.config(), key, text)
