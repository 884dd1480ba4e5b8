"""A thin, best-effort wrapper around python-telegram-bot: one short-lived Bot per use (its httpx client is bound
to the event loop), polite retries on flood limits, brief retries on network errors, secrets removed from
everything sent, and nothing raised to the caller when Telegram is down.

python-telegram-bot (with httpx, ~20 MB) is imported only when a message is sent: every run imports this module
for its report, and a run without Telegram (or before the report) should not carry it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from media_assets.telegram.config import TelegramConfig
from media_assets.telegram.redaction import redact

if TYPE_CHECKING:
    from telegram import Bot, Message
    from telegram.error import RetryAfter

log = logging.getLogger("media_assets.telegram")
# httpx logs every request URL at INFO, and the URL holds the bot token; ptb logs raw API answers (which may hold
# a 2FA code) at DEBUG. Neither may reach a log file.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("telegram").setLevel(logging.WARNING)

T = TypeVar("T")
MAX_ATTEMPTS = 3
#: The longest we wait in total for Telegram's flood limit before giving up on one message.
MAX_RETRY_WAIT_SECONDS = 60.0
NETWORK_BACKOFF_SECONDS = 0.5
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


class Undelivered(Exception):
    """Telegram could not take the call; the message says why in one line (already redacted)."""


@dataclass(frozen=True)
class Document:
    filename: str
    content: str
    caption: str = ""


def _seconds(error: RetryAfter) -> float:
    value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramClient:
    def __init__(self, config: TelegramConfig) -> None:
        self.config = config

    def redact(self, text: str) -> str:
        return redact(text, self.config.secrets)

    async def call(self, make: Callable[[], Awaitable[T]], what: str) -> T:
        """Run one API call: wait out 429s (bounded), retry network errors briefly, raise `Undelivered` else."""
        from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

        waited = 0.0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await make()
            except RetryAfter as error:
                wait = _seconds(error)
                if attempt == MAX_ATTEMPTS or waited + wait > MAX_RETRY_WAIT_SECONDS:
                    raise Undelivered(f"{what}: Telegram's flood limit asks to wait {wait:.0f} s more") from None
                log.info("Telegram %s: flood limit, retrying in %.0f s", what, wait)
                waited += wait
                await asyncio.sleep(wait)
            except BadRequest as error:  # a NetworkError subclass, but retrying cannot help
                raise Undelivered(f"{what}: {self.redact(str(error))}") from None
            except NetworkError as error:  # includes TimedOut and 5xx answers
                if attempt == MAX_ATTEMPTS:
                    raise Undelivered(f"{what}: Telegram unreachable ({self.redact(str(error))})") from None
                await asyncio.sleep(NETWORK_BACKOFF_SECONDS * attempt)
            except TelegramError as error:  # Forbidden (owner never sent /start), InvalidToken, Conflict, ...
                raise Undelivered(f"{what}: {type(error).__name__}: {self.redact(str(error))}") from None
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Bot]:
        """An initialised Bot (getMe done) for this event loop, shut down afterwards."""
        from telegram import Bot

        bot = Bot(self.config.token, base_url=self.config.base_url, base_file_url=self.config.base_file_url)
        await self.call(bot.initialize, "getMe")
        try:
            yield bot
        finally:
            await bot.shutdown()

    async def send_text(self, bot: Bot, text: str) -> Message:
        text = self.redact(text)
        if len(text) > TEXT_LIMIT:
            text = text[:TEXT_LIMIT - 1] + "…"
        return await self.call(lambda: bot.send_message(chat_id=self.config.chat_id, text=text), "sendMessage")

    async def send_document(self, bot: Bot, document: Document) -> Message:
        content = self.redact(document.content).encode()
        caption = self.redact(document.caption)[:CAPTION_LIMIT]
        return await self.call(lambda: bot.send_document(chat_id=self.config.chat_id, document=content,
                                                         filename=document.filename, caption=caption or None),
                               "sendDocument")

    def deliver(self, text: str, document: Document | None = None) -> bool:
        """Send `text` (and a document) to the owner; False, logged, when Telegram is off or does not take it."""
        if not self.config.enabled:
            return False

        async def send() -> None:
            async with self.connect() as bot:
                await self.send_text(bot, text)
                if document is not None:
                    await self.send_document(bot, document)

        try:
            asyncio.run(send())
        except Undelivered as error:
            log.warning("Telegram message not delivered: %s", error)
            return False
        return True
