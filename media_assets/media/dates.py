"""When a photo or video was taken, in the wall-clock time of the place it was taken.

Albums are sorted into ``YYYY/MM/DD`` folders by the day the family lived it, so a photo shot at 23:30 in Tokyo
belongs to that evening, not to the previous day in UTC. A date written as local time (EXIF DateTimeOriginal,
with or without its offset) is kept exactly as written; a moment known only in UTC (an MP4's creation_time, a GPS
time, iCloud's asset date, a Takeout JSON) is turned into local time at the place: the time zone at the file's GPS
coordinates (offline lookup), else HOME_TIMEZONE (media/timezones.py). The result names the winning tag
(`exif_datetimeoriginal`, `filename`, ...) and, for a UTC moment, the zone and how it was chosen.

Order of trust, first found wins (ORDER below; metadata is read by libexiv2, videos by ffprobe):
photos: EXIF DateTimeOriginal (+ OffsetTimeOriginal, SubSecTimeOriginal), XMP exif:DateTimeOriginal, XMP
photoshop:DateCreated, IPTC DateCreated + TimeCreated, EXIF CreateDate (DateTimeDigitized), XMP xmp:CreateDate,
maker-note capture dates, GPS date and time; videos: Apple's com.apple.quicktime.creationdate, then the UTC
creation_time; then for both the capture dates of an XMP sidecar beside the file (exif:DateTimeOriginal,
photoshop:DateCreated, xmp:CreateDate, as Lightroom and darktable write them), then a date in the file name, then
the date the source knows (iCloud's asset date, a Google Takeout JSON beside the file), then edit and export times
(IFD0 ModifyDate, XMP ModifyDate and MetadataDate: never capture dates, so below the file name), then the file's
modification time.

Every failure (missing tag, junk value, unreadable file, missing ffprobe) moves on to the next source; the chain
ends at the modification time, so :func:`capture_date` never raises.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from media_assets.media import timezones

log = logging.getLogger(__name__)

#: Classes of date source, most trustworthy first (the catalog's capture_date_source).
SOURCES = ("metadata", "filename", "source", "edit_time", "file_mtime")

# --- tags: (winning tag name, exiv2 key, offset key, sub-second key) in the order of trust -----------------

_EXIF_ORIGINAL = ("exif_datetimeoriginal", "Exif.Photo.DateTimeOriginal", "Exif.Photo.OffsetTimeOriginal",
                  "Exif.Photo.SubSecTimeOriginal")
_EXIF_CREATE = ("exif_createdate", "Exif.Photo.DateTimeDigitized", "Exif.Photo.OffsetTimeDigitized",
                "Exif.Photo.SubSecTimeDigitized")
_EXIF_MODIFY = ("exif_modifydate", "Exif.Image.DateTime", "Exif.Photo.OffsetTime", "Exif.Photo.SubSecTime")
_XMP_CAPTURE = (("xmp_exif_datetimeoriginal", "Xmp.exif.DateTimeOriginal"),
                ("xmp_photoshop_datecreated", "Xmp.photoshop.DateCreated"))
_XMP_CREATE = (("xmp_createdate", "Xmp.xmp.CreateDate"),)
_XMP_EDIT = (("xmp_modifydate", "Xmp.xmp.ModifyDate"), ("xmp_metadatadate", "Xmp.xmp.MetadataDate"))
#: The capture dates of an XMP sidecar beside the file (`IMG_1.XMP`, `IMG_1.CR2.xmp`: Lightroom, darktable), in the
#: order of the file's own XMP, each tag named as coming from the sidecar.
_SIDECAR_CAPTURE = tuple((f"sidecar_{tag}", key) for tag, key in (*_XMP_CAPTURE, *_XMP_CREATE))
_IPTC_DATE, _IPTC_TIME = "Iptc.Application2.DateCreated", "Iptc.Application2.TimeCreated"
#: Capture dates that libexiv2 decodes from maker notes.
_MAKERNOTE_KEYS = ("Exif.NikonPreview.DateTimeOriginal", "Exif.SamsungPreview.DateTimeOriginal",
                   "Exif.SonySInfo1.SonyDateTime", "Exif.Sony2010e.SonyDateTime")
_GPS_DATE, _GPS_TIME = "Exif.GPSInfo.GPSDateStamp", "Exif.GPSInfo.GPSTimeStamp"
_GPS_LAT, _GPS_LAT_REF = "Exif.GPSInfo.GPSLatitude", "Exif.GPSInfo.GPSLatitudeRef"
_GPS_LON, _GPS_LON_REF = "Exif.GPSInfo.GPSLongitude", "Exif.GPSInfo.GPSLongitudeRef"
_XMP_GPS_LAT, _XMP_GPS_LON = "Xmp.exif.GPSLatitude", "Xmp.exif.GPSLongitude"

#: Every tag that can win, in the order of trust (documented in README and ARCHITECTURE).
ORDER = (
    _EXIF_ORIGINAL[0], *(t for t, _ in _XMP_CAPTURE), "iptc_datecreated", _EXIF_CREATE[0],
    *(t for t, _ in _XMP_CREATE), "makernote_datetimeoriginal", "gps_datetime",
    "apple_creationdate", "quicktime_creation_time",
    *(t for t, _ in _SIDECAR_CAPTURE),
    "filename",
    "icloud_asset_date", "takeout_json",
    _EXIF_MODIFY[0], *(t for t, _ in _XMP_EDIT),
    "file_mtime",
)

APPLE_CREATIONDATE = "com.apple.quicktime.creationdate"
_VIDEO_LOCATION_TAGS = ("com.apple.quicktime.location.iso6709", "location", "location-eng")

# Metadata dates outside this range (or after tomorrow) are clock resets or placeholders, not capture times.
_META_MIN_YEAR = 1900
_META_MAX_YEAR = 2100
# Zero values of the QuickTime (1904) and Unix (1970) epochs that encoders write when they know nothing.
_EPOCH_PLACEHOLDERS = (datetime(1904, 1, 1), datetime(1970, 1, 1))
# File names are noisier than metadata: a date in a name must lie between 1990 and tomorrow.
_NAME_MIN_YEAR = 1990
# Real-world UTC offsets run from -12:00 to +14:00.
_MAX_OFFSET_MINUTES = 14 * 60


@dataclass(frozen=True)
class CaptureDate:
    """A capture time as the clock at the place of capture showed it, and where it came from."""

    local: datetime  # naive wall-clock time at the place of capture
    utc_offset_minutes: int | None  # None when unknown
    source: str  # class, one of SOURCES
    tag: str  # the winning tag, one of ORDER
    time_zone: str | None = None  # the IANA zone a UTC-only moment was read in
    time_zone_source: str | None = None  # how that zone was chosen: "gps" or "home_timezone"

    @property
    def folder(self) -> str:
        """The ``YYYY/MM/DD`` folder for the local day the item was taken."""
        return f"{self.local.year:04d}/{self.local.month:02d}/{self.local.day:02d}"


@dataclass(frozen=True)
class KnownDate:
    """A capture moment a source knows outside the file (iCloud's asset date, a Takeout JSON), tagged."""

    tag: str
    moment: datetime  # aware: in the place's own zone, as the source recorded it; naive: UTC, zone unknown


@dataclass(frozen=True)
class FoundDate:
    """A date a reader found, before a UTC moment is turned into local time."""

    tag: str
    local: datetime
    offset: int | None
    is_utc: bool = False  # `local` is UTC and must be read on the wall clock of the place


def capture_date(
    path: Path,
    *,
    is_video: bool,
    original_name: str | None = None,
    file_mtime: float | None = None,
    known_dates: Sequence[KnownDate] = (),
    xmp_sidecars: Sequence[Path] = (),
    home_zone: str | None = None,
) -> CaptureDate:
    """Best known local capture time of ``path``; falls down the order of trust and never raises.

    ``original_name`` is the name the file had on the device (staged copies are renamed) and is what the file-name
    patterns look at; ``file_mtime`` overrides the file's own modification time (copies whose mtime was reset);
    ``known_dates`` are the source's own dates in their order; ``xmp_sidecars`` the file's XMP sidecars, read
    when the file itself holds no capture date; ``home_zone`` is HOME_TIMEZONE (None: this
    machine's zone).
    """
    path = Path(path)
    home = home_zone or timezones.machine_zone_name()
    name = original_name if original_name else path.name
    metadata: Mapping[str, str] = {}
    if is_video:
        probed = _guarded(path, lambda: _probe(path))
        metadata = probed or {}
        embedded = _guarded(path, lambda: date_from_probe(probed or {}))
    else:
        metadata = _guarded(path, lambda: read_photo_metadata(path)) or {}
        embedded = _guarded(path, lambda: date_from_metadata(metadata))
    coordinates = _guarded(path, lambda: (video_coordinates if is_video else photo_coordinates)(metadata))
    chain: list[Callable[[], FoundDate | None]] = [
        lambda: embedded,
        *(lambda sidecar=sidecar: date_from_xmp_sidecar(sidecar) for sidecar in xmp_sidecars),
        lambda: _found_in_name(name),
        *(lambda known=known: _from_known(known) for known in known_dates),
        lambda: None if is_video else edit_date_from_metadata(metadata),
    ]
    for step in chain:
        found = _guarded(path, step)
        if found is not None:
            return _finish(found, coordinates, home)
    return _from_mtime(path, file_mtime, home)


def _guarded(path: Path, step: Callable[[], Any]) -> Any:
    """A parser bug on one odd file must not stop the batch: it only means "nothing found here"."""
    try:
        return step()
    except Exception:
        log.warning("capture date lookup failed for %s", path, exc_info=True)
        return None


def _finish(found: FoundDate, coordinates: tuple[float, float] | None, home: str) -> CaptureDate:
    source = _class_of(found.tag)
    if not found.is_utc:
        return CaptureDate(found.local, found.offset, source, found.tag)
    local, offset, zone, chosen_by = timezones.to_local(found.local, coordinates, home)
    return CaptureDate(local, offset, source, found.tag, zone, chosen_by)


def _class_of(tag: str) -> str:
    if tag == "filename":
        return "filename"
    if tag in ("icloud_asset_date", "takeout_json"):
        return "source"
    if tag in (_EXIF_MODIFY[0], *(t for t, _ in _XMP_EDIT)):
        return "edit_time"
    return "metadata"


# --- photo metadata (libexiv2) ----------------------------------------------------------------------------


@functools.cache
def register_heif() -> bool:
    """Let Pillow open HEIC/HEIF files (iPhone photos); safe to call repeatedly. (Pillow reads no dates here:
    the other modules that open HEIC call it.)"""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    return True


_WANTED_EXIF = (*_EXIF_ORIGINAL[1:], *_EXIF_CREATE[1:], *_EXIF_MODIFY[1:], *_MAKERNOTE_KEYS, _GPS_DATE,
                _GPS_LAT_REF, _GPS_LON_REF)
_WANTED_EXIF_NUMBERS = (_GPS_TIME, _GPS_LAT, _GPS_LON)
_WANTED_XMP = (*(k for _, k in _XMP_CAPTURE + _XMP_CREATE + _XMP_EDIT), _XMP_GPS_LAT, _XMP_GPS_LON)
_WANTED_IPTC = (_IPTC_DATE, _IPTC_TIME)


def _exiv2() -> Any:
    import exiv2

    exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.error)  # warnings about odd maker notes are noise here
    return exiv2


