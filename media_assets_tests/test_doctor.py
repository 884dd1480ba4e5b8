"""`media-pipeline doctor`: every check passes on a sound machine, and each broken part (settings, catalog,
MEDIA_ROOT missing, unwritable or another share than the daemon's, ffmpeg) fails with its own line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from media_assets.catalog.database import DATABASE_URL_ENV
from media_assets.doctor import MARKER_NAME, check_broker, check_media_root, diagnose, mark_media_root
from media_assets.settings import load_settings

from .celery_deployment import REDIS, redis_answers
from .conftest import write_settings


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


def _doctor(settings_file: Path, *args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_"))}
    env.update({"MEDIA_PIPELINE_SETTINGS": str(settings_file), DATABASE_URL_ENV: database_url})
    return subprocess.run([sys.executable, "-m", "media_assets.cli", "doctor", *args], env=env,
                          cwd=settings_file.parent, capture_output=True, text=True, timeout=120, check=False)


def test_a_sound_machine_passes_and_a_worker_proves_it_sees_the_daemons_share(tmp_path: Path,
                                                                                catalog_conninfo: str) -> None:
    (tmp_path / "media").mkdir()
    daemon = _doctor(write_settings(tmp_path), "--mark", database_url=catalog_conninfo)
    assert daemon.returncode == 0, daemon.stderr
    share_id = (tmp_path / "media" / MARKER_NAME).read_text().strip()
    assert [line.split(":")[0] for line in daemon.stdout.splitlines()] == [
        "ok    settings", "ok    catalog", "ok    MEDIA_ROOT", "ok    ffmpeg"]
    assert f"filesystem id {share_id}" in daemon.stdout

    worker = tmp_path / "worker"
    worker.mkdir()
    (worker / "mount").symlink_to(tmp_path / "media")  # the same share under another path
    seen = _doctor(write_settings(worker, MEDIA_ROOT="mount"), "--expect-id", share_id, database_url=catalog_conninfo)
    assert seen.returncode == 0, seen.stderr

    (worker / "other").mkdir()
    mark_media_root(worker / "other")  # a local folder with an id of its own: not the daemon's share
    wrong = _doctor(write_settings(worker, MEDIA_ROOT="other"), "--expect-id", share_id,
                    database_url=catalog_conninfo)
    assert wrong.returncode == 1
    assert wrong.stderr.splitlines() == [wrong.stderr.splitlines()[0]]
    assert wrong.stderr.startswith("FAIL  MEDIA_ROOT:") and f"expected {share_id}" in wrong.stderr


def test_each_broken_part_is_one_failed_line(tmp_path: Path) -> None:
    settings_file = write_settings(tmp_path)  # MEDIA_ROOT does not exist
    result = _doctor(settings_file, database_url=f"postgresql://postgres@127.0.0.1:{_closed_port()}/nothing")
    assert result.returncode == 1
    failed = result.stderr.splitlines()
    assert [line.split(":")[0] for line in failed] == ["FAIL  catalog", "FAIL  MEDIA_ROOT"], result.stderr
    assert "not reachable" in failed[0] and "is not a folder" in failed[1]
    assert "ok    settings" in result.stdout and "ok    ffmpeg" in result.stdout

    broken = write_settings(tmp_path, BATCH_MAX_FILES="many")
    result = _doctor(broken, database_url="postgresql://unused")
    assert result.returncode == 1
    assert result.stderr.startswith("FAIL  settings:") and "BATCH_MAX_FILES" in result.stderr
    assert result.stderr.count("\n") == 1  # the checks needing settings are not run on none


def test_with_executor_celery_an_unreachable_broker_is_one_failed_line(tmp_path: Path) -> None:
    """The broker is checked only with EXECUTOR=celery, right after the catalog, its password never shown."""
    (tmp_path / "media").mkdir()
    port = _closed_port()
    broker = f"amqp://pipeline:s3cret@127.0.0.1:{port}//"
    result = _doctor(write_settings(tmp_path, EXECUTOR="celery", CELERY_BROKER_URL=broker), "--mark",
                     database_url=f"postgresql://postgres@127.0.0.1:{_closed_port()}/nothing")
    assert result.returncode == 1
    failed = result.stderr.splitlines()
    assert [line.split(":")[0] for line in failed] == ["FAIL  catalog", "FAIL  broker"], result.stderr
    assert failed[1].startswith(f"FAIL  broker: amqp://pipeline:**@127.0.0.1:{port}// "
                                "not reachable ("), failed[1]
    assert "s3cret" not in result.stdout + result.stderr


@pytest.mark.skipif(not redis_answers(), reason="no Redis broker answers on 127.0.0.1:6379 (as the Celery tests)")
def test_a_broker_that_answers_passes(tmp_path: Path) -> None:
    settings = load_settings(write_settings(tmp_path, EXECUTOR="celery",
                                            CELERY_BROKER_URL=f"redis://{REDIS[0]}:{REDIS[1]}/0"))
    check = check_broker(settings)
    assert check.passed and check.detail == f"redis://:**@{REDIS[0]}:{REDIS[1]}/0 answers", check


def test_a_media_root_without_the_daemons_marker_fails(tmp_path: Path) -> None:
    check = check_media_root(tmp_path, expected_id=None)
    assert not check.passed and "doctor --mark" in (check.problem or "")
    share_id = mark_media_root(tmp_path)
    assert mark_media_root(tmp_path) == share_id  # never replaced
    assert check_media_root(tmp_path, expected_id=share_id).passed


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_an_unwritable_media_root_fails(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    mark_media_root(media)
    media.chmod(0o555)
    try:
        check = check_media_root(media, expected_id=None)
    finally:
        media.chmod(0o755)
    assert not check.passed and "not writable" in (check.problem or "")


def test_a_machine_without_ffmpeg_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_conninfo: str,
                                         fresh_ffmpeg_lookup: None) -> None:
    from media_assets.media.ffmpeg_tools import SOURCE_ENV

    monkeypatch.setenv(SOURCE_ENV, "system")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    (tmp_path / "media").mkdir()
    mark_media_root(tmp_path / "media")
    checks = diagnose(write_settings(tmp_path), lambda _settings: catalog_conninfo, expected_id=None)
    assert [check.name for check in checks if not check.passed] == ["ffmpeg"]
