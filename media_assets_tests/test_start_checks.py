"""What is checked before anything happens: every setting (run, ui, the sensors and the job refuse to start with
one sentence), the folder rules, the private settings file and folders; settings read once per run; a source that
looks unmounted stops the batch; an unreadable subfolder is reported."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, DagsterResourceFunctionError, RunRequest, SkipReason, build_sensor_context

import media_assets.settings as settings_module
from media_assets.batches import BatchLifecycle
from media_assets.catalog.database import DATABASE_URL_ENV, dagster_storage_url
from media_assets.catalog.repository import Catalog
from media_assets.cli import _run_interval, main
from media_assets.definitions import defs
from media_assets.defs.batch.job import BATCH_JOB_NAME
from media_assets.defs.batch.sensors import batch_sensor
from media_assets.defs.instance import (
    complete_dagster_tables,
    open_pipeline,
    prepare_dagster_home,
)
from media_assets.defs.mirror.supabase import supabase_mirror_sensor
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.media import sample_library as sample
from media_assets.media.ffmpeg_tools import SOURCE_ENV, clear_cache
from media_assets.operations import check_free_space
from media_assets.reporting import RunReport, write_report
from media_assets.runner import run_batch, run_next_batch
from media_assets.settings import Settings, SettingsError, load_settings, prepare_folders
from media_assets.sources import configured
from media_assets.sources.configured import SourceUnavailable
from media_assets.sources.folder import FolderSource
from media_assets.storage import free_space
from media_assets_tests.conftest import MakePipeline, present, write_settings
from media_assets_tests.telegram_stub import TelegramStub
from media_assets_tests.test_folder_source import as_nobody_when_root
from media_assets_tests.test_telegram import telegram_settings

#: One wrong value of each kind of setting: number, boolean, choice, address, folder.
WRONG = [
    ("COMPRESSION_JPEG_QUALITY", "abc"),
    ("DEDUP_WORKERS", "0"),
    ("ENABLE_COMPRESSION", "maybe"),
    ("COMPRESSION_VIDEO_CODEC", "vp9"),
    ("ICLOUD_ENDPOINT", "http://127.0.0.1:8443"),
    ("SUPABASE_URL", "ftp://example.supabase.co"),
    ("FOLDER_SOURCE_PATHS", "unmounted-share"),
    ("LOCAL_DESTINATION_DIR", "library"),
    ("MEDIA_ROOT", "library/media"),
]


def _batches(catalog: Catalog) -> int:
    return int(present(catalog.conn.execute("SELECT count(*) AS n FROM batches").fetchone())["n"])


@pytest.fixture
def user_home(tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder with a library holding one photo, the CLI pointed at it and at this test's catalog."""
    sample.make_photo(tmp_path / "library" / "a.jpg", seed=1, size=(64, 48))
    monkeypatch.setenv(DATABASE_URL_ENV, catalog.conninfo)
    yield tmp_path


def _use(folder: Path, monkeypatch: pytest.MonkeyPatch, **values: str) -> Path:
    settings_file = write_settings(folder, **values)
    monkeypatch.setenv("MEDIA_PIPELINE_SETTINGS", str(settings_file))
    return settings_file


