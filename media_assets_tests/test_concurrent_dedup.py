"""Two batches deduplicating at the same moment, each holding one copy of the same photo: one copy is kept and the
other recorded as its duplicate, never both kept (the decisions take the catalog's deduplication lock). Two
batches scanning at the same moment share the new files without either ending short."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import suppress
from functools import partial
from pathlib import Path

import pytest

import media_assets.phases.deduplication as deduplication
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FileState
from media_assets.media import sample_library as sample
from media_assets.phases.common import PhaseContext, PhaseOutcome, run_phase
from media_assets.phases.download import download
from media_assets.sources.base import SourceItem
from media_assets.sources.folder import FolderSource
from media_assets_tests.conftest import MakePipeline


def _download_from(folder: Path, ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    _download_from_source(FolderSource([folder]), ctx, outcome)


def _download_from_source(source: FolderSource, ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    download(ctx, outcome, {"folder": source})


def test_two_concurrent_batches_never_keep_two_copies_of_one_photo(make_pipeline: MakePipeline,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    photo = sample.photo_bytes(size=(320, 240), seed=21)
    batches = {"b1": library / "phone", "b2": library / "camera"}
    for batch_id, folder in batches.items():
        folder.mkdir()
        (folder / f"copy-{batch_id}.jpg").write_bytes(photo)
        pipeline.catalog.create_batch(batch_id)
        ctx = PhaseContext(batch_id=batch_id, settings=pipeline.settings, catalog=pipeline.catalog)
        run_phase("download", ctx, partial(_download_from, folder))

    # Each batch, once it decided, waits (a while) for the other to have decided too: without a lock both
    # decide before either records its decision.
    real_decide = deduplication.decide
    decided = threading.Barrier(2, timeout=5)

    def decide_then_wait_for_the_other(*args, **kwargs):
        decisions = real_decide(*args, **kwargs)
        with suppress(threading.BrokenBarrierError):
            decided.wait()
        return decisions

    monkeypatch.setattr(deduplication, "decide", decide_then_wait_for_the_other)
    errors: list[BaseException] = []

    def deduplicate(batch_id: str) -> None:
        catalog = Catalog(pipeline.catalog.conninfo)
        try:
            ctx = PhaseContext(batch_id=batch_id, settings=pipeline.settings, catalog=catalog)
            run_phase("deduplication", ctx, deduplication.deduplicate)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            catalog.close()

    threads = [threading.Thread(target=deduplicate, args=(batch_id,)) for batch_id in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    states = sorted(f.state.value for batch_id in batches
                    for f in pipeline.catalog.iter_files(batch_id, *FileState))
    assert states == [FileState.DUPLICATE.value, FileState.UNIQUE.value], "one copy kept, the other a duplicate"


def test_a_file_another_batch_registered_meanwhile_leaves_room_for_the_next(make_pipeline: MakePipeline) -> None:
    """Two batches scanning at the same moment both see a file as new; the one that registers it second does not
    count it against its limits (BATCH_MAX_FILES), so it takes the next new files instead of ending short."""
    pipeline = make_pipeline(BATCH_MAX_FILES="2")
    library = pipeline.settings.sources.folder_source_paths[0]
    for n in range(4):
        sample.make_photo(library / f"IMG_{n}.jpg", seed=n, size=(64, 48))
    catalog = pipeline.catalog
    for batch_id in ("b1", "b2"):
        catalog.create_batch(batch_id)

    class ScannedAtTheSameMoment(FolderSource):
        """b1 registers IMG_0 just after b2's first walk listed it, before b2 registers what it chose."""

        scans = 0

        def scan(self) -> Iterator[SourceItem]:
            self.scans += 1
            items = list(super().scan())
            yield from items
            if self.scans == 1:
                first = next(item for item in items if item.original_name == "IMG_0.jpg")
                catalog.register_file("b1", source=first.source, source_id=first.source_id,
                                      source_version=first.version, original_name=first.original_name)

    source = ScannedAtTheSameMoment([library])
    ctx = PhaseContext(batch_id="b2", settings=pipeline.settings, catalog=catalog)
    run_phase("download", ctx, partial(_download_from_source, source))
    assert sorted(f.original_name for f in catalog.iter_files("b2", *FileState)) == ["IMG_1.jpg", "IMG_2.jpg"]
