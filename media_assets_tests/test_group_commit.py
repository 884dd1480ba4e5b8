"""Group commit: file preparation, sorting, verification and pruning work on a chunk of files, make it durable
once and record it in ONE catalog transaction, instead of a transaction (a WAL flush) and an fsync per file."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from media_assets.catalog.connection import Connection
from media_assets.catalog.repository import Catalog
from media_assets.catalog.sidecars import sidecars_of
from media_assets.catalog.states import FileState, IllegalTransition
from media_assets.media.sample_library import make_photo
from media_assets.phases import common
from media_assets.phases.common import Chunk, Progress
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline
from media_assets_tests.test_catalog import Files, history


def _transactions(conn: Connection, batch_id: str, state: FileState) -> tuple[int, int]:
    """(moves into `state`, distinct transactions that wrote them): rows written by one transaction share xmin."""
    row = conn.execute(
        "SELECT count(*) AS moves, count(DISTINCT c.xmin::text) AS transactions FROM state_changes c"
        " JOIN media_files f ON f.id = c.file_id WHERE f.batch_id = %s AND c.to_state = %s",
        (batch_id, state.value)).fetchone()
    assert row is not None
    return row["moves"], row["transactions"]


def test_each_phase_records_a_chunk_in_one_transaction(make_pipeline: MakePipeline, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path / "library"
    for n in range(7):
        make_photo(library / f"IMG_{n}.jpg", size=(64, 48), seed=n)
    (library / "IMG_0.AAE").write_text("<plist/>")
    pipeline = make_pipeline(ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR=str(tmp_path / "pixel"))
    syncs: list[list[Path]] = []
    real_make_durable = common.make_durable

    def make_durable(paths: Sequence[Path]) -> None:
        syncs.append(list(paths))
        real_make_durable(paths)

    monkeypatch.setattr(common, "make_durable", make_durable)

    report = run_batch(pipeline)

    assert report.success, report.error
    conn = pipeline.catalog.conn
    for state in (FileState.STAGED, FileState.SORTED, FileState.VERIFIED):
        assert _transactions(conn, report.batch_id, state) == (7, 1), state
    # The uploads were marked verified in the transaction that verified their files.
    verified = conn.execute(
        "SELECT count(DISTINCT u.xmin::text) AS n FROM uploads u JOIN media_files f ON f.id = u.file_id"
        " WHERE f.batch_id = %s AND u.verified_at IS NOT NULL", (report.batch_id,)).fetchone()
    assert verified is not None and verified["n"] == 1
    [photo] = [f for f in pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
               if f.original_name == "IMG_0.jpg"]
    [sidecar] = sidecars_of(pipeline.catalog, photo.id)
    assert sidecar.sorted_path == str(Path(photo.sorted_path or "").with_suffix(".AAE"))
    # Staging (7 copies) and sorting (7 renames and the sidecar's) each made their chunk durable once.
    assert [len(paths) for paths in syncs if paths] == [7, 8]


def test_a_chunk_with_a_file_moved_by_someone_else_fails_whole_and_records_nothing(catalog: Catalog,
                                                                                   catalog_conninfo: str) -> None:
    """Two workers never both move a file: when one file of a chunk is no longer in the state the chunk read,
    the whole chunk's transaction fails, naming the file, and none of its files nor its other changes (the
    pruned marks gathered with it) are recorded."""
    files = Files(catalog)
    chunk_files = [files.at(FileState.COMPRESSED) for _ in range(3)]
    other_worker = Catalog(catalog_conninfo)
    try:
        taken = other_worker.move(other_worker.get_file(chunk_files[1].id), FileState.STAGED,
                                  staged_path="bridge/other")
    finally:
        other_worker.close()
    before = {file.id: history(files.catalog, file.id) for file in chunk_files}

    chunk = Chunk(files.catalog, Progress("file_preparation", logging.getLogger("test")), chunk_files)
    pruned = chunk.gather(functools.partial(files.catalog.mark_pruned, copy="output"))
    for file in chunk:
        pruned.append(file.id)
        chunk.move(file, FileState.STAGED, staged_path=f"bridge/mine/{file.id}")
    with pytest.raises(IllegalTransition, match=f"^file {taken.id} is no longer compressed$"):
        chunk.finish()

    assert [files.catalog.get_file(file.id) for file in chunk_files] == [chunk_files[0], taken, chunk_files[2]]
    assert {file.id: history(files.catalog, file.id) for file in chunk_files} == before
