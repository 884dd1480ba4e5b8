"""Bounded disk: a verified batch gives back its intermediate copies and the originals KEEP_ORIGINALS lets go;
a failed one keeps everything a re-run needs; `verify --full` tells a pruned original from a missing one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.destinations.configured import enabled_destinations
from media_assets.disk import KeepOriginals, copies_made
from media_assets.integrity import IntegrityReport, check_everything
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch
from media_assets.settings import SettingsError
from media_assets_tests.conftest import MakePipeline, present


def _files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _bytes_in(folder: Path) -> int:
    return sum(p.stat().st_size for p in _files_in(folder))


def _check(pipeline: Pipeline) -> IntegrityReport:
    return check_everything(pipeline.settings, pipeline.catalog, enabled_destinations(pipeline.settings))


def _verification_counts(pipeline: Pipeline, batch_id: str) -> dict[str, Any]:
    runs = pipeline.catalog.latest_phase_runs(batch_id)
    return present(next(run.details for run in runs if run.phase == "verification"))


def _pruned(pipeline: Pipeline, column: str) -> int:
    return present(pipeline.catalog.conn.execute(
        f"SELECT count(*) AS n FROM media_files WHERE {column} IS NOT NULL").fetchone())["n"]


def test_a_verified_batch_from_a_folder_keeps_only_the_kept_copies(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    sample.write_sample_library(pipeline.settings.sources.folder_source_paths[0])
    report = run_batch(pipeline)
    assert report.success, report.error
    storage = pipeline.settings.storage_dir
    compressed = [f for f in pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
                  if f.output_path != f.original_path]
    assert compressed, "the sample library has photos worth re-encoding"
    for folder in ("compressed", "bridge", "originals"):
        assert _files_in(storage(folder)) == [], folder
    assert _pruned(pipeline, "output_pruned_at") == len(compressed)
    kept = sum(p.stat().st_size for p in _files_in(storage("uploaded")))
    on_disk = sum(p.stat().st_size for p in _files_in(pipeline.settings.storage.media_root))
    assert on_disk - kept == sum(p.stat().st_size for p in _files_in(storage("quarantine")))
    # `status` reads the same from the catalog, without walking the folders.
    assert pipeline.catalog.storage_bytes() == {"uploaded": kept, "quarantine": on_disk - kept}
    verification = _verification_counts(pipeline, report.batch_id)
    assert verification["originals_removed"] == 8  # verified and duplicates
    assert 0 < verification["pruning_seconds"] <= verification["seconds"], "the removals' time, within the phase's"
    # The source was only read; verify --full counts the removed copies as pruned, not missing.
    assert (pipeline.settings.sources.folder_source_paths[0] / sample.HOLIDAY_NIGHT).is_file()
    result = _check(pipeline)
    assert result.ok, result.to_text()
    assert result.counts["pruned"] == _pruned(pipeline, "original_pruned_at") + len(compressed)


def test_a_failed_batch_keeps_its_copies_and_a_re_run_still_finishes_it(make_pipeline: MakePipeline,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline()
    sample.write_sample_library(pipeline.settings.sources.folder_source_paths[0])
    import media_assets.phases.sorting as sorting

    real_move = sorting.move_file

    def damaging_move(source: Path, target: Path, *, durable: bool = True) -> None:
        real_move(source, target, durable=durable)
        if target.name == Path(sample.HOLIDAY_DAY).name:
            target.write_bytes(b"bit rot")

    monkeypatch.setattr(sorting, "move_file", damaging_move)
    failed = run_batch(pipeline)
    assert not failed.success
    storage = pipeline.settings.storage_dir
    # Nothing was given back yet: the most the batch ever holds, and what the free-space check must have counted
    # (the original and the staged copy on MEDIA_ROOT, the local destination's copy on the same disk) -- no more,
    # or a batch that fits is refused.
    settings = pipeline.settings
    held = _bytes_in(settings.storage.media_root) + _bytes_in(settings.destinations.local_destination_dir)
    library = _bytes_in(settings.sources.folder_source_paths[0])
    assert copies_made(settings) == 3
    assert 2 * library < held <= copies_made(settings) * library
    assert _files_in(storage("originals")) and _pruned(pipeline, "original_pruned_at") == 0
    # Compression's outputs were renamed into bridge/ (recorded as such), so the only copies of them are the
    # kept copies in uploaded/ and the destinations'.
    assert _files_in(storage("compressed")) == []

    # The destination's copy lets the damaged kept copy be restored; the re-run then finishes.
    [damaged] = [f for f in pipeline.catalog.iter_files(failed.batch_id, FileState.SORTED)]
    [upload] = pipeline.catalog.uploads_of(damaged.id)
    shutil.copyfile(pipeline.settings.destinations.local_destination_dir / present(upload.remote_id),
                    pipeline.settings.storage.media_root / present(damaged.sorted_path))
    again = run_batch(pipeline, failed.batch_id)
    assert again.success, again.error
    assert _files_in(storage("compressed")) == [] and _files_in(storage("originals")) == []


def _originals(pipeline: Pipeline) -> list[Path]:
    return _files_in(pipeline.settings.storage_dir("originals"))


def _photo(pipeline: Pipeline, name: str, seed: int) -> Path:
    return sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / name, seed=seed, size=(320, 240))


def test_keep_originals_always_keeps_them_and_verify_knows_missing_from_pruned(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(KEEP_ORIGINALS="always")
    _photo(pipeline, "a.jpg", 1)
    _photo(pipeline, "b.jpg", 2)
    assert run_batch(pipeline).success
    originals = _originals(pipeline)
    assert len(originals) == 2
    originals[0].unlink()  # lost, not pruned
    result = _check(pipeline)
    assert not result.ok and result.counts["missing"] == 1 and _pruned(pipeline, "original_pruned_at") == 0
    assert "original" in result.problems[0]


def test_keep_originals_until_verified(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(KEEP_ORIGINALS="until_verified")
    _photo(pipeline, "a.jpg", 1)
    assert run_batch(pipeline).success
    assert _originals(pipeline) == []
    assert _pruned(pipeline, "original_pruned_at") == 1


def test_keep_originals_for_days_prunes_later_and_never_a_file_the_folder_no_longer_holds(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(KEEP_ORIGINALS="days:3")
    _photo(pipeline, "a.jpg", 1)
    changed = _photo(pipeline, "b.jpg", 2)
    first = run_batch(pipeline)
    assert first.success and len(_originals(pipeline)) == 2
    # Four days later; meanwhile b.jpg was edited in the folder (the catalog's version of it is gone there).
    pipeline.catalog.conn.execute("UPDATE batches SET finished_at = finished_at - interval '4 days' WHERE id = %s",
                                  (first.batch_id,))
    os.utime(changed, (1_000_000_000, 1_000_000_000))
    _photo(pipeline, "c.jpg", 3)
    second = run_batch(pipeline)
    assert second.success
    left = {p.name.split("-", 1)[1] for p in _originals(pipeline)}
    assert left == {"b.jpg", "c.jpg"}  # a.jpg's time is up; b's old version is only ours; c is 0 days old
    assert _verification_counts(pipeline, second.batch_id)["originals_kept_source_changed"] == 1


def test_keep_originals_defaults_per_source_and_refuses_nonsense(make_pipeline: MakePipeline) -> None:
    default = KeepOriginals.from_settings(make_pipeline().settings)
    assert default.rule_for("folder") == "until_verified" and default.rule_for("icloud") == "always"
    assert default.keep_for("icloud") is None
    days = KeepOriginals.from_settings(make_pipeline(KEEP_ORIGINALS="days:7").settings)
    assert present(days.keep_for("icloud")).days == 7 == present(days.keep_for("folder")).days
    with pytest.raises(SettingsError, match="KEEP_ORIGINALS"):
        KeepOriginals.from_settings(make_pipeline(KEEP_ORIGINALS="sometimes").settings)


def test_sidecars_left_beside_a_pruned_original_go_with_it(make_pipeline: MakePipeline) -> None:
    """A duplicate's sidecar is never sorted: it stays beside the duplicate's original in `originals/` until
    the original is pruned, then goes with it, and `verify --full` counts it as pruned, not missing."""
    pipeline = make_pipeline(KEEP_ORIGINALS="until_verified")
    folder = pipeline.settings.sources.folder_source_paths[0]
    photo = _photo(pipeline, "IMG_1.jpg", 1)
    (folder / "IMG_1.AAE").write_text("<plist>crop</plist>")
    (folder / "copy").mkdir()
    shutil.copyfile(photo, folder / "copy" / "IMG_1.jpg")
    (folder / "copy" / "IMG_1.AAE").write_text("<plist>other crop</plist>")
    report = run_batch(pipeline)
    assert report.success, report.error
    assert len(list(pipeline.catalog.iter_files(report.batch_id, FileState.DUPLICATE))) == 1
    assert _originals(pipeline) == []
    result = _check(pipeline)
    assert result.ok, result.to_text()
    # both originals, the kept photo's compressed copy if it had one, and the duplicate's sidecar
    pruned = _pruned(pipeline, "original_pruned_at") + _pruned(pipeline, "output_pruned_at")
    assert result.counts["pruned"] == pruned + 1
    assert _verification_counts(pipeline, report.batch_id)["sidecars_removed"] == 1
    kept_sidecars = [p.name for p in _files_in(pipeline.settings.storage_dir("uploaded")) if p.suffix == ".AAE"]
    assert len(kept_sidecars) == 1  # the kept photo's, beside its kept copy
