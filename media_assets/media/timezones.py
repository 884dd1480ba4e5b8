"""Which wall clock a UTC-only moment is read on: the time zone at the place (GPS coordinates, looked up offline),
else the household's home zone (HOME_TIMEZONE, by default this machine's zone)."""

from __future__ import annotations

import contextlib
import functools
import os
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: How a UTC-only moment was made local; stored in the catalog beside the zone's name.
ZONE_FROM_GPS = "gps"
ZONE_FROM_HOME = "home_timezone"
_ZONEINFO_DIRS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/", "/usr/share/lib/zoneinfo/")


class UnknownTimeZone(ValueError):
    """Not an IANA time zone name."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` ("Europe/Berlin"); UnknownTimeZone for anything else."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise UnknownTimeZone(f"{name!r} is not a time zone name such as Europe/Berlin") from error


def machine_zone_name() -> str:
    """This machine's IANA zone (from TZ, /etc/timezone or the /etc/localtime link); UTC when it has no name."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    link = os.path.realpath("/etc/localtime")
    candidates += [link[len(prefix):] for prefix in _ZONEINFO_DIRS if link.startswith(prefix)]
    for name in candidates:
        if name:
            try:
                zone(name)
            except UnknownTimeZone:
                continue
            return name
    return "UTC"


@functools.lru_cache(maxsize=4096)
def zone_at(latitude: float, longitude: float) -> str | None:
    """The IANA zone at a place (offline polygons, tzfpy); None for coordinates that are no place."""
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0) or (latitude, longitude) == (0.0, 0.0):
        return None  # (0, 0) is what a GPS without a fix writes
    import tzfpy

    name = tzfpy.get_tz(longitude, latitude)
    return name or None


def to_local(moment_utc: datetime, coordinates: tuple[float, float] | None,
             home_zone: str) -> tuple[datetime, int, str, str]:
    """A UTC moment (naive = UTC) as (naive local time, offset minutes, zone name, how the zone was chosen)."""
    if moment_utc.tzinfo is None:
        moment_utc = moment_utc.replace(tzinfo=timezone.utc)
    name, chosen_by = home_zone, ZONE_FROM_HOME
    if coordinates is not None and (at_place := zone_at(*coordinates)) is not None:
        name, chosen_by = at_place, ZONE_FROM_GPS
    local = moment_utc.astimezone(zone(name))
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    return local.replace(tzinfo=None), minutes, name, chosen_by
