"""Settings: one frozen, typed object built once per process from `settings.env` (or the file named by
MEDIA_PIPELINE_SETTINGS) and the environment, checked completely before anything happens.

Users write flat KEY=value lines; each KEY is one field of a section below (`setting("KEY", default, doc)`), so
a setting has exactly one place with its name, type, default, rules and meaning. A wrong value stops the start
with one sentence naming the key, the value and what is allowed; an unknown key is warned about with the closest
known one. Loading only reads: folders are created by `prepare_folders` when the pipeline starts.

How to add a setting: add one `setting(...)` field to the section it belongs to (or a new section, listed in
`Settings`), document it in settings.env.example, and read it as `settings.<section>.<field>`."""

from __future__ import annotations

import difflib
import os
import re
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from media_assets.media.timezones import UnknownTimeZone, machine_zone_name, zone
from media_assets.phases.workers import available_cores

SETTINGS_FILE_ENV = "MEDIA_PIPELINE_SETTINGS"
STORAGE_FOLDERS = ("originals", "compressed", "bridge", "uploaded", "quarantine")
#: One gigabyte, as disks are sold and `df -H` counts: 10^9 bytes (not 2^30) everywhere in the pipeline.
GB = 1_000_000_000
#: Environment variables the pipeline uses internally; not settings, so no "unknown key" warning.
INTERNAL_ENVIRONMENT = frozenset({
    SETTINGS_FILE_ENV, "MEDIA_PIPELINE_DATABASE_URL", "MEDIA_PIPELINE_DAGSTER_STORAGE_URL", "MEDIA_PIPELINE_FAULTS",
    "MEDIA_PIPELINE_FAULTS_ARMED", "MEDIA_PIPELINE_FFMPEG_SOURCE"})
#: Environment variables with these prefixes look like settings: an unknown one is probably a misspelt key.
SETTING_PREFIXES = ("MEDIA_PIPELINE_", "ENABLE_", "PIPELINE_", "DEDUP_", "COMPRESSION_", "ICLOUD_", "TELEGRAM_",
                    "SUPABASE_", "FREE_SPACE_", "ALERT_", "CELERY_")
#: A key whose name says it holds a secret (when it has a value, settings.env must be private).
SECRET_KEY = re.compile(r"(_PASSWORD|TOKEN|_KEY)$")


class SettingsError(ValueError):
    """A setting is wrong; the message is one sentence that names it."""


class SettingsWarning(UserWarning):
    """A settings problem that does not stop the start (an unknown key)."""


def setting(key: str, default: Any = ..., doc: str = "", **rules: Any) -> Any:
    """One setting: its KEY in settings.env, its default, what it is for, and its rules (ge=, le=, repr=, ...).

    An empty value (`KEY=`) means the default, except for text and lists, where it means empty."""
    if callable(default):
        return Field(default_factory=default, validation_alias=key, description=doc, **rules)
    return Field(default, validation_alias=key, description=doc, **rules)


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


ExecutionMode = Literal["once", "interval", "continuous"]
Executor = Literal["in_process", "multiprocess", "celery"]
VideoCodec = Literal["h264", "hevc"]
VideoPreset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                      "veryslow"]


class AutomationSettings(Section):
    execution_mode: ExecutionMode = setting("PIPELINE_EXECUTION_MODE", "once",
                                            "once | interval | continuous: how the daemon starts batches")
    execution_interval_minutes: int = setting("PIPELINE_EXECUTION_INTERVAL_MINUTES", 60,
                                              "minutes between batches in interval mode", ge=1)
    max_executions_per_day: int = setting("PIPELINE_MAX_EXECUTIONS_PER_DAY", 24, "daily cap on batches", ge=1)
    max_concurrent_batches: int = setting("MAX_CONCURRENT_BATCHES", 1,
                                          "batches running at once, from the CLI and the daemon together", ge=1)


#: Broker addresses Celery (dagster-celery's workers) can use: Redis or RabbitMQ.
CELERY_BROKER_SCHEMES = ("redis://", "rediss://", "amqp://", "pyamqp://")


