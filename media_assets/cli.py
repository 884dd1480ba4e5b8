"""`media-pipeline`: run a batch now, show the catalog's state, run on an interval, write a sample library."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# Nothing heavy at import time, the settings (pydantic, ~18 MB) included: every phase's worker process imports
# this module again as its __main__ (multiprocessing's spawn), and each worker would carry them for nothing.
if TYPE_CHECKING:  # the CLI imports Dagster only inside the commands that run it
    from media_assets.defs.instance import Pipeline
    from media_assets.settings import Settings

#: Exit status when the catalog database went away (EX_UNAVAILABLE): nothing is lost, run again later.
CATALOG_LOST = 69
#: Exit status when another batch runs and --wait was not given (EX_TEMPFAIL): try again later.
BUSY = 75


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="media-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="take the next batch of new files through every phase now, in this "
                                          "process (nothing new: no batch)")
    run.add_argument("--batch", default=None, help="re-run this existing batch (it continues where it stopped)")
    run.add_argument("--wait", action="store_true",
                     help="when another batch is running, wait for it (saying so every minute) instead of exiting")
    run.add_argument("--all", action="store_true",
                     help="run batch after batch until the sources hold nothing new (a first import)")
    verify = commands.add_parser("verify", help="re-hash kept files and destinations against the catalog; any "
                                                "problem is a Telegram alert")
    verify.add_argument("--sample", type=int, default=None, metavar="N",
                        help="download back only a random N of the iCloud uploads (default: all of them)")
    mode = verify.add_mutually_exclusive_group(required=True)
    mode.add_argument("--full", action="store_true", help="check every catalogued file and copy")
    mode.add_argument("--repair", action="store_true",
                      help="check like --full, then send every bad or missing destination copy again from the kept "
                           "copy (once that matches the catalog) and verify it; matching copies are never touched")
    status = commands.add_parser("status", help="files by state, the last batches with their numbers and per-phase "
                                                "timings, disk use, destinations, what the automation does next")
    status.add_argument("--json", action="store_true", help="the same as JSON, for scripts")
    mirror = commands.add_parser("mirror", help="send the catalog's changes to Supabase now (no daemon needed)")
    mirror.add_argument("--full", action="store_true",
                        help="also compare every table with Supabase and repair what differs (after a new project, "
                             "a lost table or edits in its Dashboard)")
    commands.add_parser("retry-failed", help="re-run every failed batch in this process, oldest first")
    find = commands.add_parser("find", help="a file's whole history: states with times, paths, destinations, "
                                            "duplicate of (PATTERN: part of its name or source path)")
    find.add_argument("pattern")
    interval = commands.add_parser("interval", help="run a batch every N minutes until stopped")
    interval.add_argument("--interval", type=int, default=None,
                          help="minutes between runs (default: PIPELINE_EXECUTION_INTERVAL_MINUTES)")
    interval.add_argument("--max-runs", type=int, default=None, help="stop after this many runs (for tests)")
    ui = commands.add_parser("ui", help="start the Dagster web UI and daemon (the dashboard and the automation)")
    ui.add_argument("--host", default=None, help="address to bind (default DAGSTER_UI_HOST or 127.0.0.1)")
    ui.add_argument("--port", type=int, default=None, help="port (default DAGSTER_UI_PORT or 3000)")
    icloud = commands.add_parser("icloud", help="iCloud Photos: `login` signs in, asking for Apple's 2FA code here")
    icloud.add_argument("action", choices=["login"])
    icloud.add_argument("--upload-account", action="store_true",
                        help="sign in the upload account (ICLOUD_UPLOAD_USERNAME) instead of the source account")
    doctor = commands.add_parser("doctor", help="check this machine can take part: settings load, catalog reachable, "
                                                "the broker with EXECUTOR=celery, MEDIA_ROOT writable and the "
                                                "daemon's share, ffmpeg present")
    doctor.add_argument("--mark", action="store_true",
                        help="on the daemon's machine: give MEDIA_ROOT its id (.media-pipeline-id) if it has none")
    doctor.add_argument("--expect-id", default=None, metavar="ID",
                        help="on a worker: fail unless MEDIA_ROOT holds this id (printed by doctor on the daemon's "
                             "machine), proving both see the same share")
    worker = commands.add_parser("worker", help="with EXECUTOR=celery: become a Celery worker executing batch phases, "
                                                "on the broker and Celery configuration the settings give the runs")
    worker.add_argument("--name", default="media-pipeline",
                        help="the worker's name (Celery adds @<host>; default media-pipeline)")
    worker.add_argument("celery_args", nargs="*", metavar="-- CELERY_OPTION",
                        help="options for `celery worker` after --, e.g. -- --pool=solo --concurrency=1")
    sample = commands.add_parser("sample-library", help="write a small sample library of photos and videos")
    sample.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    if args.command == "sample-library":
        from media_assets.media.sample_library import write_sample_library

        written = write_sample_library(args.path)
        print(f"sample library in {args.path}: {len(written)} files")
        return 0
    if args.command == "doctor":
        return _doctor(args.mark, args.expect_id)
    settings = _checked_settings()
    if settings is None:
        return 2
    if args.command == "icloud":
        return _icloud_login(settings, args.upload_account)
    from media_assets.catalog.database import lost_connection, release_embedded_postgres
    from media_assets.catalog.locks import LockBusy, who_is_running

    # dagster-postgres logs each of its reconnection attempts with the driver's whole message; the one sentence
    # below says it once.
    logging.getLogger().addFilter(lambda record: not record.getMessage().startswith("Retrying failed database"))
    from media_assets.batches import BatchStopped

    stops = StopSignals()
    stopped_before_a_batch = False
    try:
        exit_code = _with_pipeline(settings, args)
    except KeyboardInterrupt as stop:
        exit_code = 1
        stopped_before_a_batch = not isinstance(stop, BatchStopped)
    except LockBusy as busy:
        print(f"media-pipeline: {who_is_running(busy.holder)}; run again with --wait to wait for it.", file=sys.stderr)
        return BUSY
    except Exception as error:
        reason = lost_connection(error)
        if reason is None:
            raise
        print(f"media-pipeline: lost the catalog database ({reason}); nothing was lost: every file keeps its "
              "recorded state, and the batch is marked failed as soon as the catalog is back; re-run with "
              "`media-pipeline retry-failed` once the database runs again.", file=sys.stderr)
        return CATALOG_LOST
    finally:
        # A one-off command leaves no database running, unless another live process still uses it.
        release_embedded_postgres(settings.storage.data_dir)
        stops.close()
    if stops.received and args.command in ("run", "retry-failed", "interval"):
        name = signal.Signals(stops.received).name
        if stopped_before_a_batch:
            print(f"media-pipeline: stopped by {name} before its batch started (waiting for a run slot or a "
                  "lock); nothing is left half done.", file=sys.stderr)
        else:
            print(f"media-pipeline: stopped by {name}; the batch is marked failed and nothing was lost: "
                  "`media-pipeline retry-failed` finishes it.", file=sys.stderr)
        return 128 + stops.received
    return exit_code


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM stop a command at any point as KeyboardInterrupt (Dagster turns them into a
    failed run with the batch marked "stopped"), and `received` tells which one came: the kernel writes every
    signal's number to a wakeup pipe, whoever's Python handler then runs."""

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(write, False)
        self._write = write
        self._previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for stop in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop, signal.default_int_handler)
        self._received = 0

    @property
    def received(self) -> int:
        """The last stop signal received so far (0 for none)."""
        if self._read >= 0:
            try:
                for number in os.read(self._read, 512):
                    if number in (signal.SIGINT, signal.SIGTERM):
                        self._received = number
            except BlockingIOError:
                pass
        return self._received

    def close(self) -> None:
        self._received = self.received
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read)
        os.close(self._write)
        self._read = -1


