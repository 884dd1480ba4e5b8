"""Verification proves a kept or folder-destination copy by its identity (inode, size, mtime) recorded when its
bytes were hashed as written, and re-hashes only a random VERIFY_SAMPLE of each batch and place, every copy whose
identity changed, and every copy without one (revision 0016)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command

from media_assets.catalog.migrate import alembic_config
from media_assets.catalog.states import FileState
from media_assets.defs.batch import assets
from media_assets.defs.instance import Pipeline
from media_assets.destinations import folder
from media_assets.media import hashing
from media_assets.media.sample_library import make_photo
from media_assets.phases import common, pruning, verification
from media_assets.phases.common import PhaseContext
from media_assets.runner import run_batch
from media_assets.storage import copy_identity
from media_assets_tests.conftest import MakePipeline, present

PHOTOS = 5


def _pipeline(make_pipeline: MakePipeline, tmp_path: Path, sample: int) -> Pipeline:
    pipeline = make_pipeline(ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR=str(tmp_path / "pixel"),
                             VERIFY_SAMPLE=str(sample))
    for n in range(PHOTOS):
        make_photo(pipeline.settings.sources.folder_source_paths[0] / f"IMG_{n}.jpg", size=(64, 48), seed=n)
    return pipeline


def _count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths SHA-256'd from now on, by whichever module hashes them (the old code hashed in more places)."""
    hashed: list[Path] = []

    def counting(path: Path) -> str:
        hashed.append(Path(path))
        return hashing.sha256_file(path)

    from media_assets import storage
    for module in (storage, folder, verification, pruning, common):
        monkeypatch.setattr(module, "sha256_file", counting, raising=False)
    return hashed


def _before_verification(monkeypatch: pytest.MonkeyPatch, tamper: Callable[[PhaseContext], None]) -> None:
    """Run `tamper` once the batch is sorted, as verification starts."""
    def verify(ctx: PhaseContext, *args: Any, **kwargs: Any) -> None:
        tamper(ctx)
        verification.verify(ctx, *args, **kwargs)

    monkeypatch.setattr(assets, "verify", verify)


def _places(pipeline: Pipeline) -> list[Path]:
    settings = pipeline.settings
    return [settings.storage_dir("uploaded"), settings.destinations.local_destination_dir,
            present(settings.destinations.pixel_sync_dir)]


def _hashed_per_place(pipeline: Pipeline, hashed: list[Path]) -> list[int]:
    return [sum(1 for path in hashed if path.is_relative_to(place)) for place in _places(pipeline)]


@pytest.mark.parametrize("sample", [0, 2, 100])
def test_an_untouched_batch_re_hashes_only_the_sample_of_each_place(make_pipeline: MakePipeline, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    sample: int) -> None:
    pipeline = _pipeline(make_pipeline, tmp_path, sample)
    hashed = _count_hashes(monkeypatch)

    report = run_batch(pipeline)

    assert report.success, report.error
    # the kept copy, the local folder's and the Pixel folder's: the sample each, pruning none
    assert _hashed_per_place(pipeline, hashed) == [min(sample, PHOTOS)] * 3
    files = list(pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED))
    assert len(files) == PHOTOS
    for file in files:
        assert file.kept_identity == copy_identity(pipeline.settings.storage.media_root / present(file.sorted_path))
        for upload in pipeline.catalog.uploads_of(file.id):
            assert upload.copy_identity is not None and upload.verified_at is not None


def _touch_later(path: Path) -> None:
    """A later mtime than the copy's own, as any write a person makes after the pipeline's would leave."""
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))


def test_a_destination_copy_rewritten_with_other_bytes_fails_verification(make_pipeline: MakePipeline,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = _pipeline(make_pipeline, tmp_path, 0)
    local = pipeline.settings.destinations.local_destination_dir

    def rewrite(ctx: PhaseContext) -> None:  # same size, one byte other, written later
        copy = local / "IMG_3.jpg"
        data = bytearray(copy.read_bytes())
        data[-3] ^= 0xFF
        copy.write_bytes(bytes(data))
        _touch_later(copy)

    _before_verification(monkeypatch, rewrite)
    report = run_batch(pipeline)

    assert not report.success
    assert "IMG_3.jpg: not found intact at local" in (report.error or "")
    [left] = pipeline.catalog.iter_files(report.batch_id, FileState.SORTED)
    assert left.original_name == "IMG_3.jpg"


def test_a_copy_written_again_with_the_same_bytes_is_re_hashed_and_passes(make_pipeline: MakePipeline,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = _pipeline(make_pipeline, tmp_path, 0)
    pixel = present(pipeline.settings.destinations.pixel_sync_dir)
    copied_back = pixel / "IMG_1.jpg"

    def copy_back(ctx: PhaseContext) -> None:  # a person copied it back from their phone: a new file
        data = copied_back.read_bytes()
        copied_back.unlink()
        copied_back.write_bytes(data)
        _touch_later(copied_back)

    _before_verification(monkeypatch, copy_back)
    hashed = _count_hashes(monkeypatch)
    report = run_batch(pipeline)

    assert report.success, report.error
    assert _hashed_per_place(pipeline, hashed) == [0, 0, 1] and hashed[-1] == copied_back


def test_copies_without_an_identity_are_re_hashed(make_pipeline: MakePipeline, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows written before revision 0016 have none: verification checks them as before."""
    pipeline = _pipeline(make_pipeline, tmp_path, 0)

    def forget_identities(ctx: PhaseContext) -> None:
        ctx.catalog.conn.execute("UPDATE media_files SET kept_identity = NULL")
        ctx.catalog.conn.execute("UPDATE uploads SET copy_identity = NULL")

    _before_verification(monkeypatch, forget_identities)
    hashed = _count_hashes(monkeypatch)
    report = run_batch(pipeline)

    assert report.success, report.error
    assert _hashed_per_place(pipeline, hashed) == [PHOTOS] * 3


def test_the_identity_migration_adds_and_drops_its_columns(catalog_conninfo: str) -> None:
    config = alembic_config(catalog_conninfo)

    def columns() -> set[tuple[str, str]]:
        with psycopg.connect(catalog_conninfo) as conn:
            rows = conn.execute("SELECT table_name, column_name FROM information_schema.columns"
                                " WHERE table_schema = current_schema() AND column_name LIKE '%identity'").fetchall()
        return {(table, column) for table, column in rows}

    assert columns() == {("media_files", "kept_identity"), ("uploads", "copy_identity")}
    command.downgrade(config, "0015")
    assert columns() == set()
    command.upgrade(config, "head")
    assert columns() == {("media_files", "kept_identity"), ("uploads", "copy_identity")}
