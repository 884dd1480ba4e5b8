"""The catalog on a real PostgreSQL: migrations, the state machine, one transaction per move, paging, runs."""

from __future__ import annotations

from datetime import datetime
from typing import cast, get_args, get_type_hints

import psycopg
import pytest
from alembic.script import ScriptDirectory
from typing_extensions import Unpack

from media_assets.catalog import files as catalog_files
from media_assets.catalog.files import Move
from media_assets.catalog.migrate import alembic_config, upgrade_to_head
from media_assets.catalog.repository import Catalog, Duplicate, FileChanges, MediaFile, QuarantinedFile
from media_assets.catalog.states import ALLOWED_MOVES, FINAL_STATES, FileState, IllegalTransition
from media_assets_tests.conftest import present

S = FileState
BATCH = "2024-01-01T00-00-00"
#: How a fresh file reaches each state.
ROUTE: dict[FileState, list[FileState]] = {
    S.DISCOVERED: [],
    S.DOWNLOADED: [S.DOWNLOADED],
    S.DUPLICATE: [S.DOWNLOADED, S.DUPLICATE],
    S.UNIQUE: [S.DOWNLOADED, S.UNIQUE],
    S.COMPRESSED: [S.DOWNLOADED, S.UNIQUE, S.COMPRESSED],
    S.STAGED: [S.DOWNLOADED, S.UNIQUE, S.COMPRESSED, S.STAGED],
    S.UPLOADED: [S.DOWNLOADED, S.UNIQUE, S.COMPRESSED, S.STAGED, S.UPLOADED],
    S.SORTED: [S.DOWNLOADED, S.UNIQUE, S.COMPRESSED, S.STAGED, S.UPLOADED, S.SORTED],
    S.VERIFIED: [S.DOWNLOADED, S.UNIQUE, S.COMPRESSED, S.STAGED, S.UPLOADED, S.SORTED, S.VERIFIED],
    S.QUARANTINED: [S.QUARANTINED],
    S.SUPERSEDED: [S.QUARANTINED, S.SUPERSEDED],
}