def _with_pipeline(settings: Settings, args: argparse.Namespace) -> int:
    from media_assets.defs.instance import open_pipeline
    from media_assets.settings import SettingsError
    from media_assets.sources.configured import SourceUnavailable

    try:
        pipeline = open_pipeline(settings)
    except SettingsError as error:  # a folder that cannot be created
        print(f"media-pipeline: configuration error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        return _catalog_not_reached(error)
    try:
        if args.command == "run":
            with ProgressBar.on_terminal():
                return _run_all(pipeline, args.wait) if args.all else _run_once(pipeline, args.batch, args.wait)
        if args.command == "verify":
            return _verify(pipeline, args.sample, repair=args.repair)
        if args.command == "status":
            print(_status_json(pipeline) if args.json else _status_text(pipeline))
            return 0
        if args.command == "retry-failed":
            return _retry_failed(pipeline)
        if args.command == "find":
            from media_assets.find import file_history_text

            print(file_history_text(pipeline.catalog, args.pattern, settings.sources.folder_source_paths))
            return 0
        if args.command == "mirror":
            return _mirror(pipeline, args.full)
        if args.command == "worker":
            return _become_worker(pipeline, args.name, args.celery_args)
        if args.command == "interval":
            minutes = args.interval or settings.automation.execution_interval_minutes
            if minutes < 1:
                print("media-pipeline: --interval must be at least 1 minute", file=sys.stderr)
                return 2
            return _run_interval(pipeline, minutes, args.max_runs)
        if args.command == "ui":
            from media_assets.ui import serve

            return serve(args.host or settings.ui.host, args.port or settings.ui.port,
                         Path(os.environ["DAGSTER_HOME"]))
    except SourceUnavailable as error:
        print(f"media-pipeline: {error}", file=sys.stderr)
        return 2
    finally:
        pipeline.close()
    return 1


def _doctor(mark: bool, expected_id: str | None) -> int:
    """One line per check (failures on stderr); non-zero when any failed."""
    from media_assets.catalog.database import release_embedded_postgres, resolve_conninfo
    from media_assets.doctor import diagnose

    used: list[Settings] = []

    def conninfo(settings: Settings) -> str:
        used.append(settings)
        return resolve_conninfo(settings)

    try:
        checks = diagnose(None, conninfo, expected_id, mark=mark)
    finally:
        for settings in used:
            release_embedded_postgres(settings.storage.data_dir)
    for check in checks:
        print(check.line(), file=sys.stdout if check.passed else sys.stderr)
    return 0 if all(check.passed for check in checks) else 1


def _catalog_not_reached(error: Exception) -> int:
    """At start nothing was lost and no batch runs: a server that refused these settings (no such database, user
    or password) is a setting to fix (2); one that cannot be reached may be down (CATALOG_LOST)."""
    from media_assets.catalog.database import lost_connection

    reason = lost_connection(error)
    if reason is None:
        raise error
    refused = "FATAL:" in reason  # the server answered, and said no
    check = ("POSTGRES_DB, POSTGRES_USER and POSTGRES_PASSWORD" if refused
             else "POSTGRES_HOST and POSTGRES_PORT, and that the server runs")
    print(f"media-pipeline: cannot open the catalog database ({reason}); nothing was started: check {check}.",
          file=sys.stderr)
    return 2 if refused else CATALOG_LOST


def _checked_settings() -> Settings | None:
    """This process's settings, or None after printing the one sentence that says what is wrong; warnings
    (an unknown key) are printed as one line each."""
    from media_assets.settings import SettingsError, SettingsWarning, process_settings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SettingsWarning)
        try:
            settings = process_settings()
        except SettingsError as error:
            print(f"media-pipeline: configuration error: {error}", file=sys.stderr)
            return None
        finally:
            for warning in caught:
                print(f"media-pipeline: warning: {warning.message}", file=sys.stderr)
    return settings