def read_photo_metadata(path: Path) -> dict[str, str]:
    """The date and place tags of a photo as exiv2 keys -> text (rationals as space-separated decimals);
    empty when the file has none or libexiv2 cannot read it. Only the metadata blocks are parsed."""
    exiv2 = _exiv2()
    try:
        image = exiv2.ImageFactory.open(str(path))
        image.readMetadata()
    except exiv2.Exiv2Error as error:
        log.debug("no metadata from %s: %s", path, error)
        return {}
    values: dict[str, str] = {}
    exif, xmp, iptc = image.exifData(), image.xmpData(), image.iptcData()
    for key in _WANTED_EXIF:
        if key in exif:
            values[key] = str(exif[key].toString())
    for key in _WANTED_EXIF_NUMBERS:
        if key in exif:
            datum = exif[key]
            values[key] = " ".join(f"{datum.toFloat(i)!r}" for i in range(datum.count()))
    for key in _WANTED_XMP:
        if key in xmp:
            values[key] = str(xmp[key].toString())
    for key in _WANTED_IPTC:
        if key in iptc:
            values[key] = str(iptc[key].toString())
    return values


def date_from_metadata(values: Mapping[str, str]) -> FoundDate | None:
    """The first capture date among a photo's tags, in the order of trust (edit times are not capture dates)."""
    readers: list[Callable[[], FoundDate | None]] = [
        lambda: _exif_date(values, _EXIF_ORIGINAL),
        *(lambda tag=tag, key=key: _xmp_date(values, tag, key) for tag, key in _XMP_CAPTURE),
        lambda: _iptc_date(values),
        lambda: _exif_date(values, _EXIF_CREATE),
        *(lambda tag=tag, key=key: _xmp_date(values, tag, key) for tag, key in _XMP_CREATE),
        lambda: _makernote_date(values),
        lambda: _gps_date(values),
    ]
    return next((found for read in readers if (found := read()) is not None), None)


