"""The 2FA code relay: ask the owner on Telegram and wait for the 6-digit code, safely.

Only the owner's private chat counts, only messages written after the prompt, only text that is exactly a
6-digit code. Every update is confirmed (offset advanced), the code is never logged and its message is deleted
from the chat, and the deadline is kept.
Capping attempts is the caller's job (Apple locks accounts after repeated wrong codes); `wrong_code_prompt`
words the next prompt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from functools import partial
from typing import TYPE_CHECKING

from media_assets.settings import Settings, process_settings
from media_assets.telegram.client import NETWORK_BACKOFF_SECONDS, TelegramClient, Undelivered
from media_assets.telegram.config import TelegramConfig, telegram_config
from media_assets.telegram.messages import deadline_text

if TYPE_CHECKING:  # python-telegram-bot itself is imported by the client, once a message is sent
    from telegram import Bot, Message, Update

log = logging.getLogger("media_assets.telegram")
CODE = re.compile(r"(\d{3}) ?(\d{3})")
#: Telegram's long poll is capped well below typical proxy idle timeouts.
LONG_POLL_SECONDS = 25


def code_from(message: Message | None, config: TelegramConfig, prompt: Message) -> str | None:
    """The code if `message` is the owner's answer in the private chat, written after the prompt."""
    if message is None or message.text is None or message.from_user is None:
        return None
    if message.chat.id != config.chat_id or message.chat.type != "private":
        return None
    if message.from_user.id != config.user_id or message.date <= prompt.date:
        return None
    match = CODE.fullmatch(message.text.strip())
    return match.group(1) + match.group(2) if match else None


async def _poll(client: TelegramClient, bot: Bot, prompt_text: str, deadline: float) -> str | None:
    backlog = await client.call(lambda: bot.get_updates(offset=-1, timeout=0), "getUpdates")
    offset = backlog[-1].update_id + 1 if backlog else None  # old messages are never candidates
    prompt = await client.send_text(bot, prompt_text)
    while (remaining := deadline - time.monotonic()) > 0:
        wait = min(LONG_POLL_SECONDS, max(1, math.floor(remaining)))
        try:
            updates: tuple[Update, ...] = await client.call(
                partial(bot.get_updates, offset=offset, timeout=wait, allowed_updates=["message"]), "getUpdates")
        except Undelivered as error:
            log.warning("Waiting for the 2FA code: %s", error)
            await asyncio.sleep(min(remaining, NETWORK_BACKOFF_SECONDS * 4))
            continue
        for update in updates:
            offset = update.update_id + 1  # past every update, accepted or not
            message = update.message
            code = code_from(message, client.config, prompt)
            if message is not None and code is not None:
                await client.call(partial(bot.get_updates, offset=offset, timeout=0), "getUpdates")  # confirm
                log.info("2FA code received from the owner")
                message = update.message
                assert message is not None  # code_from found the code in it
                with contextlib.suppress(Undelivered):  # keep the code out of the chat history; fine if it stays
                    await client.call(partial(bot.delete_message, chat_id=message.chat.id,
                                              message_id=message.message_id), "deleteMessage")
                return code
            log.info("Ignored a Telegram message that is not the owner's code")
    if offset is not None:  # confirm what was rejected, so the next prompt does not see it again
        with contextlib.suppress(Undelivered):
            await client.call(partial(bot.get_updates, offset=offset, timeout=0), "getUpdates")
    return None


def wait_for_code(prompt_text: str, *, deadline_seconds: float = 600, settings: Settings | None = None) -> str | None:
    """Send `prompt_text` to the owner and return the 6-digit code they answer, or None at the deadline, when
    Telegram is off, or when it cannot be reached."""
    config = telegram_config(settings or process_settings())
    if not config.enabled:
        log.warning("A 2FA code is needed but Telegram is off (ENABLE_TELEGRAM)")
        return None
    client = TelegramClient(config)
    deadline = time.monotonic() + deadline_seconds

    async def run() -> str | None:
        async with client.connect() as bot:
            return await _poll(client, bot, prompt_text, deadline)

    try:
        code = asyncio.run(run())
    except Undelivered as error:
        log.warning("2FA prompt not delivered: %s", error)
        return None
    if code is None:
        log.warning("No 2FA code from the owner within %.0f s", deadline_seconds)
    return code


def wrong_code_prompt(service: str, attempt: int, max_attempts: int, remaining_seconds: float) -> str:
    """The prompt after a rejected code: how many tries are left before the caller stops asking, and how long."""
    left = max_attempts - attempt
    return (f"That code was not accepted by {service} (attempt {attempt} of {max_attempts}). "
            f"Send the new 6-digit code within {deadline_text(remaining_seconds)}; "
            f"{left} {'try' if left == 1 else 'tries'} left.")
