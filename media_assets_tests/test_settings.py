"""Settings: defaults, the file, environment overrides, and one clear sentence naming each wrong setting."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from media_assets.settings import DEFAULTS, STORAGE_FOLDERS, SettingsError, load_settings, settings_file_path

PASSWORD = "s3cr3t-Pa55word-do-not-print"


def write_env(folder: Path, mode: int = 0o600, name: str = "settings.env", **values: str) -> Path:
    path = folder / name
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(mode)
    return path


def load_quietly(path: Path, environ: dict[str, str] | None = None):
    """Load with an empty environment unless one is given, failing on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_settings(path, environ={} if environ is None else environ)


def test_defaults_without_a_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.env"
    assert not path.exists()
    settings = load_quietly(path)

    assert settings.execution_mode == "once"
    assert settings.execution_interval_minutes == 60
    assert settings.max_executions_per_day == 24
    assert settings.postgres_port == 5432
    assert settings.postgres_db == "media_pipeline"
    assert settings.postgres_user == "postgres"
    assert settings.uses_embedded_postgres
    assert settings.enable_folder_source and settings.enable_compression and settings.enable_deduplication
    assert not settings.enable_icloud_download and not settings.enable_pixel_upload
    assert settings.pixel_sync_dir is None
    assert settings.reports_keep == 10
    # Relative defaults land next to the (missing) settings file and exist afterwards.
    root = tmp_path.resolve()
    assert settings.data_dir == root / "data"
    assert settings.media_root == root / "data" / "media"
    assert settings.folder_source_paths == (root / "data" / "sample-library",)
    assert settings.reports_dir == root / "data" / "reports"
    for folder in (settings.data_dir, settings.media_root, settings.local_destination_dir, settings.reports_dir,
                   settings.icloud_download_dir, *settings.folder_source_paths):
        assert folder.is_dir()
    assert not path.exists()  # loading never writes a settings file


def test_values_from_the_file(tmp_path: Path) -> None:
    path = write_env(tmp_path, PIPELINE_EXECUTION_MODE="Interval", PIPELINE_EXECUTION_INTERVAL_MINUTES="15",
                     POSTGRES_HOST="db.example", POSTGRES_PORT="6543", POSTGRES_DB="photos",
                     ENABLE_COMPRESSION="no", ENABLE_ICLOUD_DOWNLOAD="on", REPORTS_KEEP="3",
                     TELEGRAM_CHAT_ID="42")
    settings = load_quietly(path)

    assert settings.execution_mode == "interval"  # case-insensitive
    assert settings.execution_interval_minutes == 15
    assert settings.postgres_host == "db.example"
    assert not settings.uses_embedded_postgres
    assert settings.postgres_port == 6543
    assert settings.postgres_db == "photos"
    assert settings.enable_compression is False
    assert settings.enable_icloud_download is True
    assert settings.reports_keep == 3
    assert settings.raw["TELEGRAM_CHAT_ID"] == "42"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_env(tmp_path, PIPELINE_EXECUTION_MODE="interval", PIPELINE_EXECUTION_INTERVAL_MINUTES="15",
                     REPORTS_KEEP="3")
    settings = load_quietly(path, environ={
        "PIPELINE_EXECUTION_INTERVAL_MINUTES": "90",
        "PIPELINE_EXECUTION_MODE": "continuous",
        "TELEGRAM_BOT_TOKEN": "token-from-env",
        "UNRELATED_VARIABLE": "ignored",
    })
    assert settings.execution_interval_minutes == 90
    assert settings.execution_mode == "continuous"
    assert settings.reports_keep == 3  # not overridden: the file's value stays
    assert settings.raw["TELEGRAM_BOT_TOKEN"] == "token-from-env"
    assert "UNRELATED_VARIABLE" not in settings.raw