def date_from_xmp_sidecar(sidecar: Path) -> FoundDate | None:
    """The first capture date of an XMP sidecar file (libexiv2 reads it like a photo's XMP packet)."""
    values = read_photo_metadata(sidecar)
    return next((f for tag, key in _SIDECAR_CAPTURE if (f := _xmp_date(values, tag, key)) is not None), None)


def edit_date_from_metadata(values: Mapping[str, str]) -> FoundDate | None:
    """An edit or export time (IFD0 ModifyDate, XMP ModifyDate / MetadataDate): better than the file time only."""
    found = _exif_date(values, _EXIF_MODIFY)
    if found is not None:
        return found
    return next((f for tag, key in _XMP_EDIT if (f := _xmp_date(values, tag, key)) is not None), None)


def _exif_date(values: Mapping[str, str], chain: tuple[str, str, str, str]) -> FoundDate | None:
    tag, date_key, offset_key, subsec_key = chain
    local = parse_exif_datetime(values.get(date_key))
    if local is None:
        return None
    local = _with_subsec(local, values.get(subsec_key))
    offset = parse_utc_offset(values.get(offset_key))
    if offset is None:
        # Some writers fill only one OffsetTime field: an offset written for the same wall-clock second applies.
        second = local.replace(microsecond=0)
        for _, other_key, other_offset_key, _ in (_EXIF_ORIGINAL, _EXIF_CREATE, _EXIF_MODIFY):
            other = parse_exif_datetime(values.get(other_key))
            if other == second and (offset := parse_utc_offset(values.get(other_offset_key))) is not None:
                break
    return FoundDate(tag, local, offset)


