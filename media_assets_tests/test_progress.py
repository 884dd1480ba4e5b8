"""Every long phase says how far it is (files done, files/s, ETA) in the run log, and `run` on a terminal shows
a progress bar."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from dagster import DagsterEventType, EventRecordsFilter

from media_assets.cli import ProgressBar
from media_assets.defs.instance import Pipeline
from media_assets.destinations.folder import FolderDestination
from media_assets.media import sample_library as sample
from media_assets.phases import common, compression, download, verification
from media_assets.phases.common import Progress
from media_assets.phases.workers import Workers
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline

R = TypeVar("R")
LINE = re.compile(r"(\w+): (\d+)/(\d+) files, [\d.]+ files/s, ETA \d")


def test_progress_lines_appear_in_the_dagster_run_log_of_a_long_phase(make_pipeline: MakePipeline,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "PROGRESS_SECONDS", 0.0)  # every file counts as "a while" here
    pipeline = make_pipeline()
    for n in range(3):
        sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / f"{n}.jpg", seed=n, size=(96, 72))
    assert run_batch(pipeline).success
    [run] = pipeline.instance.get_runs()
    messages = [record.event_log_entry.user_message for record in pipeline.instance.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.ENGINE_EVENT)) if record.run_id == run.run_id]
    messages += [entry.user_message for entry in pipeline.instance.all_logs(run.run_id)]
    progress = {(m.group(1), m.group(2), m.group(3)) for text in messages if (m := LINE.search(text))}
    for phase in ("download", "deduplication", "compression", "file_preparation", "icloud_upload", "sorting",
                  "verification"):
        assert (phase, "3", "3") in progress, (phase, sorted(progress))


def test_the_progress_bar_follows_each_phase() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    download = Progress("download", None, total=2)
    for _ in range(2):
        download.done += 1
        bar(download)
    bar(Progress("sorting", None, total=5, done=1))
    bar.close()
    text = out.getvalue()
    assert "download" in text and "2/2" in text and "sorting" in text and "1/5" in text


def _run_log(pipeline: Pipeline) -> list[str]:
    [run] = pipeline.instance.get_runs()
    return [entry.user_message for entry in pipeline.instance.all_logs(run.run_id)]


def _held_until_logged(pipeline: Pipeline, pattern: str, work: Callable[..., R]) -> Callable[..., R]:
    """`work` that first waits (polling the running batch's Dagster log) until a line matching `pattern` is
    there: one file's step that lasts until the heartbeat has spoken of it. It gives up after a minute, so a
    missing line fails the test instead of hanging it."""
    def held(*args: Any, **kwargs: Any) -> R:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(re.search(pattern, m) for m in _run_log(pipeline)):
            time.sleep(0.01)
        return work(*args, **kwargs)
    return held


def _heartbeat_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.endswith(" heartbeat")]


@pytest.fixture
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(common, "HEARTBEAT_SECONDS", 0.01)


def test_a_file_that_takes_longer_than_the_progress_interval_gives_still_on_lines(
        make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch, fast_heartbeat: None) -> None:
    """One slow file (a long video transcode, here a photo held until the line is there) still gives a line: the
    phase's heartbeat says which file the workers are on and for how long."""
    pipeline = make_pipeline()
    line = r"compression: still on slow\.jpg, \d+ s; 0/1 files, [\d.]+ files/s, ETA unknown"
    monkeypatch.setattr(compression, "compress_photo", _held_until_logged(pipeline, line, compression.compress_photo))
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "slow.jpg", seed=1, size=(96, 72))
    assert run_batch(pipeline).success
    assert any(re.search(line, m) for m in _run_log(pipeline)), _run_log(pipeline)
    assert _heartbeat_threads() == []


