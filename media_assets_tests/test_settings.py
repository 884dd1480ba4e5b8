"""Settings: defaults, the file, environment overrides, one clear sentence naming each wrong setting, unknown
keys, and the private settings file."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from media_assets.settings import (
    KEYS,
    STORAGE_FOLDERS,
    Settings,
    SettingsError,
    SettingsWarning,
    load_settings,
    prepare_folders,
    settings_file_path,
)

PASSWORD = "s3cr3t-Pa55word-do-not-print"


def write_env(folder: Path, mode: int = 0o600, name: str = "settings.env", **values: str) -> Path:
    """A settings file in `folder`, beside the default source folder `sample-library` (sources must exist)."""
    (folder / "sample-library").mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(mode)
    return path


def load_quietly(path: Path, environ: dict[str, str] | None = None) -> Settings:
    """Load with an empty environment unless one is given, failing on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_settings(path, environ={} if environ is None else environ)


def test_defaults_without_a_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.env"
    (tmp_path / "sample-library").mkdir()
    assert not path.exists()
    settings = load_quietly(path)

    assert settings.automation.execution_mode == "once"
    assert settings.automation.execution_interval_minutes == 60
    assert settings.automation.max_executions_per_day == 24
    assert settings.postgres.port == 5432
    assert settings.postgres.db == "media_pipeline"
    assert settings.postgres.user == "postgres"
    assert settings.uses_embedded_postgres
    assert settings.sources.enable_folder_source and settings.compression.enabled and settings.dedup.enabled
    assert not settings.sources.enable_icloud_download and not settings.destinations.enable_pixel_upload
    assert settings.destinations.pixel_sync_dir is None
    assert settings.storage.reports_keep == 10
    assert settings.compression.jpeg_quality == 85 and settings.compression.video_codec == "h264"
    assert settings.mirror.interval_seconds == 300 and settings.mirror.chunk_size == 500
    # Relative defaults land next to the (missing) settings file; the source is outside every pipeline folder.
    root = tmp_path.resolve()
    assert settings.storage.data_dir == root / "data"
    assert settings.storage.media_root == root / "data" / "media"
    assert settings.sources.folder_source_paths == (root / "sample-library",)
    assert settings.storage.reports_dir == root / "data" / "reports"
    written = (settings.storage.data_dir, settings.storage.media_root, settings.destinations.local_destination_dir,
               settings.storage.reports_dir, settings.icloud.download_dir)
    assert not any(folder.exists() for folder in written)  # reading settings creates nothing
    prepare_folders(settings)
    assert all(folder.is_dir() for folder in written)
    assert not path.exists()  # loading never writes a settings file


def test_values_from_the_file(tmp_path: Path) -> None:
    path = write_env(tmp_path, PIPELINE_EXECUTION_MODE="Interval", PIPELINE_EXECUTION_INTERVAL_MINUTES="15",
                     POSTGRES_HOST="db.example", POSTGRES_PORT="6543", POSTGRES_DB="photos",
                     ENABLE_COMPRESSION="no", ENABLE_ICLOUD_DOWNLOAD="on", ICLOUD_USERNAME="a@example.com",
                     REPORTS_KEEP="3",
                     TELEGRAM_CHAT_ID="42", COMPRESSION_VIDEO_CODEC="HEVC", DEDUP_WORKERS="3")
    settings = load_quietly(path)

    assert settings.automation.execution_mode == "interval"  # case-insensitive
    assert settings.automation.execution_interval_minutes == 15
    assert settings.postgres.host == "db.example"
    assert not settings.uses_embedded_postgres
    assert settings.postgres.port == 6543
    assert settings.postgres.db == "photos"
    assert settings.compression.enabled is False
    assert settings.sources.enable_icloud_download is True
    assert settings.storage.reports_keep == 3
    assert settings.telegram.chat_id == 42
    assert settings.compression.video_codec == "hevc"
    assert settings.dedup.workers == 3


