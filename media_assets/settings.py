"""Settings: read `settings.env` (or the file named by MEDIA_PIPELINE_SETTINGS), let the environment override
it, and validate everything at start so a wrong value stops the pipeline with one sentence naming the setting."""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from media_assets.media.timezones import UnknownTimeZone, machine_zone_name, zone

EXECUTION_MODES = ("once", "interval", "continuous")
#: Prefixes of settings that feature modules (Telegram, Supabase, iCloud, ...) read from `Settings.raw`.
FEATURE_PREFIXES = ("TELEGRAM_", "SUPABASE_", "ICLOUD_", "DEDUP_", "COMPRESSION_", "PIPELINE_", "ENABLE_",
                    "DAGSTER_", "FREE_SPACE_", "ALERT_")
SECRET_SETTINGS = ("ICLOUD_PASSWORD", "ICLOUD_UPLOAD_PASSWORD", "POSTGRES_PASSWORD", "TELEGRAM_BOT_TOKEN",
                   "SUPABASE_KEY")
STORAGE_FOLDERS = ("originals", "compressed", "bridge", "uploaded", "quarantine")


class SettingsError(ValueError):
    """A setting is wrong; the message is one sentence that names it."""


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one pipeline installation."""

    execution_interval_minutes: int
    execution_mode: str
    max_executions_per_day: int
    icloud_username: str
    icloud_password: str = field(repr=False)
    icloud_download_dir: Path
    postgres_host: str
    postgres_port: int
    postgres_db: str
    postgres_user: str
    postgres_password: str = field(repr=False)
    enable_icloud_download: bool
    enable_folder_source: bool
    enable_deduplication: bool
    enable_compression: bool
    enable_icloud_upload: bool
    enable_pixel_upload: bool
    enable_sorting: bool
    enable_verification: bool
    data_dir: Path
    media_root: Path
    folder_source_paths: tuple[Path, ...]
    local_destination_dir: Path
    pixel_sync_dir: Path | None
    reports_dir: Path
    reports_keep: int
    #: Every raw value (file and environment merged), for feature modules that parse their own settings.
    raw: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: IANA zone a UTC-only capture time is read in when the file has no GPS position (HOME_TIMEZONE).
    home_timezone: str = "UTC"

    def storage_dir(self, name: str) -> Path:
        """One of the storage folders under MEDIA_ROOT (originals, compressed, bridge, uploaded, quarantine)."""
        if name not in STORAGE_FOLDERS:
            raise KeyError(name)
        return self.media_root / name

    @property
    def uses_embedded_postgres(self) -> bool:
        return not self.postgres_host

    def secret_values(self) -> list[str]:
        """The configured secrets, so tests and log filters can look for them."""
        return [value for name in SECRET_SETTINGS if (value := self.raw.get(name, ""))]


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}.")


def parse_int(name: str, raw: str, *, minimum: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}.")
    return value


def parse_time_zone(name: str, raw: str) -> str:
    """An IANA zone name ("Europe/Berlin"); empty means this machine's zone."""
    if not raw.strip():
        return machine_zone_name()
    try:
        zone(raw.strip())
    except UnknownTimeZone as error:
        raise SettingsError(f"{name} must be a time zone name such as Europe/Berlin, not {raw!r}.") from error
    return raw.strip()


def parse_folder(name: str, raw: str, base: Path) -> Path:
    """Resolve a folder setting (relative to the settings file) and create it if it is missing."""
    path = Path(raw.strip()).expanduser()
    if not path.is_absolute():
        path = base / path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"{name} points to {path}, which does not exist and cannot be created "
                            f"({error.strerror}).") from None
    if not path.is_dir():
        raise SettingsError(f"{name} points to {path}, which is not a folder.")
    return path.resolve()


DEFAULTS: dict[str, str] = {
    "PIPELINE_EXECUTION_INTERVAL_MINUTES": "60",
    "PIPELINE_EXECUTION_MODE": "once",
    "PIPELINE_MAX_EXECUTIONS_PER_DAY": "24",
    "ICLOUD_USERNAME": "",
    "ICLOUD_PASSWORD": "",
    "ICLOUD_DOWNLOAD_DIR": "data/icloud-download",
    "POSTGRES_HOST": "",
    "POSTGRES_PORT": "5432",
    "POSTGRES_DB": "media_pipeline",
    "POSTGRES_USER": "postgres",
    "POSTGRES_PASSWORD": "",
    "ENABLE_ICLOUD_DOWNLOAD": "false",
    "ENABLE_FOLDER_SOURCE": "true",
    "ENABLE_DEDUPLICATION": "true",
    "ENABLE_COMPRESSION": "true",
    "ENABLE_ICLOUD_UPLOAD": "true",
    "ENABLE_PIXEL_UPLOAD": "false",
    "ENABLE_SORTING": "true",
    "ENABLE_VERIFICATION": "true",
    "DATA_DIR": "data",
    "MEDIA_ROOT": "data/media",
    "FOLDER_SOURCE_PATHS": "data/sample-library",  # comma- or colon-separated
    "LOCAL_DESTINATION_DIR": "data/destination",
    "PIXEL_SYNC_DIR": "",
    "REPORTS_DIR": "data/reports",
    "REPORTS_KEEP": "10",
    # Read by selection.py and disk.py.
    "BATCH_MAX_FILES": "2000",
    "BATCH_MAX_GB": "20",
    "KEEP_ORIGINALS": "",  # until_verified | days:N | always; empty: per source (folder until_verified, iCloud always)
    "HOME_TIMEZONE": "",  # empty: this machine's zone
}