class ExecutorSettings(Section):
    executor: Executor = setting("EXECUTOR", "in_process",
                                 "in_process | multiprocess | celery: where a batch run's phases execute")
    celery_broker_url: str = setting("CELERY_BROKER_URL", "", "with EXECUTOR=celery: the broker the workers listen "
                                     "to (redis://host:6379/0 or amqp://user:pass@host:5672//)", repr=False)
    celery_result_backend: str = setting("CELERY_RESULT_BACKEND", "", "with EXECUTOR=celery: where results go; "
                                         "empty: the broker for Redis, rpc:// for RabbitMQ", repr=False)

    @field_validator("celery_broker_url")
    @classmethod
    def _broker_address(cls, value: str) -> str:
        if value and not value.startswith(CELERY_BROKER_SCHEMES):
            raise ValueError("a redis://, rediss://, amqp:// or pyamqp:// address")
        return value

    @model_validator(mode="after")
    def _broker_for_celery(self) -> ExecutorSettings:
        if self.executor == "celery" and not self.celery_broker_url:
            raise ValueError("CELERY_BROKER_URL must name the Celery workers' broker (redis://host:6379/0 or "
                             "amqp://user:pass@host:5672//) when EXECUTOR is celery.")
        return self

    @property
    def result_backend(self) -> str:
        """CELERY_RESULT_BACKEND, or what suits the broker: the broker itself for Redis, rpc:// for RabbitMQ."""
        if self.celery_result_backend:
            return self.celery_result_backend
        return self.celery_broker_url if self.celery_broker_url.startswith("redis") else "rpc://"


class BatchSettings(Section):
    max_files: int = setting("BATCH_MAX_FILES", 2000, "new files a batch takes at most (pairs are never split)", ge=1)
    max_gb: int = setting("BATCH_MAX_GB", 20, "GB a batch takes at most", ge=1)


class StorageSettings(Section):
    data_dir: Path = setting("DATA_DIR", Path("data"), "embedded PostgreSQL, Dagster's home, session tokens")
    media_root: Path = setting("MEDIA_ROOT", Path("data/media"),
                               "originals/ compressed/ bridge/ uploaded/ quarantine/")
    reports_dir: Path = setting("REPORTS_DIR", Path("data/reports"), "one Markdown report per batch")
    reports_keep: int = setting("REPORTS_KEEP", 10, "newest reports kept", ge=1)
    free_space_alert_gb: int = setting("FREE_SPACE_ALERT_GB", 5,
                                       "alert when a folder the pipeline writes to has less free (GB = 10^9 bytes),"
                                       " and keep it free: a batch that would leave less does not start; 0: off",
                                       ge=0)
    keep_originals: str = setting("KEEP_ORIGINALS", "",
                                  "until_verified | days:N | always: how long originals/ keeps its copy once a batch"
                                  " is verified; empty: per source (folder until_verified, iCloud always)")

    @field_validator("keep_originals")
    @classmethod
    def _keep_rule(cls, value: str) -> str:
        value = value.lower()
        if value not in ("", "until_verified", "always") and not re.fullmatch(r"days:\d+", value):
            raise ValueError("until_verified, days:N or always")
        return value


class SourcesSettings(Section):
    enable_folder_source: bool = setting("ENABLE_FOLDER_SOURCE", True, "take files from FOLDER_SOURCE_PATHS")
    folder_source_paths: tuple[Path, ...] = setting("FOLDER_SOURCE_PATHS", (Path("sample-library"),),
                                                    "source folders, separated by commas; never written to")
    enable_icloud_download: bool = setting("ENABLE_ICLOUD_DOWNLOAD", False, "take new files from iCloud Photos")

    @model_validator(mode="after")
    def _folders_when_enabled(self) -> SourcesSettings:
        if self.enable_folder_source and not self.folder_source_paths:
            raise ValueError("FOLDER_SOURCE_PATHS must name at least one folder when ENABLE_FOLDER_SOURCE is true.")
        return self