def test_an_empty_value_means_the_default(tmp_path: Path) -> None:
    settings = load_quietly(write_env(tmp_path, DEDUP_WORKERS="", COMPRESSION_JPEG_QUALITY=" ", TELEGRAM_BASE_URL="",
                                      ENABLE_SORTING=""))
    assert settings.dedup.workers >= 1 and settings.compression.jpeg_quality == 85
    assert settings.telegram.base_url == "https://api.telegram.org"
    assert settings.destinations.enable_sorting is True


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_env(tmp_path, PIPELINE_EXECUTION_MODE="interval", PIPELINE_EXECUTION_INTERVAL_MINUTES="15",
                     REPORTS_KEEP="3")
    settings = load_quietly(path, environ={
        "PIPELINE_EXECUTION_INTERVAL_MINUTES": "90",
        "PIPELINE_EXECUTION_MODE": "continuous",
        "TELEGRAM_BOT_TOKEN": "token-from-env",
        "UNRELATED_VARIABLE": "ignored",
    })
    assert settings.automation.execution_interval_minutes == 90
    assert settings.automation.execution_mode == "continuous"
    assert settings.storage.reports_keep == 3  # not overridden: the file's value stays
    assert settings.telegram.bot_token == "token-from-env"


def test_media_pipeline_settings_names_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = write_env(elsewhere, name="custom.env", REPORTS_KEEP="7", DATA_DIR="state")
    for name in list(KEYS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # a settings.env in the working folder must not be the one read
    write_env(tmp_path, REPORTS_KEEP="99")
    monkeypatch.setenv("MEDIA_PIPELINE_SETTINGS", str(other))

    assert settings_file_path() == other.resolve()
    settings = load_settings()
    assert settings.storage.reports_keep == 7
    assert settings.storage.data_dir == elsewhere.resolve() / "state"


def test_settings_file_path_defaults_to_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDIA_PIPELINE_SETTINGS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert settings_file_path() == tmp_path.resolve() / "settings.env"


#: A wrong value of every kind of setting: numbers, booleans, choices, addresses, and rules across settings.
WRONG_VALUES = [
    ("PIPELINE_EXECUTION_MODE", "sometimes"),
    ("PIPELINE_EXECUTION_INTERVAL_MINUTES", "-5"),
    ("PIPELINE_EXECUTION_INTERVAL_MINUTES", "0"),
    ("PIPELINE_EXECUTION_INTERVAL_MINUTES", "ten"),
    ("PIPELINE_EXECUTION_INTERVAL_MINUTES", "1.5"),
    ("PIPELINE_MAX_EXECUTIONS_PER_DAY", "0"),
    ("POSTGRES_PORT", "postgres"),
    ("REPORTS_KEEP", "0"),
    ("ENABLE_COMPRESSION", "maybe"),
    ("ENABLE_DEDUPLICATION", "2"),
    ("ENABLE_PIXEL_UPLOAD", "yep"),
    ("COMPRESSION_JPEG_QUALITY", "abc"),
    ("COMPRESSION_JPEG_QUALITY", "101"),
    ("COMPRESSION_MIN_SSIM", "1.5"),
    ("COMPRESSION_VIDEO_CODEC", "vp9"),
    ("COMPRESSION_VIDEO_PRESET", "warp"),
    ("DEDUP_WORKERS", "0"),
    ("DEDUP_NEAR_RADIUS", "-1"),
    ("ICLOUD_ENDPOINT", "http://127.0.0.1:8443"),
    ("ICLOUD_REPLACE_ORIGINALS", "sometimes"),
    ("ICLOUD_CONCURRENCY", "many"),
    ("ICLOUD_UPLOAD_FORMATS", "jpg"),
    ("TELEGRAM_CHAT_ID", "owner"),
    ("TELEGRAM_BASE_URL", "api.telegram.org"),
    ("SUPABASE_URL", "ftp://x.supabase.co"),
    ("SUPABASE_CHUNK_SIZE", "6000"),
    ("SUPABASE_SYNC_INTERVAL_SECONDS", "5"),
    ("FREE_SPACE_ALERT_GB", "-1"),
    ("DAGSTER_UI_PORT", "70000"),
    ("EXECUTOR", "kubernetes"),
    ("CELERY_BROKER_URL", "http://nas.local:6379"),
]


@pytest.mark.parametrize(("name", "value"), WRONG_VALUES)
def test_a_wrong_value_names_the_setting_the_value_and_what_is_allowed(tmp_path: Path, name: str,
                                                                      value: str) -> None:
    path = write_env(tmp_path, mode=0o600, **{name: value})
    with pytest.raises(SettingsError) as caught:
        load_quietly(path)
    message = str(caught.value)
    assert message.startswith(f"{name} must be ") and message.endswith(f", not {value!r}.")
    assert "\n" not in message


def test_what_is_allowed_is_said_in_words(tmp_path: Path) -> None:
    def refusal(**values: str) -> str:
        with pytest.raises(SettingsError) as caught:
            load_quietly(write_env(tmp_path, mode=0o600, **values))
        return str(caught.value)

    assert refusal(COMPRESSION_JPEG_QUALITY="abc") == \
        "COMPRESSION_JPEG_QUALITY must be a whole number from 1 to 100, not 'abc'."
    assert refusal(DEDUP_WORKERS="0") == "DEDUP_WORKERS must be a whole number of at least 1, not '0'."
    assert refusal(COMPRESSION_VIDEO_CODEC="vp9") == "COMPRESSION_VIDEO_CODEC must be one of h264, hevc, not 'vp9'."
    assert refusal(ICLOUD_ENDPOINT="http://x") == "ICLOUD_ENDPOINT must be an https:// address, not 'http://x'."
    assert refusal(ENABLE_COMPRESSION="maybe") == "ENABLE_COMPRESSION must be true or false, not 'maybe'."
    assert refusal(ICLOUD_UPLOAD_FORMATS="JPEG, jpg,png, HEIF,movie") == (
        "ICLOUD_UPLOAD_FORMATS must be format names such as jpeg, heic, png or mov (unknown: jpg, movie), "
        "not 'JPEG, jpg,png, HEIF,movie'.")


def test_the_video_codecs_offered_are_the_ones_encoded() -> None:
    from typing import get_args

    from media_assets.media.video_compression import ENCODERS
    from media_assets.settings import VideoCodec

    assert set(get_args(VideoCodec)) == set(ENCODERS)


def test_a_wrong_value_from_the_environment_names_the_setting(tmp_path: Path) -> None:
    path = write_env(tmp_path, PIPELINE_EXECUTION_MODE="once")
    with pytest.raises(SettingsError, match="PIPELINE_EXECUTION_MODE"):
        load_quietly(path, environ={"PIPELINE_EXECUTION_MODE": "hourly"})


@pytest.mark.parametrize(("values", "named"), [
    ({"ENABLE_PIXEL_UPLOAD": "true"}, "PIXEL_SYNC_DIR"),
    ({"ENABLE_ICLOUD_DOWNLOAD": "true"}, "ICLOUD_USERNAME"),
    ({"ENABLE_TELEGRAM": "true", "TELEGRAM_CHAT_ID": "1"}, "TELEGRAM_BOT_TOKEN"),
    ({"ENABLE_TELEGRAM": "true", "TELEGRAM_BOT_TOKEN": "t"}, "TELEGRAM_CHAT_ID"),
    ({"ENABLE_SUPABASE_MIRROR": "true", "SUPABASE_KEY": "k"}, "SUPABASE_URL"),
    ({"ENABLE_SUPABASE_MIRROR": "true", "SUPABASE_URL": "https://x.supabase.co"}, "SUPABASE_KEY"),
    ({"EXECUTOR": "celery"}, "CELERY_BROKER_URL"),
])
def test_a_feature_switched_on_needs_its_settings(tmp_path: Path, values: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=f"^{named} must "):
        load_quietly(write_env(tmp_path, mode=0o600, **values))


@pytest.mark.parametrize("name", ["MEDIA_ROOT", "DATA_DIR", "REPORTS_DIR", "LOCAL_DESTINATION_DIR",
                                  "ICLOUD_DOWNLOAD_DIR"])
def test_a_folder_that_cannot_be_created_names_the_setting(tmp_path: Path, name: str) -> None:
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a folder")
    path = write_env(tmp_path, mode=0o600, **{name: str(blocker / "below")})
    with pytest.raises(SettingsError, match=name) as caught:
        prepare_folders(load_quietly(path))
    assert str(blocker / "below") in str(caught.value)
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(("broker", "backend"), [("redis://nas:6379/0", "redis://nas:6379/0"),
                                                ("amqp://guest:guest@nas:5672//", "rpc://")])
def test_the_celery_result_backend_defaults_to_what_suits_the_broker(tmp_path: Path, broker: str,
                                                                     backend: str) -> None:
    settings = load_quietly(write_env(tmp_path, EXECUTOR="celery", CELERY_BROKER_URL=broker))
    assert settings.execution.executor == "celery" and settings.execution.result_backend == backend
    explicit = load_quietly(write_env(tmp_path, EXECUTOR="celery", CELERY_BROKER_URL=broker,
                                      CELERY_RESULT_BACKEND="redis://other:6379/1"))
    assert explicit.execution.result_backend == "redis://other:6379/1"


def test_a_folder_setting_naming_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "reports-file"
    blocker.write_text("x")
    path = write_env(tmp_path, REPORTS_DIR=str(blocker))
    with pytest.raises(SettingsError, match="REPORTS_DIR"):
        prepare_folders(load_quietly(path))


def test_pixel_upload_needs_a_sync_folder(tmp_path: Path) -> None:
    path = write_env(tmp_path, ENABLE_PIXEL_UPLOAD="true")
    with pytest.raises(SettingsError, match="PIXEL_SYNC_DIR"):
        load_quietly(path)

    path = write_env(tmp_path, ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR="pixel")
    settings = load_quietly(path)
    assert settings.destinations.enable_pixel_upload
    assert settings.destinations.pixel_sync_dir == tmp_path.resolve() / "pixel"
    prepare_folders(settings)
    assert settings.destinations.pixel_sync_dir.is_dir()


def test_folder_source_needs_a_folder_when_enabled(tmp_path: Path) -> None:
    path = write_env(tmp_path, FOLDER_SOURCE_PATHS=" , ")
    with pytest.raises(SettingsError, match="FOLDER_SOURCE_PATHS"):
        load_quietly(path)
    path = write_env(tmp_path, FOLDER_SOURCE_PATHS="", ENABLE_FOLDER_SOURCE="false")
    assert load_quietly(path).sources.folder_source_paths == ()


def test_relative_folders_resolve_against_the_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (config / "library").mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the file, not to the working folder
    path = write_env(config, MEDIA_ROOT="store/media", DATA_DIR="state", REPORTS_DIR="../reports",
                     LOCAL_DESTINATION_DIR="dest", ICLOUD_DOWNLOAD_DIR="icloud", FOLDER_SOURCE_PATHS="library")
    settings = load_quietly(path)
    prepare_folders(settings)

    base = config.resolve()
    assert settings.storage.media_root == base / "store" / "media"
    assert settings.storage.data_dir == base / "state"
    assert settings.storage.reports_dir == tmp_path.resolve() / "reports"  # `..` is resolved away
    assert settings.destinations.local_destination_dir == base / "dest"
    assert settings.icloud.download_dir == base / "icloud"
    assert settings.sources.folder_source_paths == (base / "library",)
    for name in STORAGE_FOLDERS:
        assert settings.storage_dir(name) == base / "store" / "media" / name
        assert settings.storage_dir(name).is_dir()
    assert sorted(p.name for p in settings.storage.media_root.iterdir()) == sorted(STORAGE_FOLDERS)
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(KeyError):
        settings.storage_dir("elsewhere")


def test_absolute_and_home_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    absolute = tmp_path / "abs-reports"
    path = write_env(tmp_path / "home", REPORTS_DIR=str(absolute), DATA_DIR="~/pipeline-data")
    settings = load_quietly(path)
    prepare_folders(settings)
    assert settings.storage.reports_dir == absolute.resolve() and absolute.is_dir()
    assert settings.storage.data_dir == home.resolve() / "pipeline-data"


def test_two_comma_separated_source_folders(tmp_path: Path) -> None:
    (tmp_path / "photos" / "2023").mkdir(parents=True)
    (tmp_path / "camera").mkdir()
    path = write_env(tmp_path, FOLDER_SOURCE_PATHS=f"photos/2023, {tmp_path / 'camera'} ,")
    settings = load_quietly(path)
    assert settings.sources.folder_source_paths == (tmp_path.resolve() / "photos" / "2023",
                                                    tmp_path.resolve() / "camera")


# -- unknown keys ------------------------------------------------------------------------------------------------

def test_a_misspelt_key_in_the_file_warns_with_the_closest_known_key(tmp_path: Path) -> None:
    path = write_env(tmp_path, ENABLE_COMPRESION="false")
    with pytest.warns(SettingsWarning, match="ENABLE_COMPRESION, which is not a known setting; did you mean "
                                             "ENABLE_COMPRESSION?"):
        settings = load_settings(path, environ={})
    assert settings.compression.enabled  # the misspelt key changed nothing


def test_a_line_with_no_equals_sign_is_warned_about(tmp_path: Path) -> None:
    path = write_env(tmp_path, ENABLE_COMPRESSION="false")
    path.write_text(path.read_text() + "ENABLE_SORTING\n")
    with pytest.warns(SettingsWarning, match="has a line 'ENABLE_SORTING' with no '=', which sets nothing; "
                                             "write ENABLE_SORTING=<value>"):
        settings = load_settings(path, environ={})
    assert settings.destinations.enable_sorting and not settings.compression.enabled


def test_a_misspelt_environment_variable_warns_too(tmp_path: Path) -> None:
    path = write_env(tmp_path)
    with pytest.warns(SettingsWarning) as caught:
        load_settings(path, environ={"DEDUP_WORKER": "2", "MEDIA_PIPELINE_SETTING": "x", "HOME": "/root",
                                     "MEDIA_PIPELINE_FAULTS": ""})
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "the environment sets DEDUP_WORKER, which is not a known setting; did you mean DEDUP_WORKERS?",
        "the environment sets MEDIA_PIPELINE_SETTING, which is not a known setting; did you mean "
        "MEDIA_PIPELINE_SETTINGS?",
    ]