@pytest.mark.parametrize(("phase", "owner", "slow_part"), [
    ("download", download, "bring_item"),  # a folder copy or an iCloud download
    ("icloud_upload", FolderDestination, "upload"),  # the local destination's copy
    ("verification", verification, "holds_checksum"),  # checking the kept copy (a 4 GB file in the sample)
])
def test_one_long_file_in_the_phases_own_thread_gives_still_on_lines(
        make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch, fast_heartbeat: None,
        phase: str, owner: Any, slow_part: str) -> None:
    """The phases that work on each file in their own thread are busy with it (a 4 GB download, upload or hash)
    and cannot speak meanwhile: their heartbeat thread names the file, and ends with the phase."""
    pipeline = make_pipeline()
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "big.jpg", seed=1, size=(96, 72))
    line = rf"{phase}: still on big\.jpg, \d+ s; 0/1 files, [\d.]+ files/s, ETA unknown"
    monkeypatch.setattr(owner, slow_part, _held_until_logged(pipeline, line, getattr(owner, slow_part)))
    assert run_batch(pipeline).success
    assert any(re.search(line, m) for m in _run_log(pipeline)), _run_log(pipeline)
    assert _heartbeat_threads() == []


def test_deduplication_says_how_far_its_decisions_are(make_pipeline: MakePipeline,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "PROGRESS_SECONDS", 0.0)
    pipeline = make_pipeline()
    for n in range(3):
        sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / f"{n}.jpg", seed=n, size=(96, 72))
    assert run_batch(pipeline).success
    messages = _run_log(pipeline)
    assert any("deduplication: deciding on 3 fingerprinted files" in m for m in messages), messages
    assert any(re.search(r"deduplication decisions: 3/3 files, [\d.]+ files/s, ETA \d", m) for m in messages), messages


@pytest.mark.parametrize("count", [1, 2])
def test_the_workers_are_working_on_the_file_they_wait_for(count: int) -> None:
    entered: list[str] = []
    on: list[str] = []

    @contextmanager
    def working_on(what: str) -> Iterator[None]:
        entered.append(what)
        on.append(what)
        yield
        on.remove(what)

    with Workers(count, working_on=working_on) as pool:
        results = list(pool.map(time.sleep, ((n, (0.0,)) for n in range(2)), name=lambda n: f"file {n}"))
    assert [key for key, _ in results] == [0, 1]
    assert entered == ["file 0", "file 1"] and on == []


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.spoke = threading.Event()

    def info(self, line: str) -> None:
        self.lines.append(line)
        self.spoke.set()


def test_a_heartbeat_line_waits_for_the_progress_interval_and_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    log = RecordingLog()
    lines = log.lines
    progress = Progress("compression", log, total=4, done=1)
    monkeypatch.setattr(common, "PROGRESS_SECONDS", 3600.0)
    with progress.working_on("IMG_1.mov"):
        progress.beat()
    assert lines == []  # a line was just written (the phase started)
    monkeypatch.setattr(common, "PROGRESS_SECONDS", 0.0)
    with progress.working_on("IMG_1.mov"):
        progress.beat()
        with progress.working_on("IMG_1.aae"):
            progress.beat()
        progress.beat()
    progress.beat()
    assert [line.split(", ")[0] for line in lines] == [
        "compression: still on IMG_1.mov", "compression: still on IMG_1.aae", "compression: still on IMG_1.mov",
        "compression: 1/4 files"], lines
    assert re.fullmatch(r"compression: still on IMG_1\.mov, \d+ s; 1/4 files, [\d.]+ files/s, ETA \d+ s", lines[0])


def test_the_heartbeat_thread_speaks_while_the_phase_is_busy_and_ends_with_it(fast_heartbeat: None) -> None:
    log = RecordingLog()
    ctx = type("Ctx", (), {"progress": Progress("download", log, total=1)})()
    with common.heartbeat(ctx), ctx.progress.working_on("IMG_2.mov"):  # the phase's thread is busy with one file
        assert log.spoke.wait(60)
        assert [thread.name for thread in _heartbeat_threads()] == ["download heartbeat"]
    assert _heartbeat_threads() == []  # joined: no line after the phase's own
    assert log.lines[0].startswith("download: still on IMG_2.mov, "), log.lines


def test_the_progress_bar_keeps_its_clock_running_while_one_file_takes_long() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    progress = Progress("upload", None, total=2, done=1)
    bar(progress)
    drawn = out.getvalue()
    bar(progress)  # a heartbeat: no file done since
    bar.close()
    assert out.getvalue().startswith(drawn) and len(out.getvalue()) > len(drawn)
