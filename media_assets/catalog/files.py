"""The catalog's files: registering what a source offers, reading a batch's work in pages, and moving files from
one state to the next in one transaction that also appends to `state_changes`, so a re-run continues where a
crash left off. Deduplication's fingerprints and decisions are files' columns too."""

from __future__ import annotations

import functools
import types
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict, cast, get_type_hints

import psycopg
from typing_extensions import Unpack

from media_assets import faults
from media_assets.catalog.connection import CatalogConnection, Cursor
from media_assets.catalog.states import FileState, IllegalTransition, check_move

PAGE_SIZE = 500
#: Batches that try a file whose source could not be reached; after that it stays quarantined for a person.
UNREACHABLE_TRIES = 3


@dataclass(frozen=True)
class MediaFile:
    """One row of `media_files`."""

    id: int
    batch_id: str
    source: str
    source_id: str
    source_version: str
    original_name: str
    size_bytes: int | None
    content_hash: str | None
    media_type: str | None
    media_format: str | None
    width: int | None
    height: int | None
    captured_at: datetime | None
    capture_utc_offset_minutes: int | None
    capture_date_source: str | None
    state: FileState
    error: str | None
    original_path: str | None
    output_path: str | None
    output_size: int | None
    output_hash: str | None
    compression_decision: str | None
    staged_path: str | None
    sorted_path: str | None
    quality_score: float | None = None
    capture_date_tag: str | None = None
    capture_time_zone: str | None = None
    capture_time_zone_source: str | None = None
    #: When the original or the compressed copy was removed on purpose (KEEP_ORIGINALS, revision 0006).
    original_pruned_at: datetime | None = None
    output_pruned_at: datetime | None = None
    #: Quarantined because its source could not be reached, not for what it is: offered again (revision 0015).
    source_unreachable: bool = False
    #: The kept copy's identity when its bytes were hashed (`storage.copy_identity`, revision 0016); None: unknown.
    kept_identity: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MediaFile:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["state"] = FileState(values["state"])
        return cls(**values)

    @property
    def source_path(self) -> str:
        """The file's path at the source, as the SQL of `source_path()` names it."""
        if self.source == "folder" and not self.source_id.startswith("b64:"):
            return self.source_id
        return f"{self.source}:{self.original_name}"


class FileChanges(TypedDict, total=False):
    """The columns a state change may set alongside the state (`Catalog.move`). As keyword arguments they are
    checked by mypy: a column named like one of `move`'s own parameters is reported, not silently swallowed."""

    size_bytes: int | None
    content_hash: str | None
    media_type: str | None
    media_format: str | None
    width: int | None
    height: int | None
    captured_at: datetime | None
    capture_utc_offset_minutes: int | None
    capture_date_source: str | None
    error: str | None
    original_path: str | None
    output_path: str | None
    output_size: int | None
    output_hash: str | None
    compression_decision: str | None
    staged_path: str | None
    sorted_path: str | None
    quality_score: float | None
    capture_date_tag: str | None
    capture_time_zone: str | None
    capture_time_zone_source: str | None
    source_unreachable: bool
    kept_identity: str | None


@dataclass(frozen=True)
class Move:
    """One file's move to `target` with the columns it sets (`FileQueries.move_files` records many in one go).
    Checked as it is made: a move the state machine forbids, or a column a move may not set, fails at the
    phase's own line, before anything is written."""

    file: MediaFile
    target: FileState
    detail: str | None = None
    changes: FileChanges = field(default_factory=lambda: FileChanges())

    def __post_init__(self) -> None:
        check_move(self.file.state, self.target)
        unknown = set(self.changes) - _UPDATABLE.keys()
        if unknown:
            raise ValueError(f"not a media_files column that a move sets (see FileChanges): {sorted(unknown)}")


class FingerprintColumns(TypedDict, total=False):
    """Columns of revision 0002 that deduplication writes along with its decision."""

    phash: int | None
    similarity: bytes | None
    pair_key: str | None
    content_identifier: str | None
    burst_id: str | None


