"""Bounded batches: a library larger than BATCH_MAX_FILES becomes several batches with pairs intact, the
automation drains a backlog at once within the daily cap, nothing new makes no batch, and a batch that would
fill the disk does not start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from media_assets import cli
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FileState
from media_assets.defs.batch.sensors import batch_sensor
from media_assets.defs.instance import Pipeline
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch
from media_assets.selection import BatchLimits, BatchSelection, pair_groups, plan_batch
from media_assets.sources.base import SourceItem
from media_assets.sources.folder import FolderSource
from media_assets_tests.conftest import ListingOnlySource, MakePipeline, present


def _photos(library: Path, names: list[str]) -> None:
    for n, name in enumerate(names):
        sample.make_photo(library / name, seed=100 + n, size=(64, 48))


def _batches(pipeline: Pipeline) -> list[str]:
    rows = pipeline.catalog.conn.execute("SELECT id FROM batches ORDER BY created_at, id").fetchall()
    return [row["id"] for row in rows]


def _names(pipeline: Pipeline, batch_id: str) -> set[str]:
    return {f.original_name for f in pipeline.catalog.iter_files(batch_id, *FileState)}


def _item(path: str, size: int = 10) -> SourceItem:
    return SourceItem("folder", path, "1", path.rpartition("/")[2], size=size)


def test_pairs_are_grouped_by_folder_and_base_name_even_when_not_adjacent() -> None:
    items = [_item("/a/IMG_0001.HEIC"), _item("/a/IMG_00010.jpg"), _item("/a/IMG_0001_HEVC.MOV"),
             _item("/b/IMG_0001.JPG")]
    groups = [[i.source_id for i in g] for g in pair_groups(items)]
    assert groups == [["/a/IMG_0001.HEIC", "/a/IMG_0001_HEVC.MOV"], ["/a/IMG_00010.jpg"], ["/b/IMG_0001.JPG"]]


def test_a_selection_stops_at_the_first_group_that_does_not_fit_and_says_more_wait() -> None:
    items = [_item("/a/a.jpg"), _item("/a/b.CR2"), _item("/a/b.JPG"), _item("/a/c.jpg")]
    by_files = BatchSelection(BatchLimits(max_files=2, max_bytes=10**9))
    assert [[i.original_name for i in g] for g in by_files.take_from(items, set())] == [["a.jpg"]]
    assert by_files.full and by_files.files == 1
    by_bytes = BatchSelection(BatchLimits(max_files=100, max_bytes=25))
    assert [len(g) for g in by_bytes.take_from(items, set())] == [1] and by_bytes.full
    # A known file is skipped; a group bigger than a whole batch is still taken (alone), or never would be.
    alone = BatchSelection(BatchLimits(max_files=1, max_bytes=10**9))
    assert [len(g) for g in alone.take_from(items, {("/a/a.jpg", "1")})] == [2]
    assert alone.known == 1 and alone.full


def test_a_library_larger_than_a_batch_becomes_several_batches_with_pairs_intact(
        make_pipeline: MakePipeline, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = make_pipeline(BATCH_MAX_FILES="3")
    library = pipeline.settings.sources.folder_source_paths[0]
    # Sorted by name the RAW+JPEG pair "b" would straddle the first batch's end.
    _photos(library, ["a1.jpg", "a2.jpg", "b.JPG", "c1.jpg", "c2.jpg", "d.jpg"])
    (library / "b.DNG").write_bytes((library / "b.JPG").read_bytes())

    assert cli._run_all(pipeline) == 0
    batches = _batches(pipeline)
    taken = [_names(pipeline, b) for b in batches]
    assert taken == [{"a1.jpg", "a2.jpg"}, {"b.DNG", "b.JPG", "c1.jpg"}, {"c2.jpg", "d.jpg"}]
    backlog = [present(pipeline.catalog.batch(b)).backlog for b in batches]
    assert backlog == [True, True, False]
    assert "3 batch(es) run" in capsys.readouterr().out


def test_a_run_with_nothing_new_creates_no_batch_and_no_report(make_pipeline: MakePipeline,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = make_pipeline()
    assert cli._run_once(pipeline, None) == 0
    assert capsys.readouterr().out.strip() == "nothing new in the sources"
    assert _batches(pipeline) == []
    assert list(pipeline.settings.storage.reports_dir.iterdir()) == []

    _photos(pipeline.settings.sources.folder_source_paths[0], ["a.jpg"])
    assert cli._run_once(pipeline, None) == 0
    assert len(_batches(pipeline)) == 1
    assert cli._run_once(pipeline, None) == 0  # the same file again: still nothing new
    assert len(_batches(pipeline)) == 1
    assert len(list(pipeline.settings.storage.reports_dir.glob("*.json"))) == 1


def test_a_batch_that_would_fill_the_disk_does_not_start(make_pipeline: MakePipeline,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(FREE_SPACE_ALERT_GB="1000000")  # a reserve no disk here has
    _photos(pipeline.settings.sources.folder_source_paths[0], ["a.jpg"])
    assert cli._run_once(pipeline, None) == 1
    assert "would fill the disk" in capsys.readouterr().out
    assert _batches(pipeline) == []


def _evaluate(pipeline: Pipeline, tmp_path: Path) -> object:
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    with build_sensor_context(instance=DagsterInstance.ephemeral(),
                              resources={"settings": settings, "catalog": CatalogResource(settings=settings)}) as ctx:
        return batch_sensor(ctx)


def test_a_backlog_starts_the_next_batch_at_once_within_the_daily_cap(make_pipeline: MakePipeline,
                                                                      tmp_path: Path) -> None:
    pipeline = make_pipeline(PIPELINE_EXECUTION_MODE="interval", PIPELINE_EXECUTION_INTERVAL_MINUTES="600",
                             PIPELINE_MAX_EXECUTIONS_PER_DAY="2", BATCH_MAX_FILES="1")
    _photos(pipeline.settings.sources.folder_source_paths[0], ["a.jpg", "b.jpg", "c.jpg"])
    first = _evaluate(pipeline, tmp_path)
    assert isinstance(first, SensorResult)
    assert run_batch(pipeline, present(first.run_requests)[0].partition_key).success

    second = _evaluate(pipeline, tmp_path)  # the interval is 10 hours away, but files wait
    assert isinstance(second, SensorResult)
    assert run_batch(pipeline, present(second.run_requests)[0].partition_key).success

    capped = _evaluate(pipeline, tmp_path)
    assert isinstance(capped, SkipReason) and "daily cap of 2" in (capped.skip_message or "")


def test_the_sensor_starts_no_batch_that_would_fill_the_disk(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    pipeline = make_pipeline(PIPELINE_EXECUTION_MODE="continuous", FREE_SPACE_ALERT_GB="1000000")
    _photos(pipeline.settings.sources.folder_source_paths[0], ["a.jpg"])
    skipped = _evaluate(pipeline, tmp_path)
    assert isinstance(skipped, SkipReason) and "would fill the disk" in (skipped.skip_message or "")
    assert _batches(pipeline) == []


def test_a_plan_lists_a_remote_source_only_up_to_its_first_new_file(catalog: Catalog) -> None:
    """iCloud counts a listing that ran to its end as its periodic full scan; a plan must not be one."""
    class Remote(ListingOnlySource):
        name = "icloud"
        finished = False

        def scan(self) -> Iterator[SourceItem]:
            yield from (SourceItem("icloud", f"asset{n}/original", "1", f"IMG_{n}.HEIC", size=10) for n in range(5))
            Remote.finished = True

    plan = plan_batch(catalog, {"icloud": Remote()}, BatchLimits(max_files=100, max_bytes=10**9))
    assert plan.files == 1 and not Remote.finished


def test_a_batch_lists_a_folder_source_once_to_decide_and_once_to_take(make_pipeline: MakePipeline,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Each listing walks every known file of the source too (all of the library at each batch), so the
    download phase's own ETA must come from the walk that chooses its files, not from another one."""
    pipeline = make_pipeline(BATCH_MAX_FILES="2")
    _photos(pipeline.settings.sources.folder_source_paths[0], ["a.jpg", "b.jpg", "c.jpg"])
    listings: list[str] = []
    walk = FolderSource.scan

    def counted(source: FolderSource) -> Iterator[SourceItem]:
        listings.append("walk")
        return walk(source)

    monkeypatch.setattr(FolderSource, "scan", counted)
    assert cli._run_once(pipeline, None) == 0
    assert len(listings) == 2
    assert _names(pipeline, _batches(pipeline)[0]) == {"a.jpg", "b.jpg"}