class Files:
    """Registers files with distinct source ids and drives them to a state."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.counter = 0
        catalog.create_batch(BATCH)

    def new(self, batch: str = BATCH) -> MediaFile:
        self.counter += 1
        file_id = self.catalog.register_file(batch, source="folder", source_id=f"/lib/IMG_{self.counter:04}.JPG",
                                             source_version="1:1", original_name=f"IMG_{self.counter:04}.JPG",
                                             size_bytes=100)
        assert file_id is not None
        return self.catalog.get_file(file_id)

    def at(self, state: FileState, batch: str = BATCH) -> MediaFile:
        file = self.new(batch)
        for step in ROUTE[state]:
            file = move(self.catalog, file, step)
        assert file.state is state
        return file


def move(catalog: Catalog, file: MediaFile, target: FileState, *, detail: str | None = None,
         **changes: Unpack[FileChanges]) -> MediaFile:
    if target is S.QUARANTINED:
        changes.setdefault("error", "test quarantine")
    return catalog.move(file, target, detail=detail, **changes)


def history(catalog: Catalog, file_id: int) -> list[tuple[str | None, str, str | None]]:
    rows = catalog.conn.execute("SELECT from_state, to_state, detail FROM state_changes WHERE file_id = %s"
                                " ORDER BY id", (file_id,)).fetchall()
    return [(r["from_state"], r["to_state"], r["detail"]) for r in rows]


def head_revision(conninfo: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(conninfo)).get_current_head()
    assert head is not None
    return head


@pytest.fixture
def files(catalog: Catalog) -> Files:
    return Files(catalog)


# -- migrations ------------------------------------------------------------------------------------------------


def test_upgrade_to_head_is_idempotent(catalog: Catalog, catalog_conninfo: str) -> None:
    files = Files(catalog)
    kept = files.new()
    upgrade_to_head(catalog_conninfo)
    upgrade_to_head(catalog_conninfo)

    tables = {r["tablename"] for r in catalog.conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()}
    assert {"batches", "media_files", "state_changes", "duplicate_files", "phase_runs", "uploads",
            "media_catalog_version"} <= tables
    assert "alembic_version" not in tables  # its own version table, so it can share a database with Dagster
    versions = catalog.conn.execute("SELECT version_num FROM media_catalog_version").fetchall()
    assert versions == [{"version_num": head_revision(catalog_conninfo)}]
    assert catalog.get_file(kept.id) == kept  # data survives


def test_upgrade_to_head_on_an_empty_database(postgres_admin: str, catalog_conninfo: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(catalog_conninfo)
    empty = f"{params['dbname']}_empty"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{empty}"')
    try:
        params["dbname"] = empty
        conninfo = psycopg.conninfo.make_conninfo("", **params)
        upgrade_to_head(conninfo)
        upgrade_to_head(conninfo)
        fresh = Catalog(conninfo)
        try:
            assert fresh.count_by_state() == {}
            assert fresh.conn.execute("SELECT version_num FROM media_catalog_version").fetchall() == [
                {"version_num": head_revision(conninfo)}]
        finally:
            fresh.close()
    finally:
        with psycopg.connect(postgres_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)')


#: Columns of `media_files` a move never sets: the file's identity (set once by `register_file`), its state (the
#: move itself) and the prune times (`mark_pruned`).
NOT_MOVED_WITH_A_STATE = {"id", "batch_id", "source", "source_id", "source_version", "original_name", "state",
                          "original_pruned_at", "output_pruned_at"}
#: Python types of the columns and the PostgreSQL types that hold them.
SQL_TYPES = {int: {"bigint", "integer", "smallint"}, str: {"text"}, float: {"double precision"},
             bytes: {"bytea"}, bool: {"boolean"}, FileState: {"text"},
             datetime: {"timestamp with time zone", "timestamp without time zone"}}


def test_row_types_match_the_media_files_table_after_migrations(catalog: Catalog) -> None:
    """`MediaFile`, `FileChanges` and `FingerprintColumns` list `media_files`' columns by hand (so mypy checks
    every read and every move); a migration that adds, drops or retypes a column must change them with it."""
    table = {r["column_name"]: r for r in catalog.conn.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'media_files'").fetchall()}
    row = get_type_hints(MediaFile)
    changes = get_type_hints(catalog_files.FileChanges)
    fingerprints = get_type_hints(catalog_files.FingerprintColumns)

    assert set(table) == set(row) | set(fingerprints) | {"created_at", "updated_at"}
    assert not set(row) & set(fingerprints)
    assert set(changes) == set(row) - NOT_MOVED_WITH_A_STATE
    assert changes == {name: row[name] for name in changes}
    for name, hint in {**row, **fingerprints}.items():
        python_types = set(get_args(hint)) or {hint}
        assert (type(None) in python_types) == (table[name]["is_nullable"] == "YES"), name
        (python_type,) = python_types - {type(None)}
        assert table[name]["data_type"] in SQL_TYPES[python_type], name


# -- registering -----------------------------------------------------------------------------------------------


def test_register_file(catalog: Catalog) -> None:
    catalog.create_batch(BATCH)
    catalog.create_batch(BATCH)  # idempotent
    file_id = catalog.register_file(BATCH, source="folder", source_id="/lib/a.jpg", source_version="10:5",
                                    original_name="a.jpg", size_bytes=10)
    assert isinstance(file_id, int)
    file = catalog.get_file(file_id)
    assert (file.state, file.source_id, file.source_version, file.original_name, file.size_bytes) == (
        S.DISCOVERED, "/lib/a.jpg", "10:5", "a.jpg", 10)
    assert ("/lib/a.jpg", "10:5") in catalog.known_versions("folder")
    assert history(catalog, file_id) == [(None, "discovered", None)]

    # The same version again: nothing new, not even a state change.
    assert catalog.register_file(BATCH, source="folder", source_id="/lib/a.jpg", source_version="10:5",
                                 original_name="a.jpg") is None
    assert catalog.count_by_state() == {"discovered": 1}
    assert history(catalog, file_id) == [(None, "discovered", None)]

    # A new version of the same file, or the same id in another source, is a new file.
    newer = catalog.register_file(BATCH, source="folder", source_id="/lib/a.jpg", source_version="12:9",
                                  original_name="a.jpg")
    other = catalog.register_file(BATCH, source="icloud", source_id="/lib/a.jpg", source_version="10:5",
                                  original_name="a.jpg")
    assert newer is not None and other is not None and len({file_id, newer, other}) == 3
    assert ("/lib/a.jpg", "99:9") not in catalog.known_versions("folder")

    with pytest.raises(KeyError):
        catalog.get_file(12345)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # a file always belongs to a batch
        catalog.register_file("no-such-batch", source="folder", source_id="x", source_version="1",
                              original_name="x")
    assert catalog.count_by_state() == {"discovered": 3}


# -- the state machine -----------------------------------------------------------------------------------------


ALL_ALLOWED = [(a, b) for a, targets in ALLOWED_MOVES.items() for b in sorted(targets, key=lambda s: s.value)]


def test_every_allowed_move_works(files: Files) -> None:
    assert {start for start, _ in ALL_ALLOWED} == set(FileState) - FINAL_STATES | {S.QUARANTINED}
    for start, target in ALL_ALLOWED:
        file = files.at(start)
        moved = move(files.catalog, file, target, detail=f"{start.value} to {target.value}")
        assert moved.state is target
        assert files.catalog.get_file(file.id) == moved
        assert history(files.catalog, file.id)[-1] == (start.value, target.value, f"{start.value} to {target.value}")


def test_every_state_is_reachable_and_final_states_are_dead_ends() -> None:
    reachable = {S.DISCOVERED}
    frontier = [S.DISCOVERED]
    while frontier:
        for target in ALLOWED_MOVES[frontier.pop()]:
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(FileState)
    assert all(not ALLOWED_MOVES[state] for state in FINAL_STATES - {S.QUARANTINED})
    assert ALLOWED_MOVES[S.QUARANTINED] == {S.SUPERSEDED}, "a quarantine is only closed, when offered again"


FORBIDDEN = [(S.DISCOVERED, S.VERIFIED), (S.DISCOVERED, S.UNIQUE), (S.DOWNLOADED, S.COMPRESSED),
             (S.UNIQUE, S.STAGED), (S.STAGED, S.QUARANTINED), (S.UPLOADED, S.VERIFIED),
             (S.DUPLICATE, S.UNIQUE), (S.DUPLICATE, S.DOWNLOADED), (S.QUARANTINED, S.DOWNLOADED),
             (S.QUARANTINED, S.DISCOVERED), (S.UNIQUE, S.DOWNLOADED), (S.COMPRESSED, S.COMPRESSED)]
FORBIDDEN += [(S.VERIFIED, target) for target in FileState]


def test_forbidden_moves_raise_and_change_nothing(files: Files) -> None:
    for start, target in FORBIDDEN:
        file = files.at(start)
        before = history(files.catalog, file.id)
        with pytest.raises(IllegalTransition, match=f"from {start.value} to {target.value}"):
            files.catalog.move(file, target, error="x")
        assert files.catalog.get_file(file.id) == file
        assert history(files.catalog, file.id) == before


def test_move_sets_columns_with_the_state(files: Files) -> None:
    file = files.new()
    moved = files.catalog.move(file, S.DOWNLOADED, original_path="originals/b/1-a.jpg", content_hash="ab" * 32,
                               size_bytes=321, media_type="photo", width=64, height=48)
    assert (moved.original_path, moved.content_hash, moved.size_bytes, moved.media_type, moved.width,
            moved.height) == ("originals/b/1-a.jpg", "ab" * 32, 321, "photo", 64, 48)
    assert files.catalog.get_file(file.id) == moved

    files.catalog.set_error(file.id, "source offline, retried next run")  # a note that keeps the state
    again = files.catalog.get_file(file.id)
    assert (again.state, again.error, again.content_hash) == (S.DOWNLOADED, "source offline, retried next run",
                                                              "ab" * 32)


def test_move_refuses_unknown_or_protected_columns(files: Files) -> None:
    file = files.new()
    for changes in ({"no_such_column": 1}, {"state": "verified"}, {"id": 99}, {"batch_id": "other"}):
        with pytest.raises(ValueError, match="not a media_files column"):
            files.catalog.move(file, S.DOWNLOADED, **changes)
    assert files.catalog.get_file(file.id) == file


def test_move_with_a_stale_file_changes_nothing(files: Files) -> None:
    stale = files.new()
    current = files.catalog.move(stale, S.DOWNLOADED, content_hash="h1")
    before = history(files.catalog, stale.id)

    # Allowed from the state the caller read, but the file is no longer there.
    with pytest.raises(IllegalTransition, match="no longer discovered"):
        files.catalog.move(stale, S.QUARANTINED, error="late worker", content_hash="h2")
    with pytest.raises(IllegalTransition):
        files.catalog.move(stale, S.DOWNLOADED)

    assert files.catalog.get_file(stale.id) == current
    assert history(files.catalog, stale.id) == before


def test_each_move_appends_a_state_change(files: Files) -> None:
    file = files.at(S.VERIFIED)
    assert history(files.catalog, file.id) == [
        (None, "discovered", None), ("discovered", "downloaded", None), ("downloaded", "unique", None),
        ("unique", "compressed", None), ("compressed", "staged", None), ("staged", "uploaded", None),
        ("uploaded", "sorted", None), ("sorted", "verified", None)]


def test_quarantine_without_error_is_refused_by_the_database(files: Files) -> None:
    file = files.new()
    with pytest.raises(psycopg.errors.CheckViolation):
        files.catalog.move(file, S.QUARANTINED)
    assert files.catalog.get_file(file.id) == file
    assert history(files.catalog, file.id) == [(None, "discovered", None)]
    # The connection is usable afterwards, and with a reason the move works.
    moved = files.catalog.move(file, S.QUARANTINED, error="not a photo", detail="not a photo")
    assert (moved.state, moved.error) == (S.QUARANTINED, "not a photo")
    assert files.catalog.quarantined(BATCH) == [QuarantinedFile(id=file.id, original_name=file.original_name,
                                                                error="not a photo", source_path=file.source_id)]


def test_move_inside_a_caller_transaction_rolls_back_with_it(files: Files) -> None:
    file = files.new()
    with pytest.raises(RuntimeError, match="boom"), files.catalog.transaction() as cur:
        files.catalog.move(file, S.DOWNLOADED, cursor=cur)
        raise RuntimeError("boom")
    assert files.catalog.get_file(file.id) == file
    assert history(files.catalog, file.id) == [(None, "discovered", None)]


# -- a chunk's moves at once (move_files) -----------------------------------------------------------------------


def _chunk_history(catalog: Catalog, file_ids: list[int]) -> list[tuple[int, str | None, str, str | None]]:
    """The state changes of some files in the order they were written, each named by its file's place in
    `file_ids`."""
    rows = catalog.conn.execute("SELECT file_id, from_state, to_state, detail FROM state_changes"
                                " WHERE file_id = ANY(%s) ORDER BY id", (file_ids,)).fetchall()
    return [(file_ids.index(r["file_id"]), r["from_state"], r["to_state"], r["detail"]) for r in rows]


def _moved_columns(file: MediaFile) -> dict[str, object]:
    """What a move decided about a file: everything but its identity."""
    return {name: value for name, value in vars(file).items()
            if name not in {"id", "source_id", "original_name"}}


def test_move_files_writes_what_single_moves_would(files: Files) -> None:
    """One UPDATE per set of columns and one INSERT for the whole chunk leave the rows and the history that one
    `move` after another leaves: the same states, columns (None included) and details, in the same order."""
    def chunk(starts: list[MediaFile]) -> list[tuple[MediaFile, FileState, str | None, FileChanges]]:
        staged, uploaded, quarantined, plain = starts
        return [(staged, S.STAGED, None, {"staged_path": "bridge/b/a.jpg", "kept_identity": None}),
                (uploaded, S.SORTED, "date from exif", {"sorted_path": "uploaded/2024/01/01/b.jpg"}),
                (quarantined, S.QUARANTINED, "not a photo", {"error": "not a photo", "size_bytes": 3}),
                (plain, S.VERIFIED, None, {})]

    one_by_one = [files.at(S.COMPRESSED), files.at(S.UPLOADED), files.at(S.DOWNLOADED), files.at(S.SORTED)]
    together = [files.at(S.COMPRESSED), files.at(S.UPLOADED), files.at(S.DOWNLOADED), files.at(S.SORTED)]
    with files.catalog.transaction() as cur:
        for file, target, detail, changes in chunk(one_by_one):
            files.catalog.move(file, target, detail=detail, cursor=cur, **changes)
    files.catalog.move_files([Move(file, target, detail, changes) for file, target, detail, changes
                              in chunk(together)])

    singles = [files.catalog.get_file(file.id) for file in one_by_one]
    bulk = [files.catalog.get_file(file.id) for file in together]
    assert [_moved_columns(file) for file in bulk] == [_moved_columns(file) for file in singles]
    assert [file.state for file in bulk] == [S.STAGED, S.SORTED, S.QUARANTINED, S.VERIFIED]
    single_ids, bulk_ids = [file.id for file in one_by_one], [file.id for file in together]
    assert _chunk_history(files.catalog, bulk_ids) == _chunk_history(files.catalog, single_ids)
    written = _chunk_history(files.catalog, bulk_ids)[-4:]
    assert written == [(0, "compressed", "staged", None), (1, "uploaded", "sorted", "date from exif"),
                       (2, "downloaded", "quarantined", "not a photo"), (3, "sorted", "verified", None)]


def test_move_files_sets_every_column_a_move_may_set(files: Files) -> None:
    """Each column is sent as its own type (`FileChanges` -> bigint, text, ...; in arrays for a chunk): every one
    of them, with a value and with None, arrives as it was sent."""
    values: FileChanges = {
        "size_bytes": 5_000_000_000, "content_hash": "ab" * 32, "media_type": "photo", "media_format": "jpeg",
        "width": 4000, "height": 3000, "captured_at": datetime(2024, 7, 1, 12, 30, 5),
        "capture_utc_offset_minutes": -420, "capture_date_source": "metadata", "error": "a note",
        "original_path": "originals/b/1-a.jpg", "output_path": "compressed/b/1-a.jpg", "output_size": 1234,
        "output_hash": "cd" * 32, "compression_decision": "recompressed", "staged_path": "bridge/b/a.jpg",
        "sorted_path": "uploaded/2024/07/01/a.jpg", "quality_score": 0.987654321, "capture_date_tag": "exif",
        "capture_time_zone": "Europe/Zurich", "capture_time_zone_source": "gps", "source_unreachable": True,
        "kept_identity": "1:2:3"}
    assert set(values) == set(get_type_hints(FileChanges)), "every column a move may set"
    nothing = cast(FileChanges, dict.fromkeys(values)) | {"source_unreachable": False}
    with_values, with_none = files.new(), files.new()
    files.catalog.move_files([Move(with_values, S.DOWNLOADED, changes=values),
                              Move(with_none, S.DOWNLOADED, changes=nothing)])
    alone = files.catalog.move(files.new(), S.DOWNLOADED, **values)  # one move: a VALUES row, not arrays
    assert {name: getattr(files.catalog.get_file(with_values.id), name) for name in values} == values
    assert {name: getattr(files.catalog.get_file(with_none.id), name) for name in values} == nothing
    assert {name: getattr(alone, name) for name in values} == values


def test_move_files_refuses_a_file_twice_or_a_forbidden_move_before_writing(files: Files) -> None:
    file = files.at(S.UPLOADED)
    with pytest.raises(ValueError, match="at most once"):
        files.catalog.move_files([Move(file, S.SORTED), Move(file, S.SORTED, detail="again")])
    with pytest.raises(IllegalTransition, match="from uploaded to verified"):
        files.catalog.move_files([Move(files.at(S.UPLOADED), S.SORTED), Move(file, S.VERIFIED)])
    with pytest.raises(ValueError, match="not a media_files column"):
        Move(file, S.SORTED, changes=cast(FileChanges, {"state": "verified"}))
    assert files.catalog.get_file(file.id) == file


# -- duplicates ------------------------------------------------------------------------------------------------


def test_mark_duplicate(files: Files) -> None:
    keeper = files.at(S.UNIQUE)
    copy = files.at(S.DOWNLOADED)
    moved = files.catalog.mark_duplicate(copy, keeper, kind="near", distance=3)
    assert moved.state is S.DUPLICATE
    assert files.catalog.get_file(copy.id).state is S.DUPLICATE
    assert files.catalog.duplicates(BATCH) == [Duplicate(
        file_id=copy.id, keeper_id=keeper.id, kind="near", distance=3,
        original_name=copy.original_name, keeper_name=keeper.original_name, source_path=copy.source_id,
        keeper_path=keeper.source_id)]
    assert history(files.catalog, copy.id)[-1] == ("downloaded", "duplicate", f"near duplicate of file {keeper.id}")


def test_mark_duplicate_is_one_transaction(files: Files) -> None:
    file = files.at(S.DOWNLOADED)
    before = history(files.catalog, file.id)
    with pytest.raises(psycopg.errors.CheckViolation):
        files.catalog.mark_duplicate(file, file, kind="exact")  # duplicate_files refuses file_id = keeper_id
    assert files.catalog.get_file(file.id) == file  # the state change was rolled back with the insert
    assert history(files.catalog, file.id) == before
    assert files.catalog.duplicates(BATCH) == []

    keeper = files.at(S.UNIQUE)
    with pytest.raises(psycopg.errors.CheckViolation):
        files.catalog.mark_duplicate(file, keeper, kind="similar")  # not a kind the table knows
    assert files.catalog.get_file(file.id).state is S.DOWNLOADED
    assert files.catalog.duplicates(BATCH) == []

    with pytest.raises(IllegalTransition):  # a unique file is past deduplication
        files.catalog.mark_duplicate(files.at(S.UNIQUE), keeper, kind="exact")
    assert files.catalog.duplicates(BATCH) == []


# -- reading in pages ------------------------------------------------------------------------------------------


def test_iter_files_pages_and_filters(files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_files, "PAGE_SIZE", 3)
    created = [files.new() for _ in range(10)]
    files.catalog.create_batch("other-batch")
    foreign = files.new("other-batch")
    for file in created[1::3]:  # 2nd, 5th, 8th
        move(files.catalog, file, S.DOWNLOADED)
    quarantined = move(files.catalog, created[9], S.QUARANTINED)

    queries: list[str] = []
    original_execute = files.catalog.conn.execute

    def counting_execute(query, params=None, **kwargs):
        queries.append(str(query))
        return original_execute(query, params, **kwargs)

    monkeypatch.setattr(files.catalog.conn, "execute", counting_execute)
    discovered = [f.id for f in files.catalog.iter_files(BATCH, S.DISCOVERED)]
    assert discovered == [created[i].id for i in (0, 2, 3, 5, 6, 8)]
    assert len(queries) == 3  # two full pages and an empty one: really paged

    assert [f.id for f in files.catalog.iter_files(BATCH, S.DOWNLOADED)] == [created[i].id for i in (1, 4, 7)]
    both = list(files.catalog.iter_files(BATCH, S.DISCOVERED, S.QUARANTINED))
    assert [f.id for f in both] == [created[i].id for i in (0, 2, 3, 5, 6, 8, 9)]
    assert both[-1] == quarantined
    assert list(files.catalog.iter_files(BATCH, S.VERIFIED)) == []
    assert list(files.catalog.iter_files(BATCH)) == []
    assert [f.id for f in files.catalog.iter_files("other-batch", S.DISCOVERED)] == [foreign.id]


def test_iter_files_while_moving_the_files_it_returns(files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_files, "PAGE_SIZE", 3)
    created = [files.new() for _ in range(10)]
    seen = []
    for file in files.catalog.iter_files(BATCH, S.DISCOVERED):
        seen.append(file.id)
        move(files.catalog, file, S.DOWNLOADED)  # leaves the filtered set mid-iteration
    assert seen == [f.id for f in created]
    assert files.catalog.count_by_state(BATCH) == {"downloaded": 10}


# -- keepers, uploads, runs, counts ----------------------------------------------------------------------------


def test_find_keeper_by_hash(files: Files) -> None:
    content_hash, size = "c0ffee" * 10, 2048
    same: FileChanges = {"content_hash": content_hash, "size_bytes": size}
    catalog = files.catalog
    unrelated = catalog.move(files.at(S.DOWNLOADED), S.UNIQUE)
    discovered = files.new()
    catalog.conn.execute("UPDATE media_files SET content_hash = %s, size_bytes = %s WHERE id = %s",
                         (content_hash, size, discovered.id))
    quarantined = move(catalog, files.new(), S.QUARANTINED, **same)
    duplicate = catalog.mark_duplicate(catalog.move(files.new(), S.DOWNLOADED, **same), unrelated, kind="near")
    catalog.move(files.new(), S.DOWNLOADED, content_hash=content_hash, size_bytes=1)
    catalog.move(files.new(), S.DOWNLOADED, content_hash="beef" * 16, size_bytes=2048)
    keeper = catalog.move(files.new(), S.DOWNLOADED, **same)
    later = catalog.move(files.new(), S.DOWNLOADED, **same)
    assert discovered.id < quarantined.id < duplicate.id < keeper.id < later.id
    assert duplicate.state is S.DUPLICATE

    # Earlier copies that are not kept (discovered, quarantined, duplicate) and later ones do not count.
    assert catalog.find_keeper_by_hash(content_hash, size, exclude_id=keeper.id) is None
    found = catalog.find_keeper_by_hash(content_hash, size, exclude_id=later.id)
    assert found is not None and found.id == keeper.id
    assert catalog.find_keeper_by_hash(content_hash, 999, exclude_id=later.id) is None
    assert catalog.find_keeper_by_hash("0" * 64, size, exclude_id=later.id) is None


def test_find_keeper_ignores_only_later_ids(files: Files) -> None:
    content_hash = "ab" * 32
    same: FileChanges = {"content_hash": content_hash, "size_bytes": 10}
    first = files.catalog.move(files.new(), S.DOWNLOADED, **same)
    second = files.catalog.move(files.new(), S.DOWNLOADED, **same)
    assert files.catalog.find_keeper_by_hash(content_hash, 10, exclude_id=first.id) is None
    found = files.catalog.find_keeper_by_hash(content_hash, 10, exclude_id=second.id)
    assert found is not None and found.id == first.id
    # A keeper further along (compressed, uploaded, verified...) is still a keeper.
    files.catalog.move(files.catalog.move(first, S.UNIQUE), S.COMPRESSED)
    found = files.catalog.find_keeper_by_hash(content_hash, 10, exclude_id=second.id)
    assert found is not None and found.state is S.COMPRESSED


def test_record_upload_is_idempotent(files: Files) -> None:
    file = files.at(S.STAGED)
    files.catalog.record_upload(file.id, "local", status="not_accepted", remote_id=None, checksum=None,
                                detail="disk full")
    files.catalog.record_upload(file.id, "local", status="uploaded", remote_id="2024/a.jpg", checksum="abc")
    files.catalog.record_upload(file.id, "pixel", status="uploaded", remote_id="DCIM/a.jpg", checksum="abc")
    rows = files.catalog.uploads_of(file.id)
    assert [(r.destination, r.status, r.remote_id, r.checksum, r.detail) for r in rows] == [
        ("local", "uploaded", "2024/a.jpg", "abc", None), ("pixel", "uploaded", "DCIM/a.jpg", "abc", None)]
    assert present(files.catalog.upload_for(file.id, "local")).verified_at is None
    files.catalog.mark_uploads_verified([file.id])
    assert present(files.catalog.upload_for(file.id, "local")).verified_at is not None
    assert present(files.catalog.upload_for(file.id, "pixel")).verified_at is not None
    assert files.catalog.upload_for(file.id, "icloud") is None
    with pytest.raises(psycopg.errors.CheckViolation):
        files.catalog.record_upload(file.id, "local", status="maybe", remote_id=None, checksum=None)


def test_phase_runs(catalog: Catalog) -> None:
    catalog.create_batch(BATCH)
    catalog.create_batch("other")
    first_download = catalog.start_phase_run(BATCH, "download", "run-1")
    catalog.finish_phase_run(first_download, status="failed", error="source offline")
    sorting = catalog.start_phase_run(BATCH, "sorting", "run-1")
    catalog.finish_phase_run(sorting, status="succeeded", files_processed=4, bytes_in=1000, bytes_out=400,
                             details={"skipped": 1})
    second_download = catalog.start_phase_run(BATCH, "download", "run-2")
    catalog.finish_phase_run(second_download, status="succeeded", files_processed=5, files_failed=1,
                             bytes_in=1000, details={"photos": 4, "videos": 1})
    running = catalog.start_phase_run(BATCH, "compression", None)
    catalog.start_phase_run("other", "download", "run-3")
    assert len({first_download, sorting, second_download, running}) == 4

    runs = catalog.latest_phase_runs(BATCH)
    assert [r.id for r in runs] == [sorting, second_download, running]  # newest of each, in start order
    by_phase = {r.phase: r for r in runs}
    download = by_phase["download"]
    assert (download.status, download.files_processed, download.files_failed, download.bytes_in,
            download.details, download.error, download.dagster_run_id) == (
        "succeeded", 5, 1, 1000, {"photos": 4, "videos": 1}, None, "run-2")
    assert present(download.finished_at) >= download.started_at and present(download.seconds) >= 0
    assert by_phase["sorting"].bytes_out == 400 and by_phase["sorting"].details == {"skipped": 1}
    assert by_phase["compression"].status == "running" and by_phase["compression"].finished_at is None
    assert by_phase["compression"].seconds is None
    assert catalog.latest_phase_runs("no-such-batch") == []
    with pytest.raises(psycopg.errors.CheckViolation):
        catalog.finish_phase_run(running, status="exploded")


def test_count_by_state(files: Files) -> None:
    assert files.catalog.count_by_state() == {}
    files.at(S.UNIQUE)
    files.at(S.UNIQUE)
    files.at(S.DUPLICATE)
    files.at(S.QUARANTINED)
    files.catalog.create_batch("other")
    files.at(S.UNIQUE, batch="other")
    files.at(S.DISCOVERED, batch="other")
    assert files.catalog.count_by_state(BATCH) == {"unique": 2, "duplicate": 1, "quarantined": 1}
    assert files.catalog.count_by_state("other") == {"unique": 1, "discovered": 1}
    assert files.catalog.count_by_state() == {"unique": 3, "duplicate": 1, "quarantined": 1, "discovered": 1}
    assert files.catalog.count_by_state("empty") == {}


def test_batches(catalog: Catalog) -> None:
    catalog.create_batch("b1")
    catalog.create_batch("b2")
    assert present(catalog.batch("b1")).status == "created" and catalog.batch("missing") is None
    catalog.set_batch_status("b1", "running")
    assert present(catalog.batch("b1")).finished_at is None
    catalog.mark_batch_scanned("b1")
    catalog.set_batch_status("b1", "succeeded")
    b1 = present(catalog.batch("b1"))
    assert b1.status == "succeeded" and b1.finished_at is not None and b1.scanned_at is not None
    assert [b.id for b in catalog.recent_batches(5)] == ["b2", "b1"]
    assert catalog.batches_created_since(b1.created_at) == 2
    with pytest.raises(psycopg.errors.CheckViolation):
        catalog.set_batch_status("b1", "paused")
