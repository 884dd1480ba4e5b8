"""EXECUTOR=multiprocess end to end: a batch run of the sample library, executed as the daemon's run workers
execute one (each phase in a step process of its own), verifies every file it keeps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster._core.execution.api import execute_run

from media_assets.catalog.states import FileState
from media_assets.media import sample_library as sample
from media_assets.media.hashing import sha256_file

from .conftest import MakePipeline, present
from .daemon_runs import new_batch_run, storage_instance


@pytest.mark.slow
def test_a_batch_run_with_a_process_per_phase_verifies_its_files(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    pipeline = make_pipeline(EXECUTOR="multiprocess")
    library = pipeline.settings.sources.folder_source_paths[0]
    sample.write_sample_library(library)
    instance = storage_instance(pipeline.catalog.conninfo, tmp_path / "dagster_home")
    try:
        run, job = new_batch_run(instance, pipeline.catalog)
        result = execute_run(job, run, instance)
        step_processes = [event.pid for event in result.all_events if event.is_step_success]
    finally:
        instance.dispose()
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    assert len(step_processes) == 10 and len(set(step_processes)) == 10, "8 phases and 2 checks, a process each"
    assert os.getpid() not in step_processes

    [batch] = pipeline.catalog.recent_batches(1)
    assert batch.status == "succeeded", batch
    videos = 1 if (library / sample.VIDEO).exists() else 0
    assert pipeline.catalog.count_by_state(batch.id) == {"verified": 5 + videos, "duplicate": 2, "quarantined": 1}
    for file in pipeline.catalog.iter_files(batch.id, FileState.VERIFIED):
        assert sha256_file(pipeline.settings.storage.media_root / present(file.sorted_path)) == file.output_hash
        [upload] = pipeline.catalog.uploads_of(file.id)
        assert upload.verified_at is not None
