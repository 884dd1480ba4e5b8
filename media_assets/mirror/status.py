"""The mirror's lines in `media-pipeline status`: what is queued, when it last worked, what went wrong."""

from __future__ import annotations

from datetime import datetime, timezone

from media_assets.catalog.mirror import MirrorStatus


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def status_lines(status: MirrorStatus, *, enabled: bool) -> list[str]:
    if not enabled and status.last_success_at is None:
        return ["Supabase mirror: off (ENABLE_SUPABASE_MIRROR=false)"]
    lines = [f"Supabase mirror ({'on' if enabled else 'off'}):"]
    pending = ", ".join(f"{table} {n}" for table, n in sorted(status.pending.items()))
    lines.append(f"  pending rows     {pending or 'none'}")
    lines.append(f"  last success     {_when(status.last_success_at)}")
    lines.append(f"  last full pass   {_when(status.last_full_at)}")
    if status.consecutive_failures:
        lines.append(f"  failures in a row {status.consecutive_failures}, last at {_when(status.last_failure_at)}")
    if status.last_error:
        lines.append(f"  last error       {status.last_error}")
    return lines
