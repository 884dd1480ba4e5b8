"""Kill the pipeline in the middle of every phase, fill the disk, and re-run it as a user would: afterwards
every file is verified exactly once (or a recorded duplicate, or quarantined), nothing was uploaded twice,
no temp file is left and no original is missing."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FINAL_STATES, FileState
from media_assets.destinations.configured import enabled_destinations
from media_assets.faults import FAULTS_ENV
from media_assets.integrity import check_everything
from media_assets.media import sample_library as sample
from media_assets.media.hashing import sha256_file
from media_assets.media.sample_library import write_sample_library
from media_assets.settings import load_settings

from .conftest import write_settings

#: (the move a phase makes per file, where it is killed): one scenario per phase.
KILL_POINTS = {
    "download": "kill@move:downloaded:3",
    "deduplication": "kill@move:unique:2",
    "compression": "kill@move:compressed:2",
    "file_preparation": "kill@move:staged:2",
    "icloud_upload (mid-copy at the destination)": "kill@write:*:12",
    "icloud_upload": "kill@move:uploaded:2",
    "sorting": "kill@move:sorted:2",
    "verification": "kill@move:verified:2",
}


@pytest.fixture(scope="session")
def sample_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sample") / "library"
    write_sample_library(folder)
    return folder


@pytest.fixture
def home(tmp_path: Path, sample_source: Path, catalog_conninfo: str) -> tuple[Path, str]:
    shutil.copytree(sample_source, tmp_path / "library", symlinks=True)
    write_settings(tmp_path, ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR="pixel")
    return tmp_path, catalog_conninfo


def _cli(home: tuple[Path, str], *args: str, faults: str | None = None) -> subprocess.CompletedProcess[str]:
    folder, conninfo = home
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_"))}
    env.update(MEDIA_PIPELINE_SETTINGS=str(folder / "settings.env"), MEDIA_PIPELINE_DATABASE_URL=conninfo)
    if faults:
        env[FAULTS_ENV] = faults
    return subprocess.run([sys.executable, "-m", "media_assets.cli", *args], env=env, cwd=folder, text=True,
                          capture_output=True, timeout=300, check=False)


def assert_nothing_lost(home: tuple[Path, str]) -> None:
    folder, conninfo = home
    settings = load_settings(folder / "settings.env", environ={})
    catalog = Catalog(conninfo)
    try:
        states = catalog.count_by_state()
        assert set(states) <= {s.value for s in FINAL_STATES}, states
        states.pop(FileState.SUPERSEDED.value, None)  # an earlier try of a file offered again: its history
        library_files = [p for p in (folder / "library").rglob("*") if p.is_file()]
        assert sum(states.values()) == len(library_files), "every source file is in the catalog exactly once"
        uploads = catalog.conn.execute(
            "SELECT destination, count(*) AS n, count(DISTINCT file_id) AS files FROM uploads"
            " GROUP BY destination").fetchall()
        for row in uploads:
            assert row["n"] == row["files"] == states["verified"]
        pixel = settings.destinations.pixel_sync_dir
        assert pixel is not None, "the homes of these tests upload to the Pixel folder too"
        for destination in (settings.destinations.local_destination_dir, pixel):
            names = sorted(p.name for p in destination.iterdir())
            assert len(names) == states["verified"], f"no duplicate uploads in {destination}: {names}"
        roots = (settings.storage.media_root, settings.destinations.local_destination_dir, pixel)
        temp = [p for root in roots
                for p in root.rglob("*") if p.name.startswith((".partial-", ".syncthing."))]
        assert temp == []
        for file in catalog.conn.execute("SELECT original_path FROM media_files WHERE original_path IS NOT NULL"
                                         " AND original_pruned_at IS NULL"):  # pruned: on purpose, after verification
            assert (settings.storage.media_root / file["original_path"]).is_file()
        integrity = check_everything(settings, catalog, enabled_destinations(settings))
        assert integrity.ok, integrity.to_text()
    finally:
        catalog.close()


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(KILL_POINTS))
def test_killed_in_a_phase_then_rerun_loses_nothing(home: tuple[Path, str], phase: str) -> None:
    killed = _cli(home, "run", faults=KILL_POINTS[phase])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    catalog = Catalog(home[1])
    try:
        [batch] = catalog.recent_batches(5)
        assert catalog.count_by_state(batch.id), "the killed run had started on the files"
    finally:
        catalog.close()

    rerun = _cli(home, "run", "--batch", batch.id)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert_nothing_lost(home)


@pytest.mark.slow
def test_killed_between_a_chunks_renames_and_its_commit_the_rerun_catches_up(home: tuple[Path, str]) -> None:
    """Sorting renames a whole chunk, then records it in one transaction: killed inside that transaction, no
    file of the chunk is recorded as sorted though all were moved, and the re-run records them where they are."""
    killed = _cli(home, "run", faults="kill@move:sorted:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    catalog = Catalog(home[1])
    try:
        [batch] = catalog.recent_batches(5)
        states = catalog.count_by_state(batch.id)
    finally:
        catalog.close()
    assert FileState.SORTED.value not in states
    uploaded = home[0] / "media" / "uploaded"
    moved = [p for p in uploaded.rglob("*") if p.is_file() and p.suffix.lower() != ".aae"]
    assert len(moved) == states[FileState.UPLOADED.value] > 1

    rerun = _cli(home, "run", "--batch", batch.id)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert sorted(p for p in uploaded.rglob("*") if p.is_file() and p.suffix.lower() != ".aae") == sorted(moved)
    assert_nothing_lost(home)


@pytest.mark.slow
def test_a_full_disk_stops_the_phase_and_the_rerun_completes(home: tuple[Path, str]) -> None:
    full = _cli(home, "run", faults="enospc@write:*:4")
    assert full.returncode == 1
    assert "No space left on device" in full.stdout
    catalog = Catalog(home[1])
    try:
        [batch] = catalog.recent_batches(5)
        assert batch.status == "failed"
        assert catalog.count_by_state(batch.id).get(FileState.DISCOVERED.value, 0) >= 1
    finally:
        catalog.close()
    assert not [p for p in (home[0] / "media").rglob(".partial-*")], "nothing half written"

    rerun = _cli(home, "run", "--batch", batch.id)
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    assert_nothing_lost(home)


@pytest.mark.slow
def test_a_killed_batch_is_found_and_finished_by_retry_failed(home: tuple[Path, str]) -> None:
    killed = _cli(home, "run", faults="kill@move:staged:3")
    assert killed.returncode == -signal.SIGKILL
    retried = _cli(home, "retry-failed")
    assert retried.returncode == 0, retried.stdout[-2000:] + retried.stderr[-2000:]
    assert "succeeded" in retried.stdout
    assert_nothing_lost(home)


# -- seeded random kills ------------------------------------------------------------------------------------

RANDOM_KILL_SEED = 1515
#: Where a run can be killed: inside the catalog transaction of a file's move into each state, or half way
#: through an atomic write (a copy into originals/, compressed/, bridge/ or a destination), in phase order.
KILL_CHECKPOINTS = ["write:*", "move:downloaded", "move:unique", "move:compressed", "move:staged", "move:uploaded",
                    "move:sorted", "move:verified"]


def random_kill_rules(seed: int, kills: int) -> list[str]:
    """`kills` fault rules at random checkpoints and counts, in phase order, so each run is killed further on."""
    rng = random.Random(seed)
    points = sorted((rng.randrange(len(KILL_CHECKPOINTS)), rng.randint(1, 40)) for _ in range(kills))
    return [f"kill@{KILL_CHECKPOINTS[point]}:{count}" for point, count in points]


def write_generated_library(folder: Path, distinct: int, copies: int) -> dict[str, str]:
    """Small camera-like JPEGs in a few folders, `copies` of them twice; SHA-256 of every file by path."""
    for n in range(distinct):
        sample.make_photo(folder / f"day{n % 4}" / f"IMG_{n:04d}.jpg", size=(64, 48), seed=n, quality=95)
    for n in range(copies):
        shutil.copyfile(folder / f"day{n % 4}" / f"IMG_{n * 4 + n % 4:04d}.jpg", folder / f"copy-{n}.jpg")
    return _digests(folder)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def check_invariants(home: tuple[Path, str], library: dict[str, str], *, finished: bool) -> None:
    """What must hold after any crash and recovery: the originals untouched; every source file at most once in
    the catalog; at each destination no file twice and every copy byte-identical to its catalogued upload. Once
    the batch finished: every source file exactly once in the catalog and in a final state, every kept file
    exactly once at each destination, no temp file anywhere, and `verify --full` clean."""
    folder, conninfo = home
    settings = load_settings(folder / "settings.env", environ={})
    assert _digests(folder / "library") == library, "the originals are untouched"
    catalog = Catalog(conninfo)
    try:
        rows = catalog.conn.execute("SELECT source_id, state, output_hash, content_hash FROM media_files"
                                    " WHERE state <> 'superseded'").fetchall()
        taken = Counter(str(Path(row["source_id"]).relative_to(folder / "library")) for row in rows)
        assert max(taken.values(), default=1) == 1, f"a source file twice in the catalog: {taken.most_common(3)}"
        pixel = settings.destinations.pixel_sync_dir
        assert pixel is not None, "the homes of these tests upload to the Pixel folder too"
        for destination_name, destination in (("local", settings.destinations.local_destination_dir),
                                              ("pixel", pixel)):
            copies = [p for p in destination.rglob("*") if p.is_file() and not p.name.startswith(".syncthing.")]
            digests = Counter(sha256_file(p) for p in copies)
            assert max(digests.values(), default=1) == 1, f"a file twice at {destination_name}"
            uploaded = {row["checksum"] for row in catalog.conn.execute(
                "SELECT checksum FROM uploads WHERE destination = %s AND status = 'uploaded'",
                (destination_name,))}
            assert uploaded <= set(digests), f"an upload recorded at {destination_name} is not there, byte for byte"
        if not finished:
            return
        assert set(taken) == set(library), "every source file exactly once in the catalog"
        assert {row["state"] for row in rows} <= {s.value for s in FINAL_STATES}
    finally:
        catalog.close()
    assert_nothing_lost(home)


@pytest.mark.slow
def test_ten_random_kills_of_a_150_file_batch_lose_nothing(tmp_path: Path, catalog_conninfo: str) -> None:
    """A 150-file batch with two destinations (local folder + Pixel folder) is SIGKILLed 10 times at seeded
    random moments; each kill is followed by the recovery a user runs (`run --batch`, which the next kill may
    interrupt again), and the invariants are checked after every one."""
    home = (tmp_path, catalog_conninfo)
    library = write_generated_library(tmp_path / "library", distinct=140, copies=10)
    write_settings(tmp_path, ENABLE_PIXEL_UPLOAD="true", PIXEL_SYNC_DIR="pixel")
    rules = random_kill_rules(RANDOM_KILL_SEED, kills=10)
    batch_id: str | None = None
    killed = 0
    for rule in rules:
        run = _cli(home, "run", *(["--batch", batch_id] if batch_id else []), faults=rule)
        if batch_id is None:
            catalog = Catalog(catalog_conninfo)
            [batch] = catalog.recent_batches(1)
            batch_id = batch.id
            catalog.close()
        assert run.returncode in (-signal.SIGKILL, 0), f"{rule}: {run.stdout[-2000:]}{run.stderr[-2000:]}"
        killed += run.returncode == -signal.SIGKILL
        check_invariants(home, library, finished=run.returncode == 0)
    recovery = _cli(home, "run", "--batch", batch_id or "")
    assert recovery.returncode == 0, recovery.stdout[-2000:] + recovery.stderr[-2000:]
    check_invariants(home, library, finished=True)
    assert killed == len(rules), f"every kill hit the running batch ({rules})"
