"""What the mirror needs, as a view of the checked settings (`settings.mirror`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from media_assets.settings import Settings


@dataclass(frozen=True)
class MirrorConfig:
    enabled: bool
    url: str
    key: str = field(repr=False)
    interval_seconds: int
    chunk_size: int
    timeout_seconds: int
    max_attempts: int
    #: First pause between attempts; it doubles with every further attempt (capped at 60 s).
    backoff_seconds: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> MirrorConfig:
        mirror = settings.mirror
        return cls(enabled=mirror.enabled, url=mirror.url, key=mirror.key, interval_seconds=mirror.interval_seconds,
                   chunk_size=mirror.chunk_size, timeout_seconds=mirror.timeout_seconds,
                   max_attempts=mirror.max_attempts)
