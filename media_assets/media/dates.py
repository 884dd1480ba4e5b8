"""When a photo or video was taken, in the wall-clock time of the place it was taken.

Albums are sorted into ``YYYY/MM/DD`` folders by the day the family lived it, so a photo shot at
23:30 in Tokyo belongs to that evening, not to the previous day in UTC. We therefore keep the naive
local time exactly as the camera wrote it and carry the UTC offset alongside, when it is known,
instead of converting anything to UTC.

The sources are tried from most to least trustworthy and every failure (missing tag, junk value,
unreadable file, missing ffprobe) just moves on to the next one; the chain always ends at the file's
modification time, so :func:`capture_date` never raises.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOURCES = (
    "exif_original",
    "exif_digitized",
    "exif_datetime",
    "quicktime_apple",
    "quicktime_utc",
    "filename",
    "file_mtime",
)

# EXIF tag ids (IFD0 and the Exif sub-IFD).
EXIF_IFD = 0x8769
TAG_DATETIME = 0x0132
TAG_DATETIME_ORIGINAL = 0x9003
TAG_DATETIME_DIGITIZED = 0x9004
TAG_OFFSET_TIME = 0x9010
TAG_OFFSET_TIME_ORIGINAL = 0x9011
TAG_OFFSET_TIME_DIGITIZED = 0x9012
TAG_SUBSEC_TIME = 0x9290
TAG_SUBSEC_TIME_ORIGINAL = 0x9291
TAG_SUBSEC_TIME_DIGITIZED = 0x9292

# (source, date tag, offset tag, sub-second tag), most trustworthy first.
_EXIF_CHAIN = (
    ("exif_original", TAG_DATETIME_ORIGINAL, TAG_OFFSET_TIME_ORIGINAL, TAG_SUBSEC_TIME_ORIGINAL),
    ("exif_digitized", TAG_DATETIME_DIGITIZED, TAG_OFFSET_TIME_DIGITIZED, TAG_SUBSEC_TIME_DIGITIZED),
    ("exif_datetime", TAG_DATETIME, TAG_OFFSET_TIME, TAG_SUBSEC_TIME),
)

APPLE_CREATIONDATE = "com.apple.quicktime.creationdate"

# Metadata dates outside this range are clock resets or placeholders, not capture times.
_META_MIN_YEAR = 1900
_META_MAX_YEAR = 2100
# Zero values of the QuickTime (1904) and Unix (1970) epochs that encoders write when they know nothing.
_EPOCH_PLACEHOLDERS = (datetime(1904, 1, 1), datetime(1970, 1, 1))
# File names are noisier than metadata, so a digit run must look like a recent date to count.
_NAME_MIN_YEAR = 1990
_NAME_MAX_YEAR = 2100
# Real-world UTC offsets run from -12:00 to +14:00.
_MAX_OFFSET_MINUTES = 14 * 60


@dataclass(frozen=True)
class CaptureDate:
    """A capture time as the clock at the place of capture showed it."""

    local: datetime  # naive wall-clock time at the place of capture
    utc_offset_minutes: int | None  # None when unknown
    source: str  # one of SOURCES

    @property
    def folder(self) -> str:
        """The ``YYYY/MM/DD`` folder for the local day the item was taken."""
        return f"{self.local.year:04d}/{self.local.month:02d}/{self.local.day:02d}"


def capture_date(
    path: Path,
    *,
    is_video: bool,
    original_name: str | None = None,
    file_mtime: float | None = None,
) -> CaptureDate:
    """Best known local capture time of ``path``; falls back down the chain and never raises.

    ``original_name`` is the name the file had on the device (staged copies are often renamed) and
    is what the file-name patterns look at; ``file_mtime`` overrides the file's own modification
    time, for copies whose mtime was reset while they were fetched.
    """
    path = Path(path)
    name = original_name if original_name else path.name
    steps: tuple[Callable[[], CaptureDate | None], ...] = (
        (lambda: _from_video(path)) if is_video else (lambda: _from_exif(path)),
        lambda: date_from_filename(name),
    )
    for step in steps:
        try:
            found = step()
        except Exception:  # a parser bug on one odd file must not stop the batch: try the next source
            log.warning("capture date lookup failed for %s", path, exc_info=True)
            continue
        if found is not None:
            return found
    return _from_mtime(path, file_mtime)


# --- EXIF -------------------------------------------------------------------------------------------

_heif_registered = False


def register_heif() -> bool:
    """Let Pillow open HEIC/HEIF files (iPhone photos); safe to call repeatedly."""
    global _heif_registered
    if not _heif_registered:
        try:
            from pillow_heif import register_heif_opener
        except ImportError:  # pragma: no cover - pillow-heif is a hard dependency
            return False
        register_heif_opener()
        _heif_registered = True
    return True


def read_exif_tags(path: Path) -> dict[int, Any]:
    """IFD0 and Exif-IFD tags merged into one dict (Exif IFD wins); empty when there is no EXIF.

    Only the file's header is parsed: ``Image.open`` is lazy and ``getexif`` does not decode pixels.
    """
    from PIL import Image

    register_heif()
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            tags: dict[int, Any] = dict(exif)
            with contextlib.suppress(Exception):  # a broken sub-IFD pointer must not hide IFD0
                tags.update(exif.get_ifd(EXIF_IFD))
    except Exception as exc:  # Pillow raises many kinds of errors on odd files
        log.debug("no EXIF from %s: %s", path, exc)
        return {}
    return tags


def _from_exif(path: Path) -> CaptureDate | None:
    return date_from_exif_tags(read_exif_tags(path))


def date_from_exif_tags(tags: Mapping[int, Any]) -> CaptureDate | None:
    """First usable EXIF date in ``tags`` (DateTimeOriginal, then Digitized, then DateTime)."""
    candidates: list[tuple[str, datetime, int | None]] = []
    for source, date_tag, offset_tag, subsec_tag in _EXIF_CHAIN:
        local = parse_exif_datetime(_text(tags.get(date_tag)))
        if local is None:
            continue
        local = _with_subsec(local, _text(tags.get(subsec_tag)))
        candidates.append((source, local, parse_utc_offset(_text(tags.get(offset_tag)))))
    if not candidates:
        return None
    source, local, offset = candidates[0]
    if offset is None:
        # Some writers only fill OffsetTime; an offset recorded for the same wall-clock second applies.
        second = local.replace(microsecond=0)
        offset = next(
            (o for _, other, o in candidates[1:] if o is not None and other.replace(microsecond=0) == second),
            None,
        )
    return CaptureDate(local=local, utc_offset_minutes=offset, source=source)


def _text(value: Any) -> str | None:
    """EXIF ASCII values arrive as str, bytes or 1-tuples and often carry NUL padding."""
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="ignore")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


_EXIF_DT = re.compile(r"^(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?")


def parse_exif_datetime(value: str | None) -> datetime | None:
    """``"YYYY:MM:DD HH:MM:SS"`` (and close variants) as a naive datetime, or None for junk."""
    if not value:
        return None
    m = _EXIF_DT.match(value.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in m.groups())
    return _plausible(_build(year, month, day, hour, minute, second), _META_MIN_YEAR, _META_MAX_YEAR)


def _with_subsec(local: datetime, subsec: str | None) -> datetime:
    """Add EXIF SubSecTime ("123" means .123 s), which keeps burst shots in order."""
    if not subsec:
        return local
    digits = re.match(r"\d+", subsec)
    if digits is None:
        return local
    return local.replace(microsecond=int(digits.group()[:6].ljust(6, "0")))


_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_utc_offset(value: str | None) -> int | None:
    """``"+09:00"``, ``"-0530"`` or ``"Z"`` as minutes east of UTC; None for blanks and junk."""
    if not value:
        return None
    value = value.strip()
    if value.upper() == "Z":
        return 0
    m = _OFFSET.match(value)
    if m is None:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3))
    if minutes >= 60:
        return None
    total = hours * 60 + minutes
    if total > _MAX_OFFSET_MINUTES:
        return None
    return -total if m.group(1) == "-" else total


# --- QuickTime / MP4 via ffprobe --------------------------------------------------------------------


def _from_video(path: Path) -> CaptureDate | None:
    try:
        from media_assets.media.ffmpeg_tools import probe

        info = probe(path)
    except Exception as exc:  # ffprobe missing, not a video, or unreadable: try the next source
        log.debug("ffprobe gave no dates for %s: %s", path, exc)
        return None
    return date_from_probe(info)


def _all_tags(info: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Format tags first, then each stream's tags, with keys lower-cased (writers differ in case)."""
    sections: list[Any] = [info.get("format") or {}]
    streams = info.get("streams")
    if isinstance(streams, list):
        sections.extend(streams)
    for section in sections:
        tags = section.get("tags") if isinstance(section, Mapping) else None
        if isinstance(tags, Mapping):
            yield {str(k).lower(): v for k, v in tags.items()}