@dataclass(frozen=True)
class DedupDecision:
    """Deduplication's decision on one file, as `record_dedup_decisions` writes it: kept (no keeper), or a
    duplicate of `keeper_id`, found by `kind` (exact or near) at a pHash `distance`."""

    file: MediaFile
    detail: str | None = None
    keeper_id: int | None = None
    kind: str | None = None
    distance: int = 0
    fingerprint: FingerprintColumns = field(default_factory=lambda: FingerprintColumns())

    def __post_init__(self) -> None:
        if self.keeper_id is not None and self.kind is None:
            raise ValueError("a duplicate needs its keeper and kind")

    @property
    def target(self) -> FileState:
        return FileState.UNIQUE if self.keeper_id is None else FileState.DUPLICATE


class CatalogFingerprint(TypedDict):
    """Everything the near-duplicate confirmation needs about a catalogued file."""

    id: int
    media_type: str | None
    width: int | None
    height: int | None
    phash: int | None
    similarity: bytes | None
    burst_id: str | None
    content_identifier: str | None
    pair_key: str | None


@dataclass(frozen=True)
class Duplicate:
    """A file recorded as a duplicate of a kept one, each also named by its path at the source."""

    file_id: int
    keeper_id: int
    kind: str
    distance: int
    original_name: str
    keeper_name: str
    source_path: str
    keeper_path: str


@dataclass(frozen=True)
class QuarantinedFile:
    id: int
    original_name: str
    error: str | None
    source_path: str


def source_path(alias: str) -> str:
    """SQL naming a file by its path at the source: folder sources' ids are their paths (undecodable ones
    base64-encoded, named by source and file name like the other sources' files)."""
    return (f"CASE WHEN {alias}.source = 'folder' AND {alias}.source_id NOT LIKE 'b64:%%' THEN {alias}.source_id"
            f" ELSE {alias}.source || ':' || {alias}.original_name END")


@functools.lru_cache(maxsize=8)
def _resolved(folders: tuple[Path, ...]) -> tuple[Path, ...]:
    """The folders as the folder source resolves them (its ids start with them)."""
    return tuple(Path(folder).resolve() for folder in folders)


def path_inside_source(source_path: str, source_folders: Sequence[Path]) -> str:
    """How reports name a file: its path inside its source folder ("2019/Trip/IMG_1.jpg"), after the folder's
    name when several are configured ("Photos/2019/Trip/IMG_1.jpg"); anything else (an iCloud file by its
    iCloud name, "icloud:IMG_1.HEIC", or a folder no longer configured) as `source_path()` names it."""
    path = Path(source_path)
    if path.is_absolute():
        for folder in _resolved(tuple(source_folders)):
            if path.is_relative_to(folder):
                inside = str(path.relative_to(folder))
                return _one_line(f"{folder.name}/{inside}" if len(source_folders) > 1 else inside)
    return _one_line(source_path)


