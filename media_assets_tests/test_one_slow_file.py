"""One slow file (a HEIC decoded in full, a video: ~0.5 s, against a millisecond or two for a JPEG) does not hold
the other workers idle: download and deduplication keep enough files in flight that the last of twenty is worked
on while the first still is. The jobs here make the first file wait for the last one (and give up after a while:
with a few files in flight only, the last one is never started while the first is waited for)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import media_assets.phases.deduplication as deduplication
import media_assets.phases.download as download_phase
from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.media.examine import Dating, Examined, examine
from media_assets.media.perceptual import Fingerprint, fingerprint
from media_assets.phases.common import PhaseContext, run_phase
from media_assets.sources.configured import enabled_sources
from media_assets_tests.conftest import MakePipeline

FILES = 20
GIVE_UP_S = 30.0


def _first_waits_for_the_last(path: Path) -> bool:
    """In a worker: the last file's job marks that it ran; the first one's waits for the mark (False: in vain)."""
    mark = path.parent / "the-last-file-ran"
    if path.name.endswith("last.jpg"):
        mark.touch()
    elif path.name.endswith("first.jpg"):
        deadline = time.monotonic() + GIVE_UP_S
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return mark.exists()
    return True


def examine_after_the_last(path: Path, dating: Dating | None) -> Examined:
    if not _first_waits_for_the_last(path):
        return Examined(None, refusal="the last file was not examined while the first one was")
    return examine(path, dating)


def fingerprint_after_the_last(path: Path, media_type: str | None) -> Fingerprint:
    if not _first_waits_for_the_last(path):
        return Fingerprint(error="the last file was not fingerprinted while the first one was")
    return fingerprint(path, media_type)


def _library(make_pipeline: MakePipeline) -> Pipeline:
    pipeline = make_pipeline(DEDUP_WORKERS="2")
    library = pipeline.settings.sources.folder_source_paths[0]
    names = ["a-first.jpg", *(f"m-{n:02d}.jpg" for n in range(FILES - 2)), "z-last.jpg"]
    for n, name in enumerate(names):
        sample.make_photo(library / name, size=(64, 48), seed=n)
    pipeline.catalog.create_batch("b1")
    return pipeline


def test_download_examines_the_last_file_while_the_first_is_still_examined(make_pipeline: MakePipeline,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = _library(make_pipeline)
    monkeypatch.setattr(download_phase, "available_cores", lambda: 2)
    monkeypatch.setattr(download_phase, "examine", examine_after_the_last)
    ctx = PhaseContext(batch_id="b1", settings=pipeline.settings, catalog=pipeline.catalog)
    run_phase("download", ctx, lambda c, o: download_phase.download(c, o, enabled_sources(pipeline.settings)))

    files = {f.original_name: f for f in pipeline.catalog.iter_files("b1", *FileState)}
    assert files["a-first.jpg"].state is FileState.DOWNLOADED, files["a-first.jpg"].error
    assert {f.state for f in files.values()} == {FileState.DOWNLOADED} and len(files) == FILES


def test_deduplication_fingerprints_the_last_file_while_the_first_is_still_fingerprinted(
        make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = _library(make_pipeline)
    ctx = PhaseContext(batch_id="b1", settings=pipeline.settings, catalog=pipeline.catalog)
    run_phase("download", ctx, lambda c, o: download_phase.download(c, o, enabled_sources(pipeline.settings)))
    monkeypatch.setattr(deduplication, "fingerprint", fingerprint_after_the_last)
    outcome = run_phase("deduplication", ctx, deduplication.deduplicate)

    assert outcome.counts["no_fingerprint"] == 0, "the first file waited in vain for the last one"
    assert outcome.counts["unique"] == FILES
