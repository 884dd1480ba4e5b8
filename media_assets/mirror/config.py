"""The mirror's settings, parsed from `Settings.raw` like every feature module."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from dotenv import dotenv_values

from media_assets.settings import Settings, SettingsError, parse_bool, parse_int, settings_file_path

DEFAULT_INTERVAL_SECONDS = 300
DEFAULT_CHUNK_SIZE = 500
#: Rows per request above this risk Supabase's 8 s statement timeout and multi-MB bodies.
MAX_CHUNK_SIZE = 5000
INTERVAL_KEY = "SUPABASE_SYNC_INTERVAL_SECONDS"


@dataclass(frozen=True)
class MirrorConfig:
    enabled: bool
    url: str
    key: str = field(repr=False)
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    chunk_size: int = DEFAULT_CHUNK_SIZE
    timeout_seconds: int = 30
    max_attempts: int = 5
    #: First pause between attempts; it doubles with every further attempt (capped at 60 s).
    backoff_seconds: float = 1.0

    @classmethod
    def from_raw(cls, raw: Mapping[str, str]) -> MirrorConfig:
        enabled = parse_bool("ENABLE_SUPABASE_MIRROR", raw.get("ENABLE_SUPABASE_MIRROR", "false"))
        url = raw.get("SUPABASE_URL", "").strip().rstrip("/")
        key = raw.get("SUPABASE_KEY", "").strip()
        if enabled and not url.startswith(("http://", "https://")):
            raise SettingsError("SUPABASE_URL must be the project's URL (https://<project>.supabase.co) when "
                                "ENABLE_SUPABASE_MIRROR is true.")
        if enabled and not key:
            raise SettingsError("SUPABASE_KEY must be the project's service_role (secret) key when "
                                "ENABLE_SUPABASE_MIRROR is true.")
        chunk = parse_int("SUPABASE_CHUNK_SIZE", raw.get("SUPABASE_CHUNK_SIZE", str(DEFAULT_CHUNK_SIZE)), minimum=1)
        if chunk > MAX_CHUNK_SIZE:
            raise SettingsError(f"SUPABASE_CHUNK_SIZE must be at most {MAX_CHUNK_SIZE}, not {chunk}.")
        return cls(
            enabled=enabled, url=url, key=key,
            interval_seconds=parse_int(INTERVAL_KEY, raw.get(INTERVAL_KEY, str(DEFAULT_INTERVAL_SECONDS)),
                                       minimum=30),
            chunk_size=chunk,
            timeout_seconds=parse_int("SUPABASE_TIMEOUT_SECONDS", raw.get("SUPABASE_TIMEOUT_SECONDS", "30"),
                                      minimum=1),
            max_attempts=parse_int("SUPABASE_MAX_ATTEMPTS", raw.get("SUPABASE_MAX_ATTEMPTS", "5"), minimum=1),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> MirrorConfig:
        return cls.from_raw(settings.raw)


def configured_interval_seconds() -> int:
    """The sensor's interval, read when the code location loads: Dagster fixes `minimum_interval_seconds` at
    definition time, before any run has loaded (and validated, folders included) the full settings."""
    path = settings_file_path()
    raw = {k: v or "" for k, v in dotenv_values(path).items()} if path.exists() else {}
    raw.update({k: v for k, v in os.environ.items() if k == INTERVAL_KEY})
    return parse_int(INTERVAL_KEY, raw.get(INTERVAL_KEY, str(DEFAULT_INTERVAL_SECONDS)), minimum=30)