def date_from_probe(info: Mapping[str, Any]) -> CaptureDate | None:
    """Capture date from ffprobe JSON: Apple's local creationdate, else the UTC ``creation_time``."""
    if not isinstance(info, Mapping):
        return None
    for tags in _all_tags(info):
        parsed = parse_iso_datetime(_text(tags.get(APPLE_CREATIONDATE)))
        if parsed is not None:
            local, offset = parsed
            return CaptureDate(local=local, utc_offset_minutes=offset, source="quicktime_apple")
    for tags in _all_tags(info):
        parsed = parse_iso_datetime(_text(tags.get("creation_time")))
        if parsed is not None:
            local, offset = parsed
            # The MP4/QuickTime spec stores creation_time in UTC and the place is unknown, so we keep
            # the UTC wall time with offset 0 rather than guess a zone. A writer that did spell out a
            # real offset told us the local time, so that is kept as written.
            return CaptureDate(local=local, utc_offset_minutes=0 if offset is None else offset, source="quicktime_utc")
    return None


_ISO_DT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_iso_datetime(value: str | None) -> tuple[datetime, int | None] | None:
    """ISO-8601 time as (naive wall-clock time as written, offset minutes or None); None for junk."""
    if not value:
        return None
    m = _ISO_DT.match(value.strip())
    if m is None:
        return None
    year, month, day, hour, minute = (int(g) for g in m.groups()[:5])
    second = int(m.group(6) or 0)
    local = _plausible(_build(year, month, day, hour, minute, second), _META_MIN_YEAR, _META_MAX_YEAR)
    if local is None:
        return None
    if m.group(7):
        local = local.replace(microsecond=int(m.group(7)[:6].ljust(6, "0")))
    offset: int | None = None
    if m.group(8):
        offset = parse_utc_offset(m.group(8))
        if offset is None:  # an offset was written but is nonsense: the whole value is suspect
            return None
    return local, offset