def _xmp_date(values: Mapping[str, str], tag: str, key: str) -> FoundDate | None:
    parsed = parse_iso_datetime(values.get(key)) or _exif_style(values.get(key))
    return FoundDate(tag, *parsed) if parsed else None


def _exif_style(value: str | None) -> tuple[datetime, int | None] | None:
    local = parse_exif_datetime(value)
    return (local, None) if local else None


def _iptc_date(values: Mapping[str, str]) -> FoundDate | None:
    """IPTC DateCreated ("2019-05-06") with TimeCreated ("07:08:09+09:00") when it is there."""
    day = parse_iso_datetime(values.get(_IPTC_DATE))
    if day is None:
        return None
    local, offset = day
    m = re.match(r"^(\d{2}):?(\d{2}):?(\d{2})\s*(Z|[+-]\d{2}:?\d{2})?$", (values.get(_IPTC_TIME) or "").strip())
    if m:
        moment = _build(local.year, local.month, local.day, int(m[1]), int(m[2]), int(m[3]))
        if moment is not None:
            local, offset = moment, parse_utc_offset(m[4])
    return FoundDate("iptc_datecreated", local, offset)


def _makernote_date(values: Mapping[str, str]) -> FoundDate | None:
    for key in _MAKERNOTE_KEYS:
        local = parse_exif_datetime(values.get(key))
        if local is not None:
            return FoundDate("makernote_datetimeoriginal", local, None)
    return None