def test_media_pipeline_settings_names_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = write_env(elsewhere, name="custom.env", REPORTS_KEEP="7", DATA_DIR="state")
    for name in list(DEFAULTS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # a settings.env in the working folder must not be the one read
    write_env(tmp_path, REPORTS_KEEP="99")
    monkeypatch.setenv("MEDIA_PIPELINE_SETTINGS", str(other))

    assert settings_file_path() == other.resolve()
    settings = load_settings()
    assert settings.reports_keep == 7
    assert settings.data_dir == elsewhere.resolve() / "state"


def test_settings_file_path_defaults_to_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDIA_PIPELINE_SETTINGS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert settings_file_path() == tmp_path.resolve() / "settings.env"


@pytest.mark.parametrize(("name", "value"), [
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
])
def test_a_wrong_value_names_the_setting(tmp_path: Path, name: str, value: str) -> None:
    path = write_env(tmp_path, **{name: value})
    with pytest.raises(SettingsError) as caught:
        load_quietly(path)
    message = str(caught.value)
    assert name in message
    assert repr(value) in message or value in message


def test_a_wrong_value_from_the_environment_names_the_setting(tmp_path: Path) -> None:
    path = write_env(tmp_path, PIPELINE_EXECUTION_MODE="once")
    with pytest.raises(SettingsError, match="PIPELINE_EXECUTION_MODE"):
        load_quietly(path, environ={"PIPELINE_EXECUTION_MODE": "hourly"})


@pytest.mark.parametrize("name", ["MEDIA_ROOT", "DATA_DIR", "REPORTS_DIR", "LOCAL_DESTINATION_DIR",
                                  "FOLDER_SOURCE_PATHS", "ICLOUD_DOWNLOAD_DIR"])
def test_a_folder_that_cannot_be_created_names_the_setting(tmp_path: Path, name: str) -> None:
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a folder")
    path = write_env(tmp_path, **{name: str(blocker / "below")})
    with pytest.raises(SettingsError, match=name) as caught:
        load_quietly(path)
    assert str(blocker / "below") in str(caught.value)
    assert blocker.read_text() == "not a folder"


def test_a_folder_setting_naming_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "reports-file"
    blocker.write_text("x")
    path = write_env(tmp_path, REPORTS_DIR=str(blocker))
    with pytest.raises(SettingsError, match="REPORTS_DIR"):
        load_quietly(path)


def test_pixel_upload_needs_a_sync_folder(tmp_path: Path) -> None:
    path = write_env(tmp_path, ENABLE_PIXEL_UPLOAD="true")
    with pytest.raises(SettingsError, match="PIXEL_SYNC_DIR"):
        load_quietly(path)

    path = write_env(tmp_path, ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR="pixel")
    settings = load_quietly(path)
    assert settings.enable_pixel_upload
    assert settings.pixel_sync_dir == tmp_path.resolve() / "pixel"
    assert settings.pixel_sync_dir.is_dir()


def test_folder_source_needs_a_folder_when_enabled(tmp_path: Path) -> None:
    path = write_env(tmp_path, FOLDER_SOURCE_PATHS=" , ")
    with pytest.raises(SettingsError, match="FOLDER_SOURCE_PATHS"):
        load_quietly(path)
    path = write_env(tmp_path, FOLDER_SOURCE_PATHS="", ENABLE_FOLDER_SOURCE="false")
    assert load_quietly(path).folder_source_paths == ()


def test_relative_folders_resolve_against_the_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the file, not to the working folder
    path = write_env(config, MEDIA_ROOT="store/media", DATA_DIR="state", REPORTS_DIR="../reports",
                     LOCAL_DESTINATION_DIR="dest", ICLOUD_DOWNLOAD_DIR="icloud", FOLDER_SOURCE_PATHS="library")
    settings = load_quietly(path)

    base = config.resolve()
    assert settings.media_root == base / "store" / "media"
    assert settings.data_dir == base / "state"
    assert settings.reports_dir == tmp_path.resolve() / "reports"  # `..` is resolved away
    assert settings.local_destination_dir == base / "dest"
    assert settings.icloud_download_dir == base / "icloud"
    assert settings.folder_source_paths == (base / "library",)
    for name in STORAGE_FOLDERS:
        assert settings.storage_dir(name) == base / "store" / "media" / name
        assert settings.storage_dir(name).is_dir()
    assert sorted(p.name for p in settings.media_root.iterdir()) == sorted(STORAGE_FOLDERS)
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
    assert settings.reports_dir == absolute.resolve() and absolute.is_dir()
    assert settings.data_dir == home.resolve() / "pipeline-data"


def test_two_comma_separated_source_folders(tmp_path: Path) -> None:
    path = write_env(tmp_path, FOLDER_SOURCE_PATHS=f"photos/2023, {tmp_path / 'camera'} ,")
    settings = load_quietly(path)
    assert settings.folder_source_paths == (tmp_path.resolve() / "photos" / "2023",
                                            tmp_path.resolve() / "camera")
    assert all(folder.is_dir() for folder in settings.folder_source_paths)


def test_world_readable_settings_file_warns(tmp_path: Path) -> None:
    path = write_env(tmp_path, mode=0o644, ICLOUD_PASSWORD=PASSWORD)
    with pytest.warns(UserWarning, match="chmod 600"):
        load_settings(path, environ={})


def test_private_settings_file_does_not_warn(tmp_path: Path) -> None:
    path = write_env(tmp_path, mode=0o600, ICLOUD_PASSWORD=PASSWORD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = load_settings(path, environ={})
    assert settings.icloud_password == PASSWORD


def test_passwords_never_appear_in_repr(tmp_path: Path) -> None:
    path = write_env(tmp_path, ICLOUD_USERNAME="someone@example.com", ICLOUD_PASSWORD=PASSWORD,
                     POSTGRES_PASSWORD=PASSWORD + "-pg", TELEGRAM_BOT_TOKEN="123:token-" + PASSWORD)
    settings = load_quietly(path)
    assert settings.icloud_password == PASSWORD
    assert settings.postgres_password == PASSWORD + "-pg"
    assert settings.secret_values() == [PASSWORD, PASSWORD + "-pg", "123:token-" + PASSWORD]
    for text in (repr(settings), str(settings)):
        assert "someone@example.com" in text  # repr does show settings, just not the secrets
        assert PASSWORD not in text