class DestinationSettings(Section):
    enable_icloud_upload: bool = setting("ENABLE_ICLOUD_UPLOAD", True,
                                         "upload to iCloud (with no iCloud account: to LOCAL_DESTINATION_DIR)")
    local_destination_dir: Path = setting("LOCAL_DESTINATION_DIR", Path("data/destination"),
                                          "the local destination folder")
    enable_pixel_upload: bool = setting("ENABLE_PIXEL_UPLOAD", False, "copy kept files to PIXEL_SYNC_DIR")
    pixel_sync_dir: Path | None = setting("PIXEL_SYNC_DIR", None, "the folder Syncthing mirrors to the phone")
    enable_sorting: bool = setting("ENABLE_SORTING", True, "sort the bridge folder by capture date")
    enable_verification: bool = setting("ENABLE_VERIFICATION", True, "verify every copy at its destination")
    verify_sample: int = setting("VERIFY_SAMPLE", 10,
                                 "kept and folder-destination copies per batch and place that verification re-hashes"
                                 " (the others are proven by their identity, a stat)", ge=0)

    @model_validator(mode="after")
    def _pixel_folder_when_enabled(self) -> DestinationSettings:
        if self.enable_pixel_upload and self.pixel_sync_dir is None:
            raise ValueError("PIXEL_SYNC_DIR must name the phone's sync folder when ENABLE_PIXEL_UPLOAD is true.")
        return self


class PostgresSettings(Section):
    host: str = setting("POSTGRES_HOST", "", "empty: the embedded server in DATA_DIR/postgres")
    port: int = setting("POSTGRES_PORT", 5432, "the server's port", ge=1, le=65535)
    db: str = setting("POSTGRES_DB", "media_pipeline", "the catalog database")
    user: str = setting("POSTGRES_USER", "postgres", "the database user")
    password: str = setting("POSTGRES_PASSWORD", "", "the database password", repr=False)

    @field_validator("db", "user")
    @classmethod
    def _not_blank(cls, value: str, info: Any) -> str:
        return value or str(cls.model_fields[info.field_name].default)