def _gps_date(values: Mapping[str, str]) -> FoundDate | None:
    """GPSDateStamp + GPSTimeStamp: a UTC moment."""
    day = parse_exif_datetime(f"{values.get(_GPS_DATE, '')} 00:00:00")
    numbers = _numbers(values.get(_GPS_TIME))
    if day is None or len(numbers) != 3:
        return None
    hours, minutes, seconds = numbers
    if not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 61):
        return None
    return FoundDate("gps_datetime", day + timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds)),
                  0, is_utc=True)


def photo_coordinates(values: Mapping[str, str]) -> tuple[float, float] | None:
    """(latitude, longitude) from EXIF GPS, else XMP exif:GPSLatitude/GPSLongitude; None when absent."""
    lat = _degrees(_numbers(values.get(_GPS_LAT)), values.get(_GPS_LAT_REF, ""), "S")
    lon = _degrees(_numbers(values.get(_GPS_LON)), values.get(_GPS_LON_REF, ""), "W")
    if lat is None or lon is None:
        lat, lon = _xmp_degrees(values.get(_XMP_GPS_LAT)), _xmp_degrees(values.get(_XMP_GPS_LON))
    return (lat, lon) if lat is not None and lon is not None else None


def _numbers(text: str | None) -> list[float]:
    try:
        return [float(part) for part in (text or "").split()]
    except ValueError:
        return []


def _degrees(parts: list[float], ref: str, negative: str) -> float | None:
    if not parts or len(parts) > 3 or any(p != p or p < 0 for p in parts):  # p != p: NaN from a 0/0 rational
        return None
    value = sum(p / 60**i for i, p in enumerate(parts))
    return -value if ref.strip().upper().startswith(negative) else value


def _xmp_degrees(text: str | None) -> float | None:
    """XMP GPS coordinate: "35,40.8N" or "35,40,48N"."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?(?:,(\d+(?:\.\d+)?))?\s*([NSEW])\s*$", text or "")
    if m is None:
        return None
    parts = [float(g) for g in m.groups()[:3] if g is not None]
    return _degrees(parts, m[4], "S" if m[4] in "NS" else "W")


def _with_subsec(local: datetime, subsec: str | None) -> datetime:
    """Add EXIF SubSecTime ("123" means .123 s), which keeps burst shots in order."""
    digits = re.match(r"\d+", subsec.strip()) if subsec else None
    if digits is None:
        return local
    return local.replace(microsecond=int(digits.group()[:6].ljust(6, "0")))


_EXIF_DT = re.compile(r"^(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?")


def parse_exif_datetime(value: str | None) -> datetime | None:
    """``"YYYY:MM:DD HH:MM:SS"`` (and close variants) as a naive datetime, or None for junk."""
    if not value:
        return None
    m = _EXIF_DT.match(value.replace("\x00", "").strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in m.groups())
    return _plausible(_build(year, month, day, hour, minute, second), _META_MIN_YEAR, _META_MAX_YEAR)


_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_utc_offset(value: str | None) -> int | None:
    """``"+09:00"``, ``"-0530"`` or ``"Z"`` as minutes east of UTC; None for blanks and junk."""
    if not value:
        return None
    value = value.replace("\x00", "").strip()
    if value.upper() == "Z":
        return 0
    m = _OFFSET.match(value)
    if m is None:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3))
    if minutes >= 60 or hours * 60 + minutes > _MAX_OFFSET_MINUTES:
        return None
    total = hours * 60 + minutes
    return -total if m.group(1) == "-" else total


_ISO_DT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_iso_datetime(value: str | None) -> tuple[datetime, int | None] | None:
    """ISO-8601 (date alone allowed, as XMP and IPTC write it) as (naive wall-clock time as written, offset
    minutes or None); None for junk."""
    if not value:
        return None
    m = _ISO_DT.match(value.replace("\x00", "").strip())
    if m is None:
        return None
    year, month, day = (int(g) for g in m.groups()[:3])
    hour, minute, second = (int(g or 0) for g in m.groups()[3:6])
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


# --- videos (ffprobe) -------------------------------------------------------------------------------------


def _probe(path: Path) -> Mapping[str, Any] | None:
    try:
        from media_assets.media.ffmpeg_tools import probe

        return probe(path)
    except Exception as exc:  # ffprobe missing, not a video, or unreadable: try the next source
        log.debug("ffprobe gave no dates for %s: %s", path, exc)
        return None


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


def date_from_probe(info: Mapping[str, Any]) -> FoundDate | None:
    """Apple's local creationdate, else the UTC ``creation_time`` (to be read in the zone of the place)."""
    if not isinstance(info, Mapping):
        return None
    for tags in _all_tags(info):
        parsed = parse_iso_datetime(_text(tags.get(APPLE_CREATIONDATE)))
        if parsed is not None:
            return FoundDate("apple_creationdate", *parsed)
    for tags in _all_tags(info):
        parsed = parse_iso_datetime(_text(tags.get("creation_time")))
        if parsed is not None:
            local, offset = parsed
            if offset:  # a writer that spelled out a real offset told us the local time
                return FoundDate("quicktime_creation_time", local, offset)
            return FoundDate("quicktime_creation_time", local, 0, is_utc=True)  # UTC by the MP4 specification
    return None