def _icloud_login(settings: Settings, upload_account: bool) -> int:
    from media_assets.icloud.config import icloud_config
    from media_assets.icloud.session import ICloudAuthError, login_in_terminal
    from media_assets.settings import SettingsError

    try:
        print(login_in_terminal(icloud_config(settings, role="destination" if upload_account else "source")))
    except (ICloudAuthError, SettingsError) as error:
        print(f"media-pipeline: {error}", file=sys.stderr)
        return 1
    return 0


class ProgressBar:
    """A terminal progress bar (tqdm) per phase, fed by the phases' progress (`phases.common.Progress`): on each
    file done, and on each heartbeat, which redraws it so its elapsed time runs on while one file takes long."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.bar: Any = None
        self._lock = threading.Lock()  # called from the phase's thread and from its heartbeat thread

    def __call__(self, progress: Any) -> None:  # a phases.common.Progress
        from tqdm import tqdm

        with self._lock:
            if self.bar is None or self.bar.desc != progress.phase:
                self._close()
                self.bar = tqdm(desc=progress.phase, total=progress.total, unit="file", file=self.stream,
                                dynamic_ncols=True)
            self.bar.total = progress.total
            if progress.done == self.bar.n:
                self.bar.refresh()  # no file done since: a heartbeat
            else:
                self.bar.update(progress.done - self.bar.n)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    @classmethod
    @contextmanager
    def on_terminal(cls) -> Iterator[None]:
        """Show the bar while batches run, when stderr is a terminal (never in logs or pipes)."""
        from media_assets.phases.common import PROGRESS_LISTENERS

        if not sys.stderr.isatty():
            yield
            return
        bar = cls()
        PROGRESS_LISTENERS.append(bar)
        try:
            yield
        finally:
            PROGRESS_LISTENERS.remove(bar)
            bar.close()


def _run_once(pipeline: Pipeline, batch_id: str | None, wait: bool = False) -> int:
    from media_assets.runner import run_batch

    if batch_id is None:
        return _run_next(pipeline, wait)[0]
    if pipeline.catalog.batch(batch_id) is None:
        print(f"media-pipeline: no batch {batch_id!r} in the catalog", file=sys.stderr)
        return 2
    report = run_batch(pipeline, batch_id, wait=wait)
    print(report.to_markdown())
    return 0 if report.success else 1


def _run_next(pipeline: Pipeline, wait: bool = False) -> tuple[int, bool]:
    """Run the next batch, if there is anything new and room for it: (exit code, whether more is waiting)."""
    from media_assets.automation import NOTHING_NEW
    from media_assets.runner import run_next_batch

    decision, report = run_next_batch(pipeline, wait=wait)
    if report is None:
        print(decision.reason, flush=True)
        _say_unfinished(pipeline)
        return (0 if decision.reason == NOTHING_NEW else 1), False
    print(report.to_markdown(), flush=True)
    batch = pipeline.catalog.batch(report.batch_id)
    return (0 if report.success else 1), bool(report.success and batch and batch.backlog)


def _say_unfinished(pipeline: Pipeline) -> None:
    """Failed batches hold files no run will finish without a daemon (a run killed or crashed half way): say so."""
    failed = pipeline.catalog.failed_batches()
    if failed:
        print(f"{len(failed)} failed batch(es) ({', '.join(failed)}) hold files not finished yet: "
              "`media-pipeline retry-failed` finishes them (the daemon does it by itself).", flush=True)


def _run_all(pipeline: Pipeline, wait: bool = False) -> int:
    """Batch after batch until one takes everything that is new (the daily cap is the automation's, not this)."""
    batches = 0
    while True:
        code, more = _run_next(pipeline, wait)
        batches += 1
        if code or not more:
            if batches > 1:
                print(f"{batches} batch(es) run", flush=True)
            return code


def _mirror(pipeline: Pipeline, full: bool) -> int:
    from functools import partial

    from media_assets.mirror import MirrorConfig, MirrorError, SupabaseRemote, run_cycle
    from media_assets.telegram.notify import send_alert

    config = MirrorConfig.from_settings(pipeline.settings)
    if not config.enabled:
        print("media-pipeline: the Supabase mirror is off: set ENABLE_SUPABASE_MIRROR=true with SUPABASE_URL and "
              "SUPABASE_KEY to turn it on.", file=sys.stderr)
        return 2
    remote = SupabaseRemote.from_config(config)
    try:
        report = run_cycle(pipeline.catalog, remote, config.chunk_size, full=full,
                           alert=partial(send_alert, settings=pipeline.settings))
    except MirrorError as error:
        print(f"media-pipeline: {error}", file=sys.stderr)
        return 1
    finally:
        remote.close()
    print(report.summary())
    return 0 if report.skipped is None else 1


def _retry_failed(pipeline: Pipeline) -> int:
    from media_assets.runner import retry_failed

    reports = retry_failed(pipeline)
    for report in reports:
        print(report.to_markdown(), flush=True)
    print(f"{sum(r.success for r in reports)} of {len(reports)} failed batch(es) now succeeded", flush=True)
    return 0 if all(r.success for r in reports) else 1


def _run_interval(pipeline: Pipeline, minutes: int, max_runs: int | None) -> int:
    from media_assets.batches import executions_today, seconds_until_tomorrow
    from media_assets.sources.configured import SourceUnavailable

    runs, failures = 0, 0
    while max_runs is None or runs < max_runs:
        if executions_today(pipeline.catalog) >= pipeline.settings.automation.max_executions_per_day:
            wait = seconds_until_tomorrow()
            print(f"daily cap of {pipeline.settings.automation.max_executions_per_day} runs reached; "
                  f"waiting {wait / 3600:.1f} h", flush=True)
        else:
            try:
                code, more = _run_next(pipeline, wait=True)  # a batch started elsewhere delays this one
            except SourceUnavailable as error:  # an unmounted share: try again next interval (alerted once)
                print(error, flush=True)
                code, more = 1, False
            runs += 1
            failures += code
            wait = 0 if more else minutes * 60  # a backlog: the next batch at once
        if max_runs is not None and runs >= max_runs:
            break
        time.sleep(wait)
    return 0 if failures == 0 else 1


def _verify(pipeline: Pipeline, sample: int | None, *, repair: bool) -> int:
    """Non-zero when a problem is left (with `repair`: one that could not be repaired)."""
    from media_assets.destinations.configured import enabled_destinations
    from media_assets.integrity import verify_library

    report = verify_library(pipeline.settings, pipeline.catalog, enabled_destinations(pipeline.settings),
                            started_by="cli", read_back_sample=sample, repair=repair)
    print(report.to_text())
    return 0 if report.ok else 1


def _become_worker(pipeline: Pipeline, name: str, celery_args: list[str]) -> int:
    """Replace this process with `dagster-celery worker start`, configured from the settings by the same
    `celery_config` the runs' executor uses, in the environment `open_pipeline` prepared (the catalog, Dagster's
    storage and DAGSTER_HOME, where dagster-celery keeps the worker's configuration)."""
    from media_assets.defs.batch.executor import worker_config
    from media_assets.storage import write_text_atomically

    if pipeline.settings.execution.executor != "celery":
        print("media-pipeline: a worker needs EXECUTOR=celery and CELERY_BROKER_URL in the settings (the same "
              "settings as the daemon's machine)", file=sys.stderr)
        return 2
    config = Path(os.environ["DAGSTER_HOME"]) / "celery-worker.yaml"
    write_text_atomically(config, worker_config(pipeline.settings), mode=0o600)  # the broker's URL may hold a password
    bin_dir = Path(sys.executable).parent
    os.environ["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])  # it starts `celery`
    pipeline.close()
    sys.stdout.flush()
    os.execv(bin_dir / "dagster-celery", ["dagster-celery", "worker", "start", "-A", "dagster_celery.app",
                                          "-y", str(config), "-n", name, "--", *celery_args])


def _status_text(pipeline: Pipeline) -> str:
    from media_assets.catalog.icloud import count_deleted_at_source, count_in_library
    from media_assets.catalog.phase_totals import phase_totals
    from media_assets.defs.status import status_data, status_lines
    from media_assets.settings import GB, STORAGE_FOLDERS
    from media_assets.storage import free_bytes

    catalog, settings = pipeline.catalog, pipeline.settings
    lines = ["Files by state:"]
    counts = catalog.count_by_state()
    lines += [f"  {state:<12} {n}" for state, n in sorted(counts.items())] or ["  (no files yet)"]
    if in_icloud := count_in_library(catalog):
        lines.append(f"Already in iCloud (taken from its library, not uploaded back): {in_icloud}")
    if deleted := count_deleted_at_source(catalog):
        lines.append(f"Deleted at source (gone from iCloud Photos, local copies kept): {deleted}")
    lines.append("Phase timings of the last batches:")
    for batch in catalog.recent_batches(5):
        phases = sorted(catalog.latest_phase_runs(batch.id), key=lambda p: p.started_at)
        # Summed over every run of each phase, so a recovered batch does not read "download 0.0s".
        timing = ", ".join(f"{p.phase} {phase_totals(catalog, batch.id, p.phase).seconds:.1f}s" for p in phases)
        lines.append(f"  {batch.id}  {batch.status:<9}  {timing}")
    lines += status_lines(status_data(pipeline))
    media_root = settings.storage.media_root
    lines.append(f"Storage ({media_root}, {free_bytes(media_root) / GB:.1f} GB free; "
                 "as catalogued, `verify --full` checks it):")
    stored = catalog.storage_bytes()
    lines += [f"  {name:<11} {stored.get(name, 0) / 1e6:10.1f} MB" for name in STORAGE_FOLDERS]
    lines += _mirror_status_lines(pipeline)
    return "\n".join(lines)


def _status_json(pipeline: Pipeline) -> str:
    import dataclasses
    import json

    from media_assets.catalog.icloud import count_deleted_at_source, count_in_library
    from media_assets.defs.status import status_data
    from media_assets.mirror import mirror_status

    data = status_data(pipeline)
    data["already_in_icloud"] = count_in_library(pipeline.catalog)
    data["deleted_at_source"] = count_deleted_at_source(pipeline.catalog)
    data["storage_bytes"] = pipeline.catalog.storage_bytes()
    data["mirror"] = dataclasses.asdict(mirror_status(pipeline.catalog))
    return json.dumps(data, indent=2, default=str)


def _mirror_status_lines(pipeline: Pipeline) -> list[str]:
    from media_assets.mirror import MirrorConfig, mirror_status
    from media_assets.mirror.status import status_lines

    return status_lines(mirror_status(pipeline.catalog), enabled=MirrorConfig.from_settings(pipeline.settings).enabled)


if __name__ == "__main__":
    sys.exit(main())