# --- File names -------------------------------------------------------------------------------------


def _ymd_hms(m: re.Match[str]) -> datetime | None:
    g = m.groupdict()
    hour = int(g.get("H") or 0)
    ampm = (g.get("ampm") or "").upper()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "PM" else 0)
    dt = _build(int(g["Y"]), int(g["m"]), int(g["d"]), hour, int(g.get("M") or 0), int(g.get("S") or 0))
    if dt is not None and g.get("ms"):
        dt = dt.replace(microsecond=int(g["ms"]) * 1000)
    return dt


_D8 = r"(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"
_T6 = r"(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})"
_DASHED = r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"

# Most specific first; each match is validated before it counts.
_NAME_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Pixel: PXL_20231224_183015123 (last three digits are milliseconds).
    ("pixel", re.compile(rf"PXL_{_D8}_{_T6}(?P<ms>\d{{3}})(?!\d)", re.IGNORECASE)),
    # WhatsApp: IMG-20231224-WA0001 / VID-20231224-WA0001 (date only).
    ("whatsapp", re.compile(rf"(?<!\d){_D8}-WA\d+", re.IGNORECASE)),
    # macOS: "Screenshot 2023-12-24 at 18.30.15" (12-hour locales add AM/PM, sometimes after U+202F).
    (
        "macos_screenshot",
        re.compile(
            rf"(?<!\d){_DASHED} at (?P<H>\d{{1,2}})\.(?P<M>\d{{2}})\.(?P<S>\d{{2}})(?:\s*(?P<ampm>[AP]M))?",
            re.IGNORECASE,
        ),
    ),
    # Android screenshots: Screenshot_2023-12-24-18-30-15.
    ("dashed_time", re.compile(rf"(?<!\d){_DASHED}-(?P<H>\d{{2}})-(?P<M>\d{{2}})-(?P<S>\d{{2}})(?!\d)")),
    # Dropbox camera uploads: "2023-12-24 18.30.15".
    ("dotted_time", re.compile(rf"(?<!\d){_DASHED}[ _](?P<H>\d{{2}})\.(?P<M>\d{{2}})\.(?P<S>\d{{2}})(?!\d)")),
    # IMG_20231224_183015, VID_20231224_183015, 20231224_183015 and most Android cameras.
    ("compact", re.compile(rf"(?<!\d){_D8}[_-]{_T6}(?!\d)")),
)


def date_from_filename(name: str | None) -> CaptureDate | None:
    """Capture time encoded in a phone/camera/screenshot file name, or None."""
    if not name:
        return None
    for _label, pattern in _NAME_PATTERNS:
        for m in pattern.finditer(name):
            local = _plausible(_ymd_hms(m), _NAME_MIN_YEAR, _NAME_MAX_YEAR)
            if local is not None:
                return CaptureDate(local=local, utc_offset_minutes=None, source="filename")
    return None


# --- File modification time ------------------------------------------------------------------------


def _from_mtime(path: Path, file_mtime: float | None) -> CaptureDate:
    """Modification time in this machine's zone: the last resort, so it must always answer."""
    mtime = file_mtime
    if mtime is None:
        try:
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            mtime = None
    for candidate in (mtime, time.time()):  # unreadable/missing file or absurd mtime: now
        if candidate is None:
            continue
        try:
            aware = datetime.fromtimestamp(candidate).astimezone()
        except (OverflowError, OSError, ValueError):
            continue
        offset = aware.utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset is not None else None
        return CaptureDate(local=aware.replace(tzinfo=None), utc_offset_minutes=minutes, source="file_mtime")
    raise AssertionError("unreachable: time.time() is always representable")  # pragma: no cover


# --- helpers ----------------------------------------------------------------------------------------


def _build(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime | None:
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:  # month 13, Feb 30, hour 24, all-zero placeholders...
        return None


def _plausible(dt: datetime | None, min_year: int, max_year: int) -> datetime | None:
    if dt is None or not min_year <= dt.year <= max_year or dt in _EPOCH_PLACEHOLDERS:
        return None
    return dt


__all__ = [
    "SOURCES",
    "CaptureDate",
    "capture_date",
    "date_from_exif_tags",
    "date_from_filename",
    "date_from_probe",
    "parse_exif_datetime",
    "parse_iso_datetime",
    "parse_utc_offset",
    "read_exif_tags",
    "register_heif",
]