_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")


def video_coordinates(info: Mapping[str, Any]) -> tuple[float, float] | None:
    """(latitude, longitude) from the ISO 6709 location tags phones write ("+35.6895+139.6917/")."""
    for tags in _all_tags(info):
        for key in _VIDEO_LOCATION_TAGS:
            m = _ISO6709.match(_text(tags.get(key)) or "")
            if m:
                return float(m[1]), float(m[2])
    return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


# --- dates the source knows ------------------------------------------------------------------------------


def _from_known(known: KnownDate) -> FoundDate | None:
    moment, offset = known.moment, known.moment.utcoffset()
    if _plausible(moment.replace(tzinfo=None), _META_MIN_YEAR, _META_MAX_YEAR) is None:
        return None
    if offset is not None:  # the source knows the place's offset (iCloud's timeZoneOffset): its wall clock
        return FoundDate(known.tag, moment.replace(tzinfo=None), int(offset.total_seconds() // 60))
    return FoundDate(known.tag, moment, 0, is_utc=True)


def takeout_date(sidecar: Path) -> KnownDate | None:
    """photoTakenTime of a Google Takeout JSON (UTC seconds); None when the file is no such JSON."""
    try:
        data = json.loads(Path(sidecar).read_text(encoding="utf-8"))
        seconds = int(data["photoTakenTime"]["timestamp"])
        return KnownDate("takeout_json", datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None))
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return None


# --- file names -------------------------------------------------------------------------------------------

_Y, _M, _D = r"(?P<Y>(?:19|20)\d{2})", r"(?P<m>[01]\d)", r"(?P<d>[0-3]\d)"
_D8 = rf"{_Y}{_M}{_D}"
_T6 = r"(?P<H>[0-2]\d)(?P<M>[0-5]\d)(?P<S>[0-5]\d)"
#: A date with one separator used twice: 2019-06-01, 2019_06_01, 2019.06.01, "2019 06 01".
_SEPARATED = rf"{_Y}(?P<ds>[-_. ]){_M}(?P=ds){_D}"
#: A time with one separator used twice (18-20-30, 18_20_30, 18.20.30, 18:20:30), hour may be one digit.
_SEPARATED_TIME = r"(?P<H>[0-2]?\d)(?P<ts>[-_.:])(?P<M>[0-5]\d)(?P=ts)(?P<S>[0-5]\d)(?:\s*(?P<ampm>[AP]M))?"
#: Prefixes that phones and apps put before a compact date of their own: IMG_20230101, Screenshot_20230101.
_PREFIXES = r"(?:IMG|VID|PXL|MVIMG|PANO|BURST|Screenshot|Screenrecorder|signal|telegram|photo|video)"

# Most specific first; each match is validated before it counts. No pattern takes a digit run longer than it
# expects ((?<!\d) ... (?!\d)), so a counter or serial number is never read as a date.
_NAME_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Pixel: PXL_20231224_183015123 (the last three digits are milliseconds).
    re.compile(rf"PXL_{_D8}_{_T6}(?P<ms>\d{{3}})(?!\d)", re.IGNORECASE),
    # IMG_20231224_183015, VID_..., MVIMG_..., 20231224-183015, IMG20231224183015.
    re.compile(rf"(?<!\d){_D8}[-_. ]?{_T6}(?!\d)"),
    # 2019-06-01 18_20_30, telegram_2021-03-14_08-15-00, Screenshot_2022-03-15-10-11-12,
    # "Screenshot 2019-05-21 at 10.45.52", "2023-12-24 18.30.15", "... at 6.30.15 PM".
    re.compile(rf"(?<!\d){_SEPARATED}(?:[-_ T]|\s+at\s+){_SEPARATED_TIME}(?!\d)", re.IGNORECASE),
    # signal-2023-01-01-101112.
    re.compile(rf"(?<!\d){_SEPARATED}[-_ T]{_T6}(?!\d)"),
    # WhatsApp: IMG-20231224-WA0001 (date only).
    re.compile(rf"(?<!\d){_D8}-WA\d+", re.IGNORECASE),
    # A date alone: 2016-05-07(2), 2016_05_07, "2016.05.07 beach".
    re.compile(rf"(?<!\d){_SEPARATED}(?!\d)"),
    # IMG_20230101, Screenshot_20230101 (date only, after a known prefix).
    re.compile(rf"(?<![A-Za-z]){_PREFIXES}[-_ ]?{_D8}(?!\d)", re.IGNORECASE),
)


