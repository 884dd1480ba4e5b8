"""Every long phase says how far it is (files done, files/s, ETA) in the run log, and `run` on a terminal shows
a progress bar."""

from __future__ import annotations

import io
import re

import pytest
from dagster import DagsterEventType, EventRecordsFilter

from media_assets.cli import ProgressBar
from media_assets.media import sample_library as sample
from media_assets.phases import common
from media_assets.phases.common import Progress
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
