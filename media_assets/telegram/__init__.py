"""Telegram: run reports, alerts and the iCloud 2FA code relay. Plain modules, no Dagster; best effort throughout.

Other modules call `send_alert(key, text)` for problems the owner must hear about, and the iCloud source calls
`wait_for_code(prompt)` to relay a 2FA code."""

from media_assets.telegram.notify import check_free_space, notify_batch_finished, send_alert
from media_assets.telegram.relay import wait_for_code, wrong_code_prompt

__all__ = ["check_free_space", "notify_batch_finished", "send_alert", "wait_for_code", "wrong_code_prompt"]