def date_from_filename(name: str | None) -> CaptureDate | None:
    """Capture time written in a phone/camera/messenger/screenshot file name (local, as written), or None."""
    found = _found_in_name(name)
    return None if found is None else CaptureDate(found.local, None, "filename", "filename")


def _found_in_name(name: str | None) -> FoundDate | None:
    if not name:
        return None
    rejected: list[tuple[int, int]] = []  # a date whose time is junk (hour 25) is no date at all
    for pattern in _NAME_PATTERNS:
        for m in pattern.finditer(name):
            if any(m.start() < end and start < m.end() for start, end in rejected):
                continue
            local = _plausible(_ymd_hms(m), _NAME_MIN_YEAR, _META_MAX_YEAR)
            if local is not None:
                return FoundDate("filename", local, None)
            rejected.append(m.span())
    return None


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


# --- file modification time ------------------------------------------------------------------------------


def _from_mtime(path: Path, file_mtime: float | None, home: str) -> CaptureDate:
    """Modification time in the home zone: the last resort, so it must always answer."""
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
            moment = datetime.fromtimestamp(candidate, timezone.utc)
        except (OverflowError, OSError, ValueError):
            continue
        local, offset, zone, chosen_by = timezones.to_local(moment, None, home)
        return CaptureDate(local, offset, "file_mtime", "file_mtime", zone, chosen_by)
    raise AssertionError("unreachable: time.time() is always representable")  # pragma: no cover


# --- helpers ----------------------------------------------------------------------------------------------


def _build(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime | None:
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:  # month 13, Feb 30, hour 24, all-zero placeholders...
        return None


def _plausible(dt: datetime | None, min_year: int, max_year: int) -> datetime | None:
    """None for a placeholder, a year out of range, or a moment after tomorrow (a clock set to 2099)."""
    if dt is None or not min_year <= dt.year <= max_year or dt in _EPOCH_PLACEHOLDERS:
        return None
    if dt > datetime.now() + timedelta(days=1):
        return None
    return dt
