"""Every long phase says how far it is (files done, files/s, ETA) in the run log, and `run` on a terminal shows
a progress bar."""

from __future__ import annotations

import io
import re
import time

import pytest
from dagster import DagsterEventType, EventRecordsFilter

from media_assets.cli import ProgressBar
from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.phases import common, compression, workers
from media_assets.phases.common import Progress
from media_assets.phases.workers import Workers
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline

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


def test_a_file_that_takes_longer_than_the_progress_interval_gives_still_on_lines(
        make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """One slow file (a long video transcode, here a photo made slow) still gives a line: the phase's waiting
    loop says which file it is on and for how long."""
    monkeypatch.setattr(common, "PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(workers, "WAIT_POLL_SECONDS", 0.02)
    real = compression.compress_photo

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(compression, "compress_photo", slow)
    pipeline = make_pipeline()
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "slow.jpg", seed=1, size=(96, 72))
    assert run_batch(pipeline).success
    assert any(re.search(r"compression: still on slow\.jpg, \d+ s; 0/1 files, [\d.]+ files/s, ETA unknown", m)
               for m in _run_log(pipeline)), _run_log(pipeline)


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
def test_the_workers_say_which_file_they_wait_for(count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "WAIT_POLL_SECONDS", 0.02)
    waited: list[str] = []
    with Workers(count, on_wait=waited.append) as pool:
        results = list(pool.map(time.sleep, ((n, (0.5 if n == 1 else 0,)) for n in range(2)),
                                name=lambda n: f"file {n}"))
    assert [key for key, _ in results] == [0, 1]
    assert "file 1" in waited


def test_a_heartbeat_line_waits_for_the_progress_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    log = type("Log", (), {"info": staticmethod(lines.append)})()
    progress = Progress("compression", log, total=4, done=1)
    monkeypatch.setattr(common, "PROGRESS_SECONDS", 3600.0)
    progress.waiting("IMG_1.mov")
    assert lines == []  # a line was just written (the phase started)
    monkeypatch.setattr(common, "PROGRESS_SECONDS", 0.0)
    progress.waiting("IMG_1.mov")
    assert len(lines) == 1 and re.fullmatch(r"compression: still on IMG_1\.mov, \d+ s; 1/4 files, [\d.]+ files/s, "
                                            r"ETA \d+ s", lines[0]), lines
