"""A file quarantined because its source could not be reached (a share unmounted mid-batch) is not at fault: the
next batch offers it again and closes its old row, so `status` does not count it as quarantined for ever. A file
quarantined for what it is stays quarantined, and one whose source stays unreachable is tried a bounded number
of times."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from media_assets.catalog.dashboard import batch_summaries
from media_assets.catalog.files import UNREACHABLE_TRIES
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FileState
from media_assets.media import sample_library as sample
from media_assets.runner import run_next_batch
from media_assets_tests.conftest import MakePipeline


def test_files_of_a_share_unmounted_mid_batch_are_offered_again_and_their_rows_closed(
        make_pipeline: MakePipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    (library / "junk.jpg").write_text("not a photo at all, just text")  # bad for what it is: stays quarantined
    for n in range(3):
        sample.make_photo(library / "share" / f"IMG_{n}.jpg", seed=n, size=(64, 48))
    unmounted = tmp_path / "unmounted"
    register_file = Catalog.register_file
    batches: list[str] = []

    def unmount_after_the_first_copy(catalog: Catalog, batch_id: str, **item: Any) -> int | None:
        # The next file is registered once the one before it was copied (its identifying may still run).
        if item["original_name"] == "IMG_1.jpg" and not batches:  # in the first batch only
            batches.append(batch_id)
            shutil.move(library / "share", unmounted)
        return register_file(catalog, batch_id, **item)

    monkeypatch.setattr(Catalog, "register_file", unmount_after_the_first_copy)
    _decision, first = run_next_batch(pipeline)
    assert first is not None and first.success
    catalog = pipeline.catalog
    states = _states(catalog, first.batch_id)
    assert states == {"junk.jpg": (FileState.QUARANTINED, False), "IMG_0.jpg": (FileState.VERIFIED, False),
                      "IMG_1.jpg": (FileState.QUARANTINED, True), "IMG_2.jpg": (FileState.QUARANTINED, True)}

    shutil.move(unmounted, library / "share")  # mounted again
    decision, second = run_next_batch(pipeline)
    assert second is not None and second.success, decision.reason
    assert _states(catalog, second.batch_id) == {"IMG_1.jpg": (FileState.VERIFIED, False),
                                                 "IMG_2.jpg": (FileState.VERIFIED, False)}
    assert _states(catalog, first.batch_id)["IMG_1.jpg"] == (FileState.SUPERSEDED, True)
    assert catalog.count_by_state() == {"verified": 3, "quarantined": 1, "superseded": 2}
    assert {b.id: b.quarantined for b in batch_summaries(catalog, 5)} == {first.batch_id: 1, second.batch_id: 0}
    history = catalog.conn.execute(
        "SELECT detail FROM state_changes c JOIN media_files f ON f.id = c.file_id"
        " WHERE f.batch_id = %s AND c.to_state = 'superseded'", (first.batch_id,)).fetchall()
    assert len(history) == 2 and all(f"in batch {second.batch_id}" in row["detail"] for row in history)

    decision, third = run_next_batch(pipeline)
    assert third is None, "nothing left to offer: the junk file is not tried again"


def test_a_file_whose_source_stays_unreachable_is_tried_a_bounded_number_of_times(catalog: Catalog) -> None:
    for attempt in range(1, UNREACHABLE_TRIES + 1):
        assert ("share/a.jpg", "10:1") not in catalog.known_versions("folder"), "offered again"
        catalog.create_batch(f"b{attempt}")
        file_id = catalog.register_file(f"b{attempt}", source="folder", source_id="share/a.jpg",
                                        source_version="10:1", original_name="a.jpg")
        assert file_id is not None
        catalog.move(catalog.get_file(file_id), FileState.QUARANTINED, error="cannot read file: Host is down",
                     source_unreachable=True)
    assert ("share/a.jpg", "10:1") in catalog.known_versions("folder"), "left quarantined for a person"
    assert catalog.count_by_state() == {"quarantined": 1, "superseded": UNREACHABLE_TRIES - 1}


def _states(catalog: Catalog, batch_id: str) -> dict[str, tuple[FileState, bool]]:
    return {file.original_name: (file.state, file.source_unreachable)
            for file in catalog.iter_files(batch_id, *FileState)}