@pytest.mark.parametrize(("name", "value"), WRONG)
def test_a_wrong_setting_stops_run_before_a_batch_exists(user_home: Path, catalog: Catalog, name: str, value: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _use(user_home, monkeypatch, **{name: value})
    assert main(["run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"media-pipeline: configuration error: {name} ") and value in error
    assert error.count("\n") == 1, "one sentence, no traceback"
    assert _batches(catalog) == 0
    assert not (user_home / "unmounted-share").exists(), "a source folder is never created"
    assert not (user_home / "media").exists(), "nothing was prepared for a run that cannot start"


def test_ui_refuses_to_start_too(user_home: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    _use(user_home, monkeypatch, COMPRESSION_VIDEO_CODEC="vp9")
    assert main(["ui", "--port", "1"]) == 2
    assert "COMPRESSION_VIDEO_CODEC must be one of h264, hevc, not 'vp9'." in capsys.readouterr().err


def test_the_sensor_and_the_job_refuse_to_start(user_home: Path, catalog: Catalog,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file = _use(user_home, monkeypatch, DEDUP_WORKERS="0", PIPELINE_EXECUTION_MODE="continuous")
    resource = SettingsResource(settings_file=str(settings_file))
    with pytest.raises(DagsterResourceFunctionError) as refused, build_sensor_context(
            instance=DagsterInstance.ephemeral(),
            resources={"settings": resource, "catalog": CatalogResource(settings=resource)}) as context:
        batch_sensor(context)
    assert isinstance(refused.value.__cause__, SettingsError) and "DEDUP_WORKERS" in str(refused.value.__cause__)
    assert _batches(catalog) == 0

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("batch", ["b1"])
    result = defs.resolve_job_def(BATCH_JOB_NAME).execute_in_process(partition_key="b1", instance=instance,
                                                                      raise_on_error=False)
    assert not result.success
    assert not catalog.conn.execute("SELECT 1 FROM phase_runs").fetchall(), "no phase started"


@pytest.mark.parametrize(("where", "code", "said"), [
    ("dbname=no_such_catalog", 2, "check POSTGRES_DB, POSTGRES_USER and POSTGRES_PASSWORD."),
    ("host=127.0.0.1 port=1 dbname=catalog", 69, "check POSTGRES_HOST and POSTGRES_PORT, and that the server runs."),
])
def test_a_catalog_that_cannot_be_opened_at_start_is_not_called_lost(
        user_home: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        where: str, code: int, said: str) -> None:
    """It said "lost the catalog database ... the batch is marked failed", with no batch and nothing lost."""
    params = {**psycopg.conninfo.conninfo_to_dict(catalog.conninfo), **psycopg.conninfo.conninfo_to_dict(where)}
    monkeypatch.setenv(DATABASE_URL_ENV, psycopg.conninfo.make_conninfo("", **params))
    _use(user_home, monkeypatch)
    assert main(["status"]) == code
    error = capsys.readouterr().err.strip()
    assert error.startswith("media-pipeline: cannot open the catalog database (") and error.endswith(said), error
    assert "\n" not in error and "lost" not in error


def test_an_unknown_key_is_warned_about_at_start(user_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _use(user_home, monkeypatch, ENABLE_COMPRESION="false", COMPRESSION_JPEG_QUALITY="abc")
    monkeypatch.setenv("DEDUP_WORKER", "2")
    assert main(["run"]) == 2
    error = capsys.readouterr().err
    assert "media-pipeline: warning: " in error
    assert "sets ENABLE_COMPRESION, which is not a known setting; did you mean ENABLE_COMPRESSION?" in error
    assert "DEDUP_WORKER, which is not a known setting; did you mean DEDUP_WORKERS?" in error


def test_a_readable_settings_file_with_a_secret_stops_the_start(user_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    settings_file = _use(user_home, monkeypatch, TELEGRAM_BOT_TOKEN="123:secret-token")
    settings_file.chmod(0o644)
    assert main(["status"]) == 2
    error = capsys.readouterr().err
    assert f"run `chmod 600 {settings_file.resolve()}`" in error and "secret-token" not in error


# -- read once ---------------------------------------------------------------------------------------------------

@pytest.fixture
def file_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every read of a settings file in this process from now on."""
    reads: list[Path] = []
    real = settings_module.read_settings_file

    def counted(path: Path) -> dict[str, str]:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(settings_module, "read_settings_file", counted)
    return reads


def test_a_run_in_process_reads_no_settings_again(make_pipeline: MakePipeline, file_reads: list[Path]) -> None:
    pipeline = make_pipeline()
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    file_reads.clear()
    report = run_batch(pipeline)
    assert report.success, report.error
    assert file_reads == []  # eight phases, their resources and checks: all use pipeline.settings


def test_a_run_started_by_the_daemon_reads_the_settings_once(make_pipeline: MakePipeline, file_reads: list[Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline()
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    monkeypatch.setattr(settings_module, "_process_settings", {})  # a run worker: a fresh process
    batch_id = BatchLifecycle(pipeline.catalog).create()
    pipeline.instance.add_dynamic_partitions("batch", [batch_id])
    file_reads.clear()
    result = defs.resolve_job_def(BATCH_JOB_NAME).execute_in_process(partition_key=batch_id,
                                                                      instance=pipeline.instance)
    assert result.success
    assert file_reads == [pipeline.settings.source_file]


def test_loading_the_definitions_reads_no_settings(tmp_path: Path) -> None:
    """The mirror sensor's interval comes from the settings object when it runs, not from the file at import."""
    broken = write_settings(tmp_path, SUPABASE_SYNC_INTERVAL_SECONDS="often")
    env = {"PATH": "/usr/bin:/bin", "MEDIA_PIPELINE_SETTINGS": str(broken)}
    loaded = subprocess.run([sys.executable, "-c", "import media_assets.definitions"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=False)
    assert loaded.returncode == 0, loaded.stderr[-2000:]


def test_the_mirror_sensor_looks_every_sync_interval(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    make_pipeline(ENABLE_SUPABASE_MIRROR="true", SUPABASE_URL="https://x.supabase.co", SUPABASE_KEY="k",
                  SUPABASE_SYNC_INTERVAL_SECONDS="600")
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    resources = {"settings": settings, "catalog": CatalogResource(settings=settings)}
    with build_sensor_context(instance=DagsterInstance.ephemeral(), resources=resources,
                              cursor=str(time.time() - 60)) as context:
        waiting = supabase_mirror_sensor(context)
    assert isinstance(waiting, SkipReason) and "SUPABASE_SYNC_INTERVAL_SECONDS=600" in (waiting.skip_message or "")
    with build_sensor_context(instance=DagsterInstance.ephemeral(), resources=resources,
                              cursor=str(time.time() - 601)) as context:
        looked = supabase_mirror_sensor(context)
        assert isinstance(looked, RunRequest | SkipReason) and float(context.cursor or 0) > time.time() - 60


# -- folder rules ------------------------------------------------------------------------------------------------

WRITTEN_FOLDERS = ["MEDIA_ROOT", "DATA_DIR", "REPORTS_DIR", "ICLOUD_DOWNLOAD_DIR", "LOCAL_DESTINATION_DIR",
                   "PIXEL_SYNC_DIR"]


def _load(folder: Path, **values: str) -> Settings:
    return load_settings(write_settings(folder, **values), environ={})


@pytest.mark.parametrize("name", WRITTEN_FOLDERS)
@pytest.mark.parametrize("where", ["library", "library/pipeline"])
def test_no_folder_the_pipeline_writes_to_lies_in_a_source(tmp_path: Path, name: str, where: str) -> None:
    with pytest.raises(SettingsError) as refused:
        _load(tmp_path, **{name: where})
    message = str(refused.value)
    assert message.startswith(f"{name} (") and "FOLDER_SOURCE_PATHS" in message and "\n" not in message
    assert not (tmp_path / "library" / "pipeline").exists()


def test_no_source_lies_in_a_folder_the_pipeline_writes_to(tmp_path: Path) -> None:
    (tmp_path / "data" / "photos").mkdir(parents=True)
    with pytest.raises(SettingsError, match=r"FOLDER_SOURCE_PATHS names .*photos, which lies inside DATA_DIR"):
        _load(tmp_path, FOLDER_SOURCE_PATHS="data/photos")


def test_folder_rules_apply_only_to_an_enabled_folder_source(tmp_path: Path) -> None:
    settings = _load(tmp_path, ENABLE_FOLDER_SOURCE="false", LOCAL_DESTINATION_DIR="library")
    assert settings.destinations.local_destination_dir == (tmp_path / "library").resolve()


def test_a_missing_source_is_refused_and_never_created(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist .is the disk or share mounted") as refused:
        _load(tmp_path, FOLDER_SOURCE_PATHS="library, /mnt/nas-photos-not-mounted")
    assert "/mnt/nas-photos-not-mounted" in str(refused.value)
    assert not Path("/mnt/nas-photos-not-mounted").exists()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SettingsError, match="is not a folder"):
        _load(tmp_path, FOLDER_SOURCE_PATHS="a-file")


def test_an_unreadable_source_is_refused() -> None:
    folder = Path(tempfile.mkdtemp(prefix="unreadable-source-"))  # not under tmp_path: that is root's alone
    try:
        folder.chmod(0o755)
        (folder / "photos").mkdir(mode=0o700)
        with as_nobody_when_root(), pytest.raises(SettingsError, match="which this user cannot read"):
            load_settings(folder / "settings.env", environ={"FOLDER_SOURCE_PATHS": str(folder / "photos")})
    finally:
        shutil.rmtree(folder)


def test_commas_alone_separate_source_folders(tmp_path: Path) -> None:
    for name in ("Photos: 2020", "Camera"):
        (tmp_path / name).mkdir()
    settings = _load(tmp_path, FOLDER_SOURCE_PATHS=" Photos: 2020 ,Camera ")
    assert settings.sources.folder_source_paths == ((tmp_path / "Photos: 2020").resolve(),
                                                    (tmp_path / "Camera").resolve())


# -- a source that looks unmounted -------------------------------------------------------------------------------

@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    server = TelegramStub().start()
    yield server
    server.stop()


def test_an_empty_source_that_held_files_stops_the_batch_and_alerts_once(make_pipeline: MakePipeline, tmp_path: Path,
                                                                         stub: TelegramStub,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = make_pipeline(PIPELINE_EXECUTION_MODE="continuous", **telegram_settings(stub))
    library = pipeline.settings.sources.folder_source_paths[0]
    sample.make_photo(library / "a.jpg", seed=1, size=(64, 48))
    assert run_batch(pipeline).success
    stub.sent.clear()
    batches = _batches(pipeline.catalog)
    shutil.move(library / "a.jpg", tmp_path / "a.jpg")  # the share is unmounted: an empty mount point is left

    with pytest.raises(SourceUnavailable, match=f"Source folder {library} is empty but the catalog holds files "
                                                "taken from it: it looks unmounted"):
        run_next_batch(pipeline)
    with pytest.raises(SourceUnavailable):
        run_batch(pipeline)
    assert _run_interval(pipeline, 1, max_runs=1) == 1  # `interval` says why and tries again next time
    assert "looks unmounted" in capsys.readouterr().out
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    with build_sensor_context(instance=DagsterInstance.ephemeral(),
                              resources={"settings": settings, "catalog": CatalogResource(settings=settings)}
                              ) as context:
        skipped = batch_sensor(context)
    assert isinstance(skipped, SkipReason) and "looks unmounted" in (skipped.skip_message or "")
    assert _batches(pipeline.catalog) == batches
    [alert] = stub.wait_for_sent(1)
    assert "looks unmounted" in alert.text
    time.sleep(0.5)
    assert len(stub.sent) == 1, "one alert per outage, however often it is looked at"

    shutil.move(tmp_path / "a.jpg", library / "a.jpg")  # mounted again: nothing new, and the next outage alerts
    decision, report = run_next_batch(pipeline)
    assert not decision.start and report is None
    shutil.move(library / "a.jpg", tmp_path / "a.jpg")
    with pytest.raises(SourceUnavailable):
        run_next_batch(pipeline)
    assert len(stub.wait_for_sent(2)) == 2


@pytest.mark.parametrize("machine", ["no ffprobe", "mistyped source"])
def test_no_batch_starts_on_a_machine_that_cannot_judge_videos(make_pipeline: MakePipeline, machine: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ffprobe every video was quarantined as unreadable, for good; a mistyped
    MEDIA_PIPELINE_FFMPEG_SOURCE failed the batch in download. Neither is the files' fault: no batch starts."""
    pipeline = make_pipeline()
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    clear_cache()  # where ffmpeg is was looked up once per process: look again
    if machine == "no ffprobe":
        monkeypatch.setattr(configured, "ffprobe_path", lambda: None)
        said = "ffmpeg or ffprobe is not installed"
    else:
        monkeypatch.setenv(SOURCE_ENV, "sytem")
        said = "MEDIA_PIPELINE_FFMPEG_SOURCE='sytem'"
    with pytest.raises(SourceUnavailable, match=re.escape(said)):
        run_next_batch(pipeline)
    assert _batches(pipeline.catalog) == 0


def test_dagster_tables_a_killed_first_start_left_out_are_made(tmp_path: Path, catalog_conninfo: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster makes its tables one autocommitted statement at a time and looks no further once event_logs
    exists: `make run` killed 5 s in left an installation on which every later run failed with a traceback."""
    import sqlalchemy
    from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
    from dagster._core.storage.runs.schema import RunStorageSqlMetadata

    monkeypatch.setenv(DATABASE_URL_ENV, catalog_conninfo)
    engine = sqlalchemy.create_engine(dagster_storage_url(catalog_conninfo))
    with engine.begin() as conn:  # where the first start stopped: the run tables and event_logs, nothing after
        RunStorageSqlMetadata.create_all(conn)
        SqlEventLogStorageMetadata.tables["event_logs"].create(conn)
    engine.dispose()
    pipeline = open_pipeline(load_settings(write_settings(tmp_path)))
    try:
        assert not pipeline.instance.has_dynamic_partition("batch", "20260101-000000")
        assert complete_dagster_tables(pipeline.instance) == []
    finally:
        pipeline.close()


def test_nothing_new_says_which_failed_batches_wait_to_be_finished(user_home: Path, catalog: Catalog,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """After a run killed half way, `run` said only "nothing new in the sources" and left its batch `running`
    for good: without the daemon the killed batch's files were never finished, and nothing said how."""
    _use(user_home, monkeypatch)
    assert main(["run"]) == 0
    catalog.create_batch("20260101-000000")
    catalog.set_batch_status("20260101-000000", "running")  # its process was killed: its lock is free
    capsys.readouterr()
    assert main(["run"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[-2:] == ["nothing new in the sources",
                         "1 failed batch(es) (20260101-000000) hold files not finished yet: `media-pipeline "
                         "retry-failed` finishes them (the daemon does it by itself)."]


def test_an_empty_new_source_is_just_empty(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    decision, report = run_next_batch(pipeline)
    assert not decision.start and report is None


def test_an_unreadable_subfolder_is_reported_not_skipped() -> None:
    folder = Path(tempfile.mkdtemp(prefix="unreadable-subfolder-"))
    try:
        folder.chmod(0o755)
        sample.make_photo(folder / "open" / "a.jpg", seed=1, size=(32, 24))
        (folder / "open").chmod(0o755)
        (folder / "open" / "a.jpg").chmod(0o644)
        sample.make_photo(folder / "locked" / "b.jpg", seed=2, size=(32, 24))
        (folder / "locked").chmod(0o700)
        with as_nobody_when_root():
            items = list(FolderSource([folder]).scan())
        refused = {Path(item.source_id).name: item.refusal for item in items if item.refusal}
        assert refused == {"locked": "folder is not readable (Permission denied): its files were not taken"}
        assert [Path(item.source_id).name for item in items if not item.refusal] == ["a.jpg"]
    finally:
        shutil.rmtree(folder)


# -- private folders and files -----------------------------------------------------------------------------------

def test_data_reports_and_dagster_home_are_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir(mode=0o755)
    settings = _load(tmp_path)
    prepare_folders(settings)
    monkeypatch.setenv("DAGSTER_HOME", "")
    monkeypatch.delenv("DAGSTER_HOME")
    home = prepare_dagster_home(settings)
    for folder in (settings.storage.reports_dir, home):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    # Root's embedded server runs as its own user in root's group, and must pass through DATA_DIR to its folder.
    expected = 0o710 if os.geteuid() == 0 and settings.uses_embedded_postgres else 0o700
    assert settings.storage.data_dir.stat().st_mode & 0o777 == expected
    report = RunReport(batch_id="b1", success=True, duration_seconds=1.0, phases_succeeded=8, phases_total=8,
                       files_processed=0, files_by_state={}, bytes_in=0, bytes_out=0)
    markdown = write_report(report, settings.storage.reports_dir, keep=3)
    for written in (markdown, markdown.with_suffix(".json")):
        assert written.stat().st_mode & 0o777 == 0o600, written


def test_a_changed_instance_file_is_replaced_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process reading dagster.yaml while another start rewrites it (MAX_CONCURRENT_BATCHES changed) reads the
    old file or the new one, never a truncated one; the new one is as private as the old."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = prepare_dagster_home(_load(tmp_path, MAX_CONCURRENT_BATCHES="1"))
    monkeypatch.delenv("DAGSTER_HOME")
    config = home / "dagster.yaml"
    before = config.read_text()
    with config.open() as reading:
        prepare_dagster_home(_load(tmp_path, MAX_CONCURRENT_BATCHES="2"))
        assert reading.read() == before
    assert "max_concurrent_runs: 2" in config.read_text() and "max_concurrent_runs: 1" in before
    assert config.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in home.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_one_free_space_rule_for_the_check_and_the_alert(tmp_path: Path) -> None:
    settings = _load(tmp_path, FREE_SPACE_ALERT_GB=str(10**9), ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR="pixel")
    space = free_space(settings)
    assert set(space.low) == set(settings.folders_written()) == {
        "MEDIA_ROOT", "DATA_DIR", "REPORTS_DIR", "ICLOUD_DOWNLOAD_DIR", "LOCAL_DESTINATION_DIR", "PIXEL_SYNC_DIR"}
    outcome = check_free_space(settings)
    assert not outcome.passed and all(f"{key} has" in outcome.description for key in space.low)