def settings_file_path() -> Path:
    return Path(os.environ.get("MEDIA_PIPELINE_SETTINGS", "settings.env")).expanduser().resolve()


_warned: set[Path] = set()


def _warn_if_world_readable(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH) and path not in _warned:
        _warned.add(path)
        warnings.warn(f"{path} is readable by other users and may hold passwords: run `chmod 600 {path}`.",
                      stacklevel=3)


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the settings file (if present), apply environment overrides, validate and create folders."""
    path = path or settings_file_path()
    env = os.environ if environ is None else environ
    values = dict(DEFAULTS)
    if path.exists():
        _warn_if_world_readable(path)
        values.update({k: v or "" for k, v in dotenv_values(path).items()})
    values.update({k: v for k, v in env.items() if k in DEFAULTS or k.startswith(FEATURE_PREFIXES)})
    base = path.parent

    mode = values["PIPELINE_EXECUTION_MODE"].strip().lower()
    if mode not in EXECUTION_MODES:
        raise SettingsError(f"PIPELINE_EXECUTION_MODE must be one of {', '.join(EXECUTION_MODES)}, "
                            f"not {values['PIPELINE_EXECUTION_MODE']!r}.")
    media_root = parse_folder("MEDIA_ROOT", values["MEDIA_ROOT"], base)
    for name in STORAGE_FOLDERS:
        parse_folder("MEDIA_ROOT", str(media_root / name), base)
    sources = tuple(parse_folder("FOLDER_SOURCE_PATHS", p, base)
                    for p in re.split(r"[,:]", values["FOLDER_SOURCE_PATHS"]) if p.strip())
    enable_pixel = parse_bool("ENABLE_PIXEL_UPLOAD", values["ENABLE_PIXEL_UPLOAD"])
    pixel_raw = values["PIXEL_SYNC_DIR"].strip()
    if enable_pixel and not pixel_raw:
        raise SettingsError("PIXEL_SYNC_DIR must name the phone's sync folder when ENABLE_PIXEL_UPLOAD is true.")
    enable_folder_source = parse_bool("ENABLE_FOLDER_SOURCE", values["ENABLE_FOLDER_SOURCE"])
    if enable_folder_source and not sources:
        raise SettingsError("FOLDER_SOURCE_PATHS must name at least one folder when ENABLE_FOLDER_SOURCE is true.")

    return Settings(
        execution_interval_minutes=parse_int("PIPELINE_EXECUTION_INTERVAL_MINUTES",
                                        values["PIPELINE_EXECUTION_INTERVAL_MINUTES"], minimum=1),
        execution_mode=mode,
        max_executions_per_day=parse_int("PIPELINE_MAX_EXECUTIONS_PER_DAY", values["PIPELINE_MAX_EXECUTIONS_PER_DAY"],
                                    minimum=1),
        icloud_username=values["ICLOUD_USERNAME"].strip(),
        icloud_password=values["ICLOUD_PASSWORD"],
        icloud_download_dir=parse_folder("ICLOUD_DOWNLOAD_DIR", values["ICLOUD_DOWNLOAD_DIR"], base),
        postgres_host=values["POSTGRES_HOST"].strip(),
        postgres_port=parse_int("POSTGRES_PORT", values["POSTGRES_PORT"], minimum=1),
        postgres_db=values["POSTGRES_DB"].strip() or "media_pipeline",
        postgres_user=values["POSTGRES_USER"].strip() or "postgres",
        postgres_password=values["POSTGRES_PASSWORD"],
        enable_icloud_download=parse_bool("ENABLE_ICLOUD_DOWNLOAD", values["ENABLE_ICLOUD_DOWNLOAD"]),
        enable_folder_source=enable_folder_source,
        enable_deduplication=parse_bool("ENABLE_DEDUPLICATION", values["ENABLE_DEDUPLICATION"]),
        enable_compression=parse_bool("ENABLE_COMPRESSION", values["ENABLE_COMPRESSION"]),
        enable_icloud_upload=parse_bool("ENABLE_ICLOUD_UPLOAD", values["ENABLE_ICLOUD_UPLOAD"]),
        enable_pixel_upload=enable_pixel,
        enable_sorting=parse_bool("ENABLE_SORTING", values["ENABLE_SORTING"]),
        enable_verification=parse_bool("ENABLE_VERIFICATION", values["ENABLE_VERIFICATION"]),
        data_dir=parse_folder("DATA_DIR", values["DATA_DIR"], base),
        media_root=media_root,
        folder_source_paths=sources,
        local_destination_dir=parse_folder("LOCAL_DESTINATION_DIR", values["LOCAL_DESTINATION_DIR"], base),
        pixel_sync_dir=parse_folder("PIXEL_SYNC_DIR", pixel_raw, base) if pixel_raw else None,
        reports_dir=parse_folder("REPORTS_DIR", values["REPORTS_DIR"], base),
        reports_keep=parse_int("REPORTS_KEEP", values["REPORTS_KEEP"], minimum=1),
        raw=values,
        home_timezone=parse_time_zone("HOME_TIMEZONE", values["HOME_TIMEZONE"]),
    )
