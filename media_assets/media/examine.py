"""What the download phase learns of a file it copied, as one job for its worker processes: what the file is
(`identify`: the decode that proves a photo whole is most of the phase's work) and when it was taken
(`capture_date`). Only media modules are imported, so a worker loads no catalog, settings or Dagster."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from media_assets.media.dates import CaptureDate, KnownDate, capture_date
from media_assets.media.identify import Identified, MediaKind, UnsupportedMedia, identify


@dataclass(frozen=True)
class Dating:
    """What `capture_date` needs besides the file (see its parameters)."""

    original_name: str
    file_mtime: float | None
    known_dates: Sequence[KnownDate]
    home_zone: str | None


@dataclass(frozen=True)
class Examined:
    """A file identified (with its capture date when it was asked for), or refused (None) for `refusal`."""

    identified: Identified | None
    taken: CaptureDate | None = None
    refusal: str = ""


def examine(path: Path, dating: Dating | None) -> Examined:
    """Identify `path` and, given `dating`, date it (None: the caller dates it itself, once it brought the file's
    sidecars). A file that is no media we take is an answer (`refusal`), not an error; OSError (the copy cannot be
    read) goes through, as from `identify`."""
    try:
        identified = identify(path)
    except UnsupportedMedia as error:
        return Examined(None, refusal=error.reason)
    if dating is None:
        return Examined(identified)
    taken = capture_date(path, is_video=identified.kind is MediaKind.VIDEO, original_name=dating.original_name,
                         file_mtime=dating.file_mtime, known_dates=dating.known_dates, home_zone=dating.home_zone)
    return Examined(identified, taken)
