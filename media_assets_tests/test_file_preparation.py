"""File preparation renames compression's own output into `bridge/` (no second copy) and copies an original,
and records the staged copy's identity (the kept copy's, once sorting renames it)."""

from __future__ import annotations

from media_assets.catalog.states import FileState
from media_assets.destinations.configured import enabled_destinations
from media_assets.integrity import check_everything
from media_assets.media import sample_library as sample
from media_assets.phases.common import run_phase
from media_assets.phases.compression import compress
from media_assets.phases.file_preparation import prepare_files
from media_assets.runner import run_batch
from media_assets.storage import copy_identity
from media_assets_tests.conftest import MakePipeline, present
from media_assets_tests.first_phases import download_and_deduplicate


def test_compressed_output_is_renamed_and_an_original_copied(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    sample.write_sample_library(pipeline.settings.sources.folder_source_paths[0])
    ctx = download_and_deduplicate(pipeline, "b1")
    run_phase("compression", ctx, compress)
    inodes = {file.id: ctx.path(present(file.output_path)).stat().st_ino
              for file in pipeline.catalog.iter_files("b1", FileState.COMPRESSED)}

    run_phase("file_preparation", ctx, prepare_files)

    renamed = copied = 0
    for file in pipeline.catalog.iter_files("b1", FileState.STAGED):
        staged = ctx.path(present(file.staged_path)).stat()
        # recorded when its bytes were known (written and hashed, or compression's output renamed): the kept copy
        assert file.kept_identity == copy_identity(ctx.path(present(file.staged_path)))
        if file.output_path != file.original_path:
            renamed += 1
            assert staged.st_ino == inodes[file.id], "the very file compression wrote"
            assert not ctx.path(present(file.output_path)).exists()
            assert file.output_pruned_at is not None
        else:
            copied += 1
            assert staged.st_ino != inodes[file.id], "an original shares no bytes with its staged copy"
            assert ctx.path(present(file.original_path)).is_file()
            assert file.output_pruned_at is None
    assert renamed and copied

    report = run_batch(pipeline, "b1")
    assert report.success, report.error
    integrity = check_everything(pipeline.settings, pipeline.catalog, enabled_destinations(pipeline.settings))
    assert integrity.ok, integrity.to_text()
