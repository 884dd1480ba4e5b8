"""Group commit: file preparation, sorting, verification and pruning work on a chunk of files, make it durable
once and record it in ONE catalog transaction, instead of a transaction (a WAL flush) and an fsync per file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from media_assets.catalog.connection import Connection
from media_assets.catalog.sidecars import sidecars_of
from media_assets.catalog.states import FileState
from media_assets.media.sample_library import make_photo
from media_assets.phases import common
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline


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