def test_every_key_of_the_example_file_is_known_and_every_known_key_is_documented() -> None:
    from dotenv import dotenv_values

    example = Path(__file__).resolve().parent.parent / "settings.env.example"
    assert set(dotenv_values(example)) == set(KEYS)


# -- the private settings file -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_readable_settings_file_with_a_secret_stops_the_start(tmp_path: Path, mode: int) -> None:
    path = write_env(tmp_path, mode=mode, ICLOUD_PASSWORD=PASSWORD)
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert f"run `chmod 600 {path.resolve()}`" in message and "ICLOUD_PASSWORD" in message
    assert PASSWORD not in message


@pytest.mark.parametrize("key", ["TELEGRAM_BOT_TOKEN", "SUPABASE_KEY", "POSTGRES_PASSWORD", "ICLOUD_UPLOAD_PASSWORD"])
def test_every_kind_of_secret_counts(tmp_path: Path, key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        load_settings(write_env(tmp_path, mode=0o644, **{key: "value"}), environ={})


def test_a_readable_settings_file_without_a_secret_is_fine(tmp_path: Path) -> None:
    path = write_env(tmp_path, mode=0o644, ICLOUD_PASSWORD="", REPORTS_KEEP="3")
    assert load_quietly(path).storage.reports_keep == 3


def test_private_settings_file_does_not_warn(tmp_path: Path) -> None:
    path = write_env(tmp_path, mode=0o600, ICLOUD_PASSWORD=PASSWORD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = load_settings(path, environ={})
    assert settings.icloud.password == PASSWORD


def test_passwords_never_appear_in_repr(tmp_path: Path) -> None:
    path = write_env(tmp_path, ICLOUD_USERNAME="someone@example.com", ICLOUD_PASSWORD=PASSWORD,
                     POSTGRES_PASSWORD=PASSWORD + "-pg", TELEGRAM_BOT_TOKEN="123:token-" + PASSWORD)
    settings = load_quietly(path)
    assert settings.icloud.password == PASSWORD
    assert settings.postgres.password == PASSWORD + "-pg"
    assert settings.secret_values() == [PASSWORD, PASSWORD + "-pg", "123:token-" + PASSWORD]
    for text in (repr(settings), str(settings)):
        assert "someone@example.com" in text  # repr does show settings, just not the secrets
        assert PASSWORD not in text


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_quietly(write_env(tmp_path))
    with pytest.raises(ValueError, match="frozen"):
        settings.storage.reports_keep = 3