class DatesSettings(Section):
    home_timezone: str = setting("HOME_TIMEZONE", "", "the IANA zone a UTC-only capture time is read in when the file"
                                 " has no GPS position; empty: this machine's zone", validate_default=True)

    @field_validator("home_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not value:
            return machine_zone_name()
        try:
            zone(value)
        except UnknownTimeZone:
            raise ValueError("a time zone name such as Europe/Berlin") from None
        return value


class DedupSettings(Section):
    enabled: bool = setting("ENABLE_DEDUPLICATION", True, "find exact and near duplicates")
    near_radius: int = setting("DEDUP_NEAR_RADIUS", 6, "pHash bits two copies may differ by", ge=0, le=32)
    workers: int = setting("DEDUP_WORKERS", available_cores, "processes fingerprinting files (default: one per core)",
                           ge=1)
    progress_every: int = setting("DEDUP_PROGRESS_EVERY", 500, "a progress line every this many files", ge=1)


class CompressionSettings(Section):
    enabled: bool = setting("ENABLE_COMPRESSION", True, "compress photos and videos where it saves space")
    jpeg_quality: int = setting("COMPRESSION_JPEG_QUALITY", 85, "target JPEG quality", ge=1, le=100)
    jpeg_quality_margin: int = setting("COMPRESSION_JPEG_QUALITY_MARGIN", 5,
                                       "re-encode only JPEGs at least this many points above the target", ge=1, le=99)
    min_saving_percent: float = setting("COMPRESSION_MIN_SAVING_PERCENT", 10.0,
                                        "keep an output only when this much smaller", ge=0, le=100)
    min_ssim: float = setting("COMPRESSION_MIN_SSIM", 0.98, "lowest luma SSIM of a re-encoded photo", ge=0, le=1)
    max_megapixels: float = setting("COMPRESSION_MAX_MEGAPIXELS", 0.0, "resize bigger JPEGs; 0 = never", ge=0)
    heic_jpeg_derivative: bool = setting("COMPRESSION_HEIC_JPEG_DERIVATIVE", False,
                                         "stage a JPEG of each HEIC instead")
    video_codec: VideoCodec = setting("COMPRESSION_VIDEO_CODEC", "h264", "h264 or hevc")
    video_crf: int = setting("COMPRESSION_VIDEO_CRF", 23, "encoder quality (lower: better, bigger)", ge=0, le=51)
    video_preset: VideoPreset = setting("COMPRESSION_VIDEO_PRESET", "veryfast", "encoder speed preset")
    video_min_bits_per_pixel: float = setting("COMPRESSION_VIDEO_MIN_BITS_PER_PIXEL", 0.10,
                                              "H.264 below this is already lean and kept", ge=0)
    video_min_ssim: float = setting("COMPRESSION_VIDEO_MIN_SSIM", 0.0,
                                    "refuse transcodes under this SSIM; 0 = only record it", ge=0, le=1)
    workers: int = setting("COMPRESSION_WORKERS", available_cores, "processes compressing (default: one per core)",
                           ge=1)
    progress_every: int = setting("COMPRESSION_PROGRESS_EVERY", 100, "a progress line every this many files", ge=1)


class ICloudSettings(Section):
    username: str = setting("ICLOUD_USERNAME", "", "the Apple ID of the source library (and of uploads, unless "
                            "ICLOUD_UPLOAD_USERNAME names another)")
    password: str = setting("ICLOUD_PASSWORD", "", "its password", repr=False)
    download_dir: Path = setting("ICLOUD_DOWNLOAD_DIR", Path("data/icloud-download"),
                                 "where downloads stream in before the download phase takes them")
    upload_username: str = setting("ICLOUD_UPLOAD_USERNAME", "", "another Apple ID to upload to (default: "
                                   "ICLOUD_USERNAME, which never gets back the files taken from it)")
    upload_password: str = setting("ICLOUD_UPLOAD_PASSWORD", "", "its password", repr=False)
    endpoint: str = setting("ICLOUD_ENDPOINT", "", "only for a local stand-in: the https:// host replacing Apple's")
    ca_bundle: str = setting("ICLOUD_CA_BUNDLE", "", "only for a local stand-in: its CA certificate")
    concurrency: int = setting("ICLOUD_CONCURRENCY", 4, "transfers at once", ge=1)
    requests_per_second: int = setting("ICLOUD_REQUESTS_PER_SECOND", 10, "pacing of all requests to Apple", ge=1)
    max_retries: int = setting("ICLOUD_MAX_RETRIES", 5, "attempts per request", ge=1)
    backoff_ms: int = setting("ICLOUD_BACKOFF_MS", 500, "first pause between attempts", ge=0)
    code_timeout_seconds: int = setting("ICLOUD_2FA_TIMEOUT_SECONDS", 600, "how long to wait for a 2FA code", ge=1)
    code_attempts: int = setting("ICLOUD_2FA_MAX_ATTEMPTS", 3, "2FA codes tried", ge=1)
    trust_days: int = setting("ICLOUD_TRUST_DAYS", 30, "how long Apple trusts this machine", ge=1)
    trust_warn_days: int = setting("ICLOUD_TRUST_WARN_DAYS", 5, "warn this long before the trust ends", ge=0)
    stop_after_known: int = setting("ICLOUD_STOP_AFTER_KNOWN", 50,
                                    "incremental walk stops after this many known assets in a row", ge=1)
    full_scan_days: int = setting("ICLOUD_FULL_SCAN_DAYS", 7, "walk the whole library this often", ge=1)
    upload_formats: frozenset[str] = setting("ICLOUD_UPLOAD_FORMATS", frozenset({"jpeg"}),
                                             "formats the web upload takes (comma-separated)")
    replace_originals: bool = setting("ICLOUD_REPLACE_ORIGINALS", False,
                                      "move a source asset to Recently Deleted once its upload is verified")
    index_wait_seconds: int = setting("ICLOUD_INDEX_WAIT_SECONDS", 60, "wait for Apple's index once per batch", ge=0)
    verify_sample: int = setting("ICLOUD_VERIFY_SAMPLE", 2,
                                 "uploads per batch whose bytes verification reads back from iCloud", ge=0)

    @field_validator("endpoint")
    @classmethod
    def _https_endpoint(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError("an https:// address")
        return value.rstrip("/")

    @field_validator("upload_formats", mode="before")
    @classmethod
    def _format_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        from media_assets.media.identify import MEDIA_FORMATS  # imported only when the setting is given

        formats = frozenset(f.lower() for f in re.split(r"[,\s]+", value) if f)
        unknown = sorted(formats - MEDIA_FORMATS)
        if unknown:  # "jpg" would have sent no JPEG at all
            raise ValueError(f"format names such as jpeg, heic, png or mov (unknown: {', '.join(unknown)})")
        return formats


class TelegramSettings(Section):
    enabled: bool = setting("ENABLE_TELEGRAM", False, "batch reports, alerts and the 2FA relay")
    bot_token: str = setting("TELEGRAM_BOT_TOKEN", "", "the bot's token from @BotFather", repr=False)
    chat_id: int | None = setting("TELEGRAM_CHAT_ID", None, "the owner's chat id")
    user_id: int | None = setting("TELEGRAM_USER_ID", None, "the owner's user id (default: the chat id)", ge=1)
    base_url: str = setting("TELEGRAM_BASE_URL", "https://api.telegram.org", "the Bot API root")
    throttle_minutes: int = setting("ALERT_THROTTLE_MINUTES", 60, "the same alert at most once in this window",
                                    ge=0)

    @field_validator("base_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        return _web_url(value or str(cls.model_fields["base_url"].default))  # empty: Telegram's own

    @model_validator(mode="after")
    def _token_and_chat_when_enabled(self) -> TelegramSettings:
        if self.enabled and not self.bot_token:
            raise ValueError("TELEGRAM_BOT_TOKEN must hold the bot's token when ENABLE_TELEGRAM is true.")
        if self.enabled and self.chat_id is None:
            raise ValueError("TELEGRAM_CHAT_ID must hold the owner's chat id when ENABLE_TELEGRAM is true.")
        return self


#: Rows per request above this risk Supabase's 8 s statement timeout and multi-MB bodies.
MAX_MIRROR_CHUNK = 5000


class MirrorSettings(Section):
    enabled: bool = setting("ENABLE_SUPABASE_MIRROR", False, "copy the catalog's metadata to Supabase")
    url: str = setting("SUPABASE_URL", "", "https://<project>.supabase.co")
    key: str = setting("SUPABASE_KEY", "", "the service_role (secret) key", repr=False)
    interval_seconds: int = setting("SUPABASE_SYNC_INTERVAL_SECONDS", 300, "how often the sensor looks", ge=30)
    chunk_size: int = setting("SUPABASE_CHUNK_SIZE", 500, "rows per request", ge=1, le=MAX_MIRROR_CHUNK)
    timeout_seconds: int = setting("SUPABASE_TIMEOUT_SECONDS", 30, "per request", ge=1)
    max_attempts: int = setting("SUPABASE_MAX_ATTEMPTS", 5, "attempts per request", ge=1)

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        return _web_url(value) if value else value

    @model_validator(mode="after")
    def _project_when_enabled(self) -> MirrorSettings:
        if self.enabled and not self.url:
            raise ValueError("SUPABASE_URL must be the project's URL (https://<project>.supabase.co) when "
                             "ENABLE_SUPABASE_MIRROR is true.")
        if self.enabled and not self.key:
            raise ValueError("SUPABASE_KEY must be the project's service_role (secret) key when "
                             "ENABLE_SUPABASE_MIRROR is true.")
        return self


class UiSettings(Section):
    host: str = setting("DAGSTER_UI_HOST", "127.0.0.1", "address `media-pipeline ui` binds")
    port: int = setting("DAGSTER_UI_PORT", 3000, "its port", ge=1, le=65535)
    base_url: str = setting("DAGSTER_UI_BASE_URL", "", "the UI's address for run links in alerts; empty: none")

    @field_validator("base_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        return _web_url(value) if value else value


def _web_url(value: str) -> str:
    if not re.match(r"https?://[^/\s]+", value):
        raise ValueError("an http:// or https:// address")
    return value.rstrip("/")


class Settings(BaseSettings):
    """Validated configuration of one pipeline installation, one section per concern."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    #: The settings file these came from (it need not exist); relative folders are relative to its folder.
    source_file: Path
    automation: AutomationSettings = AutomationSettings()
    execution: ExecutorSettings = ExecutorSettings()
    batches: BatchSettings = BatchSettings()
    storage: StorageSettings = StorageSettings()
    sources: SourcesSettings = SourcesSettings()
    destinations: DestinationSettings = DestinationSettings()
    postgres: PostgresSettings = PostgresSettings()
    dates: DatesSettings = DatesSettings()
    dedup: DedupSettings = DedupSettings()
    compression: CompressionSettings = CompressionSettings()
    icloud: ICloudSettings = ICloudSettings()
    telegram: TelegramSettings = TelegramSettings()
    mirror: MirrorSettings = MirrorSettings()
    ui: UiSettings = UiSettings()

    @model_validator(mode="after")
    def _apple_id_when_downloading(self) -> Settings:
        # Without an Apple ID, uploads go to LOCAL_DESTINATION_DIR; a download has nowhere else to come from.
        if self.sources.enable_icloud_download and not self.icloud.username:
            raise ValueError("ICLOUD_USERNAME must name the Apple ID to download from when ENABLE_ICLOUD_DOWNLOAD "
                             "is true.")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the flat KEY=value pairs `load_settings` read (file, then environment), nested into sections."""
        return (FlatKeySource(settings_cls, init_settings),)

    def storage_dir(self, name: str) -> Path:
        """One of the storage folders under MEDIA_ROOT (originals, compressed, bridge, uploaded, quarantine)."""
        if name not in STORAGE_FOLDERS:
            raise KeyError(name)
        return self.storage.media_root / name

    @property
    def uses_embedded_postgres(self) -> bool:
        return not self.postgres.host

    def secret_values(self) -> list[str]:
        """The configured secrets, so tests and log filters can look for them."""
        values = (self.icloud.password, self.icloud.upload_password, self.postgres.password,
                  self.telegram.bot_token, self.mirror.key)
        return [value for value in values if value]

    def folders_written(self) -> dict[str, Path]:
        """Every folder the pipeline writes to, by its KEY: never inside a source, checked for free space."""
        folders = {"MEDIA_ROOT": self.storage.media_root, "DATA_DIR": self.storage.data_dir,
                   "REPORTS_DIR": self.storage.reports_dir, "ICLOUD_DOWNLOAD_DIR": self.icloud.download_dir,
                   "LOCAL_DESTINATION_DIR": self.destinations.local_destination_dir}
        if self.destinations.pixel_sync_dir is not None:
            folders["PIXEL_SYNC_DIR"] = self.destinations.pixel_sync_dir
        return folders


SECTIONS: dict[str, type[Section]] = {
    name: field.annotation for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, Section)}
#: Every KEY users may write, with its section and field.
KEYS: dict[str, tuple[str, str]] = {
    str(field.validation_alias): (section, name)
    for section, model in SECTIONS.items() for name, field in model.model_fields.items()}


def _field(key: str) -> FieldInfo:
    section, name = KEYS[key]
    return SECTIONS[section].model_fields[name]


def _is_path(annotation: Any) -> bool:
    return annotation is Path or (get_origin(annotation) is not tuple and Path in get_args(annotation))


def _is_path_list(annotation: Any) -> bool:
    return get_origin(annotation) is tuple and get_args(annotation)[0] is Path


def _default_text(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None:
        return ""
    return ",".join(str(part) for part in default) if isinstance(default, tuple) else str(default)


class FlatKeySource(PydanticBaseSettingsSource):
    """The flat KEY=value pairs given to `Settings(...)`, as the nested sections: values trimmed, an empty
    value dropped where it means the default, lists split on commas, relative folders resolved against the
    settings file's folder (`~` expanded), choices lower-cased."""

    def __init__(self, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.values: dict[str, Any] = dict(getattr(init_settings, "init_kwargs", {}))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False  # unused: __call__ does the nesting

    def __call__(self) -> dict[str, Any]:
        source_file = Path(self.values.pop("source_file"))
        nested: dict[str, Any] = {"source_file": source_file}
        for key, (section, _name) in KEYS.items():
            field = _field(key)
            if key in self.values:
                value = self._prepare(field, str(self.values[key]).strip(), source_file.parent)
            elif _is_path(field.annotation) or _is_path_list(field.annotation):
                value = self._prepare(field, _default_text(field), source_file.parent)  # relative to the file too
            else:
                continue
            if value is not None:
                nested.setdefault(section, {})[key] = value
        return nested

    @staticmethod
    def _prepare(field: FieldInfo, value: str, base: Path) -> Any:
        annotation = field.annotation
        if not value and not (annotation is str or get_origin(annotation) is tuple):
            return None
        if _is_path_list(annotation):
            return tuple(_resolve(part.strip(), base) for part in value.split(",") if part.strip())
        if _is_path(annotation):
            return _resolve(value, base)
        if get_origin(annotation) is Literal:
            return value.lower()
        return value


def _resolve(value: str, base: Path) -> Path:
    """An absolute folder path with symbolic links resolved; computing it creates nothing."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


# -- reading -----------------------------------------------------------------------------------------------------

def settings_file_path() -> Path:
    return Path(os.environ.get(SETTINGS_FILE_ENV, "settings.env")).expanduser().resolve()


def read_settings_file(path: Path) -> dict[str, str]:
    """KEY=value pairs of the file; a line with a key and no `=` ("ENABLE_SORTING") is warned about and
    ignored: it sets nothing, whatever its writer meant."""
    if not path.exists():
        return {}
    values = dotenv_values(path)
    for key in (key for key, value in values.items() if value is None):
        warnings.warn(f"{path} has a line {key!r} with no '=', which sets nothing; write {key}=<value>",
                      SettingsWarning, stacklevel=3)
    return {key: value for key, value in values.items() if value is not None}


def _closest_key(key: str) -> str:
    close = difflib.get_close_matches(key.upper(), [*KEYS, *INTERNAL_ENVIRONMENT], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else "; it is not a setting of media-pipeline."


def _warn_unknown(file_values: Mapping[str, str], environ: Mapping[str, str], path: Path) -> None:
    for key in file_values:
        if key not in KEYS:
            warnings.warn(f"{path} sets {key}, which is not a known setting{_closest_key(key)}", SettingsWarning,
                          stacklevel=3)
    for key in environ:
        if key not in KEYS and key not in INTERNAL_ENVIRONMENT and key.startswith(SETTING_PREFIXES):
            warnings.warn(f"the environment sets {key}, which is not a known setting{_closest_key(key)}",
                          SettingsWarning, stacklevel=3)


def _check_private(path: Path, file_values: Mapping[str, str]) -> None:
    """A settings file holding a secret must not be readable by group or others."""
    secrets = sorted(key for key, value in file_values.items() if SECRET_KEY.search(key) and value.strip())
    if secrets and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(f"{path} holds {', '.join(secrets)} and is readable by other users: run "
                            f"`chmod 600 {path}` and start again.")


def _allowed(field: FieldInfo) -> str:
    """What a field accepts, in words, from its type and rules."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(choice) for choice in get_args(annotation))
    if annotation is bool:
        return "true or false"
    kind = "a whole number" if int in (annotation, *get_args(annotation)) else "a number"
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    above = next((m.gt for m in field.metadata if isinstance(m, Gt)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    if low is not None and high is not None:
        return f"{kind} from {low} to {high}"
    if low is not None:
        return f"{kind} of at least {low}"
    if above is not None:
        return f"{kind} above {above}"
    return kind


def _sentence(error: ValidationError) -> str:
    """Pydantic's first error as one sentence naming the key, the value and what is allowed."""
    first = error.errors(include_url=False)[0]
    location = [str(part) for part in first["loc"]]
    key = next((part for part in location if part in KEYS), None)
    cause = first.get("ctx", {}).get("error")
    if key is None:  # a rule across settings: its message is the sentence
        return str(cause) if cause is not None else first["msg"]
    allowed = str(cause) if first["type"] == "value_error" and cause is not None else _allowed(_field(key))
    return f"{key} must be {allowed}, not {first['input']!r}."


def build_settings(values: Mapping[str, str], source_file: Path) -> Settings:
    """Settings from flat KEY=value pairs (unknown keys ignored), checked: value rules, then folder rules."""
    known: dict[str, Any] = {key: value for key, value in values.items() if key in KEYS}
    try:
        settings = Settings(source_file=source_file, **known)
    except ValidationError as error:
        raise SettingsError(_sentence(error)) from None
    check_folder_rules(settings)
    return settings


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings file (if present), let the environment override it, and check everything.

    Reads only: no folder is created (see `prepare_folders`). Raises SettingsError with one sentence."""
    path = (path or settings_file_path()).expanduser().resolve()
    env = os.environ if environ is None else environ
    file_values = read_settings_file(path)
    if file_values:
        _check_private(path, file_values)
    _warn_unknown(file_values, env, path)
    values = {**file_values, **{key: value for key, value in env.items() if key in KEYS}}
    return build_settings(values, path)


_process_settings: dict[Path, Settings] = {}


def process_settings(path: Path | None = None) -> Settings:
    """This process's settings: loaded and checked on first use, then the same object every time, so a run
    sees one consistent configuration from its first phase to its last."""
    path = (path or settings_file_path()).expanduser().resolve()
    if path not in _process_settings:
        _process_settings[path] = load_settings(path)
    return _process_settings[path]


def use_settings(settings: Settings) -> Settings:
    """Make `settings` this process's settings for its file (a run started in process hands its own down)."""
    _process_settings[settings.source_file] = settings
    return settings


# -- folders -----------------------------------------------------------------------------------------------------

def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def check_folder_rules(settings: Settings) -> None:
    """No folder the pipeline writes to is, or is inside, a source folder (it would re-import its own output)
    and no source lies inside one of them; every source folder exists and is readable. Reads only."""
    if not settings.sources.enable_folder_source:
        return
    sources = [source.resolve() for source in settings.sources.folder_source_paths]
    for key, folder in settings.folders_written().items():
        written = folder.resolve()
        for source in sources:
            if _inside(written, source):
                where = "is the source folder" if written == source else "lies inside the source folder"
                raise SettingsError(f"{key} ({written}) {where} {source} (FOLDER_SOURCE_PATHS): the pipeline "
                                    f"would import its own output; choose a folder outside every source.")
            if _inside(source, written):
                raise SettingsError(f"FOLDER_SOURCE_PATHS names {source}, which lies inside {key} ({written}): "
                                    f"keep source folders outside the pipeline's own folders.")
    for source in sources:
        if not source.is_dir():
            state = "is not a folder" if source.exists() else "does not exist (is the disk or share mounted?)"
            raise SettingsError(f"FOLDER_SOURCE_PATHS names {source}, which {state}; source folders are never "
                                f"created.")
        if not os.access(source, os.R_OK | os.X_OK):
            raise SettingsError(f"FOLDER_SOURCE_PATHS names {source}, which this user cannot read.")


#: Folders that hold paths, tokens or the database: only their owner may enter them.
PRIVATE_FOLDER_MODE = 0o700
#: DATA_DIR when root runs the embedded PostgreSQL, which then runs as a user of its own (in root's group) and must
#: pass through DATA_DIR to DATA_DIR/postgres (0700, that user's): root's group may pass through, nothing else;
#: other users get nothing (`catalog.database.start_embedded_postgres`).
DATA_DIR_MODE_FOR_ROOTS_SERVER = 0o710


def prepare_folders(settings: Settings) -> None:
    """Create the folders the pipeline writes to, once at start (never a source folder); DATA_DIR and
    REPORTS_DIR are made owner-only, since they hold the database, session tokens and paths."""
    for key, folder in settings.folders_written().items():
        below = [settings.storage_dir(name) for name in STORAGE_FOLDERS] if key == "MEDIA_ROOT" else []
        for path in (folder, *below):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise SettingsError(f"{key} points to {path}, which cannot be created ({error.strerror}).") from None
            if not path.is_dir():
                raise SettingsError(f"{key} points to {path}, which is not a folder.")
    embedded_as_root = settings.uses_embedded_postgres and os.geteuid() == 0
    make_private(settings.storage.data_dir,
                 DATA_DIR_MODE_FOR_ROOTS_SERVER if embedded_as_root else PRIVATE_FOLDER_MODE)
    make_private(settings.storage.reports_dir)


def make_private(folder: Path, mode: int = PRIVATE_FOLDER_MODE) -> None:
    """Owner-only (0700) when this user owns the folder; someone else's folder is left as it is."""
    info = folder.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != mode:
        folder.chmod(mode)