def _one_line(name: str) -> str:
    """A name as one line: a newline, tab or other control character a file name may hold is written as its
    escape (\\n), so it cannot break a report's or a log's line."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in ("Cc", "Zl", "Zp")
                   else ch for ch in name)


_COLUMNS = ", ".join(f.name for f in fields(MediaFile))
#: The columns as a move's UPDATE returns them (`m`: the moved row, beside the moves' own columns).
_MOVED_COLUMNS = ", ".join(f"m.{f.name}" for f in fields(MediaFile))
#: The PostgreSQL type of each Python type a move sets: its moves' values are sent cast to it.
_SQL_TYPES = {int: "bigint", str: "text", float: "double precision", bool: "boolean", datetime: "timestamp"}


def _sql_type(hint: Any) -> str:
    """`int | None` -> "bigint"."""
    [python_type] = [t for t in (hint.__args__ if isinstance(hint, types.UnionType) else (hint,))
                     if t is not type(None)]
    return _SQL_TYPES[python_type]


#: The columns a move may set (`FileChanges`), each with the type its values are sent as.
_UPDATABLE = {name: _sql_type(hint) for name, hint in get_type_hints(FileChanges).items()}
_FINGERPRINT_COLUMNS = frozenset(FingerprintColumns.__annotations__)
#: Files that are not (yet) kept: not decided by deduplication, or dropped.
_UNDECIDED_OR_DROPPED = "'discovered', 'downloaded', 'duplicate', 'quarantined'"
#: A value each move sends: (its name in the statement, its SQL type, the move's value).
_Value = tuple[str, str, Callable[[Move], object]]
#: What every move sends: the file, the state it was read in, its target.
_MOVE_VALUES: list[_Value] = [
    ("id", "bigint", lambda move: move.file.id), ("from_state", "text", lambda move: move.file.state.value),
    ("to_state", "text", lambda move: move.target.value)]


def _rows(moves: Sequence[Move], values: Sequence[_Value]) -> tuple[str, list[object]]:
    """The moves as a table `v` of `values` for a statement's FROM, and its parameters:
    `unnest` of one typed array per value, so a chunk's moves are one statement; one move is a VALUES row
    (unnest would cost it about 0.3 ms more, and download, compression and upload move one file at a time)."""
    names = ", ".join(name for name, _, _ in values)
    if len(moves) == 1:
        return (f"(VALUES ({', '.join(f'%s::{sql_type}' for _, sql_type, _ in values)})) AS v({names})",
                [value(moves[0]) for _, _, value in values])
    return (f"unnest({', '.join(f'%s::{sql_type}[]' for _, sql_type, _ in values)}) AS v({names})",
            [[value(move) for move in moves] for _, _, value in values])


def _change(column: str, move: Move) -> object:
    return cast(Mapping[str, object], move.changes)[column]


class FileQueries(CatalogConnection):
    def known_versions(self, source: str) -> set[tuple[str, str]]:
        """Every (source_id, version) of one source that a scan need not offer again: all but those quarantined
        because the source could not be reached, until UNREACHABLE_TRIES batches tried them."""
        with self.conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
            cur.execute(
                "SELECT source_id, source_version FROM media_files WHERE source = %(source)s EXCEPT"
                " SELECT f.source_id, f.source_version FROM media_files f WHERE f.source = %(source)s"
                " AND f.state = 'quarantined' AND f.source_unreachable AND (SELECT count(*) FROM media_files t"
                " WHERE t.source = f.source AND t.source_id = f.source_id AND t.source_unreachable) < %(tries)s",
                {"source": source, "tries": UNREACHABLE_TRIES})
            return {(source_id, version) for source_id, version in cur}

    def register_file(self, batch_id: str, *, source: str, source_id: str, source_version: str,
                      original_name: str, size_bytes: int | None = None) -> int | None:
        """Record a newly discovered file; None when this version of it is already in the catalog. Earlier rows
        of the file quarantined because its source could not be reached are closed (`superseded`) in the same
        transaction: this row is their next try."""
        with self.transaction() as cur:
            closed = cur.execute(
                "UPDATE media_files SET state = 'superseded', updated_at = now() WHERE source = %s"
                " AND source_id = %s AND state = 'quarantined' AND source_unreachable RETURNING id",
                (source, source_id)).fetchall()
            row = cur.execute(
                "INSERT INTO media_files (batch_id, source, source_id, source_version, original_name, size_bytes,"
                " state) VALUES (%s, %s, %s, %s, %s, %s, 'discovered')"
                " ON CONFLICT (source, source_id, source_version) WHERE state <> 'superseded' DO NOTHING"
                " RETURNING id", (batch_id, source, source_id, source_version, original_name, size_bytes)).fetchone()
            if row is None:
                raise psycopg.Rollback()  # another batch took this version meanwhile: nothing is closed either
            cur.execute("INSERT INTO state_changes (file_id, from_state, to_state) VALUES (%s, NULL, 'discovered')",
                        (row["id"],))
            cur.executemany(
                "INSERT INTO state_changes (file_id, from_state, to_state, detail)"
                " VALUES (%s, 'quarantined', 'superseded', %s)",
                [(old["id"], f"offered again as file {row['id']} in batch {batch_id}") for old in closed])
            return int(row["id"])
        return None

    def get_file(self, file_id: int) -> MediaFile:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM media_files WHERE id = %s", (file_id,)).fetchone()
        if row is None:
            raise KeyError(file_id)
        return MediaFile.from_row(row)

    def iter_files(self, batch_id: str, *states: FileState) -> Iterator[MediaFile]:
        """The batch's files in the given states, in id order, fetched a page at a time."""
        wanted = [s.value for s in states]
        last_id = 0
        while True:
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM media_files WHERE batch_id = %s AND state = ANY(%s) AND id > %s"
                " ORDER BY id LIMIT %s", (batch_id, wanted, last_id, PAGE_SIZE)).fetchall()
            if not rows:
                return
            for row in rows:
                yield MediaFile.from_row(row)
            last_id = rows[-1]["id"]

    def iter_hashed_files(self) -> Iterator[MediaFile]:
        """Every catalogued file whose bytes were hashed (any batch), in id order, a page at a time."""
        last_id = 0
        while True:
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM media_files WHERE id > %s AND content_hash IS NOT NULL ORDER BY id LIMIT %s",
                (last_id, PAGE_SIZE)).fetchall()
            if not rows:
                return
            for row in rows:
                yield MediaFile.from_row(row)
            last_id = rows[-1]["id"]

    def move(self, file: MediaFile, target: FileState, *, detail: str | None = None, cursor: Cursor | None = None,
             **changes: Unpack[FileChanges]) -> MediaFile:
        """Move one file to `target`, setting `changes` in the same transaction (`move_files` of one move).

        Fails if the file is no longer in the state the caller read, so two workers never both move it."""
        [moved] = self._moved(Move(file, target, detail, changes), cursor=cursor, returning=_MOVED_COLUMNS)
        return MediaFile.from_row(moved)

    def move_files(self, moves: Sequence[Move], *, cursor: Cursor | None = None) -> None:
        """Record a chunk's moves set-based: one UPDATE per set of columns the moves set and one INSERT of their
        `state_changes` rows (in the moves' order, as one move after another would write them), instead of
        two statements per file. If any file is no longer in the state its move was made from, nothing is
        recorded and IllegalTransition names every such file."""
        self._moved(*moves, cursor=cursor, returning="m.id")

    def _moved(self, *moves: Move, cursor: Cursor | None, returning: str) -> list[dict[str, Any]]:
        """`moves` recorded in the caller's transaction (`cursor`) or in one of their own: the rows `returning`."""
        if len({move.file.id for move in moves}) < len(moves):
            raise ValueError("a file moves at most once in one go")
        by_columns: dict[tuple[str, ...], list[Move]] = {}
        for move in moves:
            by_columns.setdefault(tuple(sorted(move.changes)), []).append(move)

        def apply(cur: Cursor) -> list[dict[str, Any]]:
            for move in moves:
                faults.checkpoint("move", move.target.value)
            rows: list[dict[str, Any]] = []
            for columns, group in by_columns.items():
                rows += self._update(cur, columns, group, returning)
            if len(rows) < len(moves):
                moved = {row["id"] for row in rows}
                raise IllegalTransition("; ".join(f"file {move.file.id} is no longer {move.file.state.value}"
                                                  for move in moves if move.file.id not in moved))
            history, params = _rows(moves, [*_MOVE_VALUES, ("detail", "text", lambda move: move.detail)])
            cur.execute(f"INSERT INTO state_changes (file_id, from_state, to_state, detail) SELECT * FROM {history}",
                        params)
            return rows

        if not moves:
            return []
        if cursor is not None:
            return apply(cursor)
        with self.transaction() as cur:
            return apply(cur)

    @staticmethod
    def _update(cur: Cursor, columns: tuple[str, ...], moves: list[Move], returning: str) -> list[dict[str, Any]]:
        """One conditional UPDATE of moves that set the same `columns`: a file no longer in the state its move
        was made from is not returned."""
        rows, params = _rows(moves, [*_MOVE_VALUES, *((name, _UPDATABLE[name], functools.partial(_change, name))
                                                      for name in columns)])
        assignments = "".join(f", {name} = v.{name}" for name in columns)
        return cur.execute(f"UPDATE media_files AS m SET state = v.to_state, updated_at = now(){assignments}"
                           f" FROM {rows} WHERE m.id = v.id AND m.state = v.from_state RETURNING {returning}",
                           params).fetchall()

    def set_error(self, file_id: int, error: str | None) -> None:
        """Note a problem with a file that does not change its state (it will be retried)."""
        self.conn.execute("UPDATE media_files SET error = %s, updated_at = now() WHERE id = %s", (error, file_id))

    def file_ids(self, batch_id: str, state: FileState) -> list[int]:
        """The ids of the batch's files in `state` (a phase's random sample of them), in id order."""
        rows = self.conn.execute("SELECT id FROM media_files WHERE batch_id = %s AND state = %s ORDER BY id",
                                 (batch_id, state.value)).fetchall()
        return [row["id"] for row in rows]

    def count_by_state(self, batch_id: str | None = None) -> dict[str, int]:
        if batch_id is None:
            rows = self.conn.execute("SELECT state, count(*) AS n FROM media_files GROUP BY state").fetchall()
        else:
            rows = self.conn.execute("SELECT state, count(*) AS n FROM media_files WHERE batch_id = %s"
                                     " GROUP BY state", (batch_id,)).fetchall()
        return {row["state"]: int(row["n"]) for row in rows}

    def quarantined(self, batch_id: str) -> list[QuarantinedFile]:
        rows = self.conn.execute(
            f"SELECT id, original_name, error, {source_path('f')} AS source_path FROM media_files f"
            " WHERE batch_id = %s AND state = 'quarantined' ORDER BY id", (batch_id,)).fetchall()
        return [QuarantinedFile(**row) for row in rows]

    # -- pruning (revision 0006) -----------------------------------------------------------------------------

    def mark_pruned(self, file_ids: Sequence[int], copy: str) -> None:
        """Record that the files' `original` or compressed `output` copies are removed on purpose (before
        removing them, so a crash in between leaves files that are merely still there, never an unexplained
        loss). One statement: atomic on its own, or part of the caller's transaction (a chunk's)."""
        column = {"original": "original_pruned_at", "output": "output_pruned_at"}[copy]
        self.conn.execute(f"UPDATE media_files SET {column} = now() WHERE id = ANY(%s) AND {column} IS NULL",
                          (list(file_ids),))

    def originals_due(self, source: str, *, verified_before: datetime,
                      current_batch: str | None) -> Iterator[MediaFile]:
        """Verified or duplicate files of `source` whose original is still kept, from batches that succeeded
        before `verified_before` (and from `current_batch`, verified just now), a page at a time."""
        last_id = 0
        while True:
            rows = self.conn.execute(
                f"SELECT {', '.join('f.' + c for c in _COLUMNS.split(', '))} FROM media_files f"
                " JOIN batches b ON b.id = f.batch_id"
                " WHERE f.source = %s AND f.state IN ('verified', 'duplicate') AND f.original_path IS NOT NULL"
                " AND f.original_pruned_at IS NULL AND f.id > %s"
                " AND ((b.status = 'succeeded' AND b.finished_at < %s) OR f.batch_id = %s)"
                " ORDER BY f.id LIMIT %s", (source, last_id, verified_before, current_batch, PAGE_SIZE)).fetchall()
            if not rows:
                return
            yield from (MediaFile.from_row(row) for row in rows)
            last_id = rows[-1]["id"]

    # -- deduplication -------------------------------------------------------------------------------------

    def find_keeper_by_hash(self, content_hash: str, size_bytes: int, exclude_id: int) -> MediaFile | None:
        """The earliest catalogued file with these exact bytes that is (or will be) kept."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM media_files WHERE size_bytes = %s AND content_hash = %s AND id <> %s"
            " AND state NOT IN ('discovered', 'duplicate', 'quarantined') AND id < %s ORDER BY id LIMIT 1",
            (size_bytes, content_hash, exclude_id, exclude_id)).fetchone()
        return MediaFile.from_row(row) if row else None

    def mark_duplicate(self, file: MediaFile, keeper: MediaFile, *, kind: str, distance: int = 0) -> MediaFile:
        with self.transaction() as cur:
            moved = self.move(file, FileState.DUPLICATE, detail=f"{kind} duplicate of file {keeper.id}",
                              cursor=cur)
            cur.execute("INSERT INTO duplicate_files (file_id, keeper_id, batch_id, kind, distance)"
                        " VALUES (%s, %s, %s, %s, %s)", (file.id, keeper.id, file.batch_id, kind, distance))
            return moved

    def find_kept_by_hash(self, content_hash: str, size_bytes: int) -> MediaFile | None:
        """The earliest file with these exact bytes that deduplication already decided to keep (any batch)."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM media_files WHERE size_bytes = %s AND content_hash = %s"
            f" AND state NOT IN ({_UNDECIDED_OR_DROPPED}) ORDER BY id LIMIT 1", (size_bytes, content_hash)).fetchone()
        return MediaFile.from_row(row) if row else None

    def kept_phashes(self, after_id: int, limit: int) -> list[tuple[int, int]]:
        """(id, phash) of decided, kept files with a pHash, in id order: the near-duplicate index, in pages."""
        rows = self.conn.execute(
            f"SELECT id, phash FROM media_files WHERE phash IS NOT NULL AND id > %s"
            f" AND state NOT IN ({_UNDECIDED_OR_DROPPED}) ORDER BY id LIMIT %s", (after_id, limit)).fetchall()
        return [(row["id"], row["phash"]) for row in rows]

    def fingerprints(self, ids: list[int]) -> dict[int, CatalogFingerprint]:
        """Everything the near-duplicate confirmation needs about some catalogued files."""
        rows = self.conn.execute(
            "SELECT id, media_type, width, height, phash, similarity, burst_id, content_identifier, pair_key"
            " FROM media_files WHERE id = ANY(%s)", (ids,)).fetchall()
        return {row["id"]: cast(CatalogFingerprint, row) for row in rows}

    def remember_similarity(self, signatures: dict[int, bytes]) -> None:
        """Keep the pixel signatures computed for kept files whose pHash came from a thumbnail, so a later batch
        that meets them again does not decode them again (a cache fill, not a state change: no audit row)."""
        with self.transaction() as cur:
            cur.executemany("UPDATE media_files SET similarity = %s WHERE id = %s AND similarity IS NULL",
                            [(signature, file_id) for file_id, signature in signatures.items()])

    def record_dedup_decisions(self, decisions: Sequence[DedupDecision]) -> None:
        """One transaction for many files (a WAL flush per file was most of recording a batch's decisions): store
        their fingerprint columns, move each to unique or duplicate, and record each duplicate's keeper."""
        with self.transaction() as cur:
            for columns in {tuple(decision.fingerprint) for decision in decisions}:
                if set(columns) - _FINGERPRINT_COLUMNS:
                    raise ValueError(f"not a fingerprint column: {sorted(set(columns) - _FINGERPRINT_COLUMNS)}")
                assignments = ", ".join(f"{name} = %s" for name in columns)
                cur.executemany(f"UPDATE media_files SET {assignments} WHERE id = %s",
                                [[*cast(Mapping[str, object], decision.fingerprint).values(), decision.file.id]
                                 for decision in decisions if tuple(decision.fingerprint) == columns])
            self.move_files([Move(decision.file, decision.target, decision.detail) for decision in decisions],
                            cursor=cur)
            cur.executemany("INSERT INTO duplicate_files (file_id, keeper_id, batch_id, kind, distance)"
                            " VALUES (%s, %s, %s, %s, %s)",
                            [(decision.file.id, decision.keeper_id, decision.file.batch_id, decision.kind,
                              decision.distance) for decision in decisions if decision.keeper_id is not None])

    def duplicates(self, batch_id: str) -> list[Duplicate]:
        rows = self.conn.execute(
            "SELECT d.file_id, d.keeper_id, d.kind, d.distance, f.original_name, k.original_name AS keeper_name,"
            f" {source_path('f')} AS source_path, {source_path('k')} AS keeper_path"
            " FROM duplicate_files d JOIN media_files f ON f.id = d.file_id JOIN media_files k ON k.id = d.keeper_id"
            " WHERE d.batch_id = %s ORDER BY d.file_id", (batch_id,)).fetchall()
        return [Duplicate(**row) for row in rows]
