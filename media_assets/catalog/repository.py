"""The catalog: every read and write of pipeline state goes through here, in short transactions.

Phases read their work from the catalog in pages (never the whole library in memory), and each state change
of a file is one transaction that also appends to `state_changes`, so a re-run continues where a crash left off."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from media_assets import faults
from media_assets.catalog.states import FileState, IllegalTransition, check_move

PAGE_SIZE = 500


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

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MediaFile:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["state"] = FileState(values["state"])
        return cls(**values)


_COLUMNS = ", ".join(f.name for f in fields(MediaFile))
#: Columns a state change may set alongside the state.
_UPDATABLE = frozenset(f.name for f in fields(MediaFile)) - {"id", "batch_id", "source", "source_id",
                                                            "source_version", "state"}
#: Columns of revision 0002 that deduplication writes along with its decision.
_FINGERPRINT_COLUMNS = frozenset({"phash", "similarity", "pair_key", "content_identifier", "burst_id"})
#: Files that are not (yet) kept: not decided by deduplication, or dropped.
_UNDECIDED_OR_DROPPED = "'discovered', 'downloaded', 'duplicate', 'quarantined'"


def source_path(alias: str) -> str:
    """SQL naming a file by its path at the source: folder sources' ids are their paths (undecodable ones
    base64-encoded, named by source and file name like the other sources' files)."""
    return (f"CASE WHEN {alias}.source = 'folder' AND {alias}.source_id NOT LIKE 'b64:%%' THEN {alias}.source_id"
            f" ELSE {alias}.source || ':' || {alias}.original_name END")


class Catalog:
    """Access to the catalog database through one psycopg 3 connection."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.conninfo, row_factory=dict_row, autocommit=True)
        return self._conn

    def ensure_connected(self) -> None:
        """Reconnect if the server went away since the last query (restarted, or the connection dropped), so a
        re-run after a database restart starts cleanly instead of failing on a dead connection."""
        try:
            self.conn.execute("SELECT 1")
        except psycopg.OperationalError:
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor]:
        with self.conn.transaction(), self.conn.cursor() as cur:
            yield cur

    # -- batches -------------------------------------------------------------------------------------------

    def create_batch(self, batch_id: str) -> None:
        self.conn.execute("INSERT INTO batches (id) VALUES (%s) ON CONFLICT (id) DO NOTHING", (batch_id,))

    def set_batch_status(self, batch_id: str, status: str, error: str | None = None) -> None:
        """Only `batches.BatchLifecycle` calls this; `error` says why a failed batch failed."""
        finished = status in ("succeeded", "failed")
        self.conn.execute(
            "UPDATE batches SET status = %s, error = %s, updated_at = now(),"
            " finished_at = CASE WHEN %s THEN now() ELSE finished_at END WHERE id = %s",
            (status, error, finished, batch_id))

    def mark_batch_scanned(self, batch_id: str, *, backlog: bool = False) -> None:
        """The sources were scanned for this batch; `backlog`: they held more new files than it took."""
        self.conn.execute("UPDATE batches SET scanned_at = now(), backlog = %s, updated_at = now() WHERE id = %s",
                          (backlog, batch_id))

    def batch_size(self, batch_id: str) -> tuple[int, int]:
        """(files, bytes as the sources announced them) the batch has taken so far."""
        row = self.conn.execute("SELECT count(*) AS n, coalesce(sum(size_bytes), 0) AS bytes FROM media_files"
                                " WHERE batch_id = %s", (batch_id,)).fetchone()
        return int(row["n"]), int(row["bytes"])

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        return self.conn.execute("SELECT * FROM batches WHERE id = %s", (batch_id,)).fetchone()

    def batches_created_since(self, since: datetime) -> int:
        row = self.conn.execute("SELECT count(*) AS n FROM batches WHERE created_at >= %s", (since,)).fetchone()
        return int(row["n"])

    def recent_batches(self, limit: int = 5) -> list[dict[str, Any]]:
        return self.conn.execute("SELECT * FROM batches ORDER BY created_at DESC, id DESC LIMIT %s",
                                 (limit,)).fetchall()

    # -- files ---------------------------------------------------------------------------------------------

    def known_versions(self, source: str) -> set[tuple[str, str]]:
        """Every (source_id, version) of one source: what the automation compares a scan against."""
        with self.conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
            cur.execute("SELECT source_id, source_version FROM media_files WHERE source = %s", (source,))
            return set(cur)

    def register_file(self, batch_id: str, *, source: str, source_id: str, source_version: str,
                      original_name: str, size_bytes: int | None = None) -> int | None:
        """Record a newly discovered file; None when this version of it is already in the catalog."""
        with self.transaction() as cur:
            row = cur.execute(
                "INSERT INTO media_files (batch_id, source, source_id, source_version, original_name, size_bytes,"
                " state) VALUES (%s, %s, %s, %s, %s, %s, 'discovered')"
                " ON CONFLICT (source, source_id, source_version) DO NOTHING RETURNING id",
                (batch_id, source, source_id, source_version, original_name, size_bytes)).fetchone()
            if row is None:
                return None
            cur.execute("INSERT INTO state_changes (file_id, from_state, to_state) VALUES (%s, NULL, 'discovered')",
                        (row["id"],))
            return int(row["id"])

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

    def move(self, file: MediaFile, target: FileState, *, detail: str | None = None,
             cursor: psycopg.Cursor | None = None, **changes: Any) -> MediaFile:
        """Move one file to `target`, setting `changes` in the same transaction.

        Fails if the file is no longer in the state the caller read, so two workers never both move it."""
        check_move(file.state, target)
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not a media_files column: {sorted(unknown)}")
        assignments = "".join(f", {name} = %s" for name in changes)
        params = [target.value, *changes.values(), file.id, file.state.value]

        def apply(cur: psycopg.Cursor) -> MediaFile:
            faults.checkpoint("move", target.value)
            row = cur.execute(
                f"UPDATE media_files SET state = %s, updated_at = now(){assignments}"
                f" WHERE id = %s AND state = %s RETURNING {_COLUMNS}", params).fetchone()
            if row is None:
                raise IllegalTransition(f"file {file.id} is no longer {file.state.value}")
            cur.execute("INSERT INTO state_changes (file_id, from_state, to_state, detail) VALUES (%s, %s, %s, %s)",
                        (file.id, file.state.value, target.value, detail))
            return MediaFile.from_row(row)

        if cursor is not None:
            return apply(cursor)
        with self.transaction() as cur:
            return apply(cur)

    def set_error(self, file_id: int, error: str | None) -> None:
        """Note a problem with a file that does not change its state (it will be retried)."""
        self.conn.execute("UPDATE media_files SET error = %s, updated_at = now() WHERE id = %s", (error, file_id))

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

    # -- pruning (revision 0006) -----------------------------------------------------------------------------

    def mark_pruned(self, file_id: int, copy: str) -> None:
        """Record that a file's `original` or compressed `output` copy is removed on purpose (before removing
        it, so a crash in between leaves a file that is merely still there, never an unexplained loss)."""
        column = {"original": "original_pruned_at", "output": "output_pruned_at"}[copy]
        self.conn.execute(f"UPDATE media_files SET {column} = now() WHERE id = %s AND {column} IS NULL", (file_id,))

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

    def storage_bytes(self) -> dict[str, int]:
        """Bytes of every copy the catalog says is on disk, by storage folder (one pass over the files, so
        `status` answers in well under a second on 100,000 files, where walking the folders takes seconds)."""
        rows = self.conn.execute(
            "SELECT split_part(copy.path, '/', 1) AS folder, sum(copy.bytes)::bigint AS bytes FROM media_files f"
            " CROSS JOIN LATERAL (VALUES"
            " (CASE WHEN f.original_pruned_at IS NULL THEN f.original_path END, f.size_bytes),"
            " (CASE WHEN f.output_pruned_at IS NULL AND f.output_path <> f.original_path THEN f.output_path END,"
            "  f.output_size),"
            " (CASE WHEN f.state IN ('staged', 'uploaded') THEN f.staged_path END, f.output_size),"
            " (f.sorted_path, f.output_size)) AS copy(path, bytes)"
            " WHERE copy.path IS NOT NULL GROUP BY 1").fetchall()
        return {row["folder"]: int(row["bytes"] or 0) for row in rows}

    # -- deduplication fingerprints (revision 0002) ----------------------------------------------------------

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

    def fingerprints(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """Everything the near-duplicate confirmation needs about some catalogued files."""
        rows = self.conn.execute(
            "SELECT id, media_type, width, height, phash, similarity, burst_id, content_identifier, pair_key"
            " FROM media_files WHERE id = ANY(%s)", (ids,)).fetchall()
        return {row["id"]: row for row in rows}

    def remember_similarity(self, signatures: dict[int, bytes]) -> None:
        """Keep the pixel signatures computed for kept files whose pHash came from a thumbnail, so a later batch
        that meets them again does not decode them again (a cache fill, not a state change: no audit row)."""
        with self.transaction() as cur:
            cur.executemany("UPDATE media_files SET similarity = %s WHERE id = %s AND similarity IS NULL",
                            [(signature, file_id) for file_id, signature in signatures.items()])

    def record_dedup_decision(self, file: MediaFile, target: FileState, *, keeper_id: int | None = None,
                              kind: str | None = None, distance: int = 0, detail: str | None = None,
                              **fingerprint: Any) -> MediaFile:
        """One transaction: store the file's fingerprint columns, move it to unique or duplicate, and for a
        duplicate record its keeper."""
        unknown = set(fingerprint) - _FINGERPRINT_COLUMNS
        if unknown:
            raise ValueError(f"not a fingerprint column: {sorted(unknown)}")
        with self.transaction() as cur:
            if fingerprint:
                assignments = ", ".join(f"{name} = %s" for name in fingerprint)
                cur.execute(f"UPDATE media_files SET {assignments} WHERE id = %s", [*fingerprint.values(), file.id])
            moved = self.move(file, target, detail=detail, cursor=cur)
            if target is FileState.DUPLICATE:
                if keeper_id is None or kind is None:
                    raise ValueError("a duplicate needs its keeper and kind")
                cur.execute("INSERT INTO duplicate_files (file_id, keeper_id, batch_id, kind, distance)"
                            " VALUES (%s, %s, %s, %s, %s)", (file.id, keeper_id, file.batch_id, kind, distance))
            return moved

    def duplicates(self, batch_id: str) -> list[dict[str, Any]]:
        """The batch's duplicates with their keepers, each also by its path at the source (`source_path`)."""
        return self.conn.execute(
            "SELECT d.file_id, d.keeper_id, d.kind, d.distance, f.original_name, k.original_name AS keeper_name,"
            f" {source_path('f')} AS source_path, {source_path('k')} AS keeper_path"
            " FROM duplicate_files d JOIN media_files f ON f.id = d.file_id JOIN media_files k ON k.id = d.keeper_id"
            " WHERE d.batch_id = %s ORDER BY d.file_id", (batch_id,)).fetchall()

    def quarantined(self, batch_id: str) -> list[dict[str, Any]]:
        return self.conn.execute(
            f"SELECT id, original_name, error, {source_path('f')} AS source_path FROM media_files f"
            " WHERE batch_id = %s AND state = 'quarantined' ORDER BY id", (batch_id,)).fetchall()

    def count_by_state(self, batch_id: str | None = None) -> dict[str, int]:
        if batch_id is None:
            rows = self.conn.execute("SELECT state, count(*) AS n FROM media_files GROUP BY state").fetchall()
        else:
            rows = self.conn.execute("SELECT state, count(*) AS n FROM media_files WHERE batch_id = %s"
                                     " GROUP BY state", (batch_id,)).fetchall()
        return {row["state"]: int(row["n"]) for row in rows}

    # -- uploads -------------------------------------------------------------------------------------------

    def upload_for(self, file_id: int, destination: str) -> dict[str, Any] | None:
        return self.conn.execute("SELECT * FROM uploads WHERE file_id = %s AND destination = %s",
                                 (file_id, destination)).fetchone()

    def uploads_of(self, file_id: int) -> list[dict[str, Any]]:
        return self.conn.execute("SELECT * FROM uploads WHERE file_id = %s ORDER BY destination",
                                 (file_id,)).fetchall()

    def record_upload(self, file_id: int, destination: str, *, status: str, remote_id: str | None,
                      checksum: str | None, detail: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO uploads (file_id, destination, status, remote_id, checksum, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (file_id, destination) DO UPDATE SET"
            " status = EXCLUDED.status, remote_id = EXCLUDED.remote_id, checksum = EXCLUDED.checksum,"
            " detail = EXCLUDED.detail, uploaded_at = now()",
            (file_id, destination, status, remote_id, checksum, detail))

    def mark_upload_verified(self, file_id: int, destination: str) -> None:
        self.conn.execute("UPDATE uploads SET verified_at = now() WHERE file_id = %s AND destination = %s",
                          (file_id, destination))

    # -- phase runs ----------------------------------------------------------------------------------------

    def start_phase_run(self, batch_id: str, phase: str, dagster_run_id: str | None) -> int:
        row = self.conn.execute(
            "INSERT INTO phase_runs (batch_id, phase, dagster_run_id, status) VALUES (%s, %s, %s, 'running')"
            " RETURNING id", (batch_id, phase, dagster_run_id)).fetchone()
        return int(row["id"])

    def finish_phase_run(self, run_id: int, *, status: str, files_processed: int = 0, files_failed: int = 0,
                         bytes_in: int = 0, bytes_out: int = 0, details: Mapping[str, Any] | None = None,
                         error: str | None = None) -> None:
        self.conn.execute(
            "UPDATE phase_runs SET finished_at = now(), status = %s, files_processed = %s, files_failed = %s,"
            " bytes_in = %s, bytes_out = %s, details = %s, error = %s WHERE id = %s",
            (status, files_processed, files_failed, bytes_in, bytes_out, json.dumps(dict(details or {})), error,
             run_id))

    def latest_phase_runs(self, batch_id: str) -> list[dict[str, Any]]:
        """The newest run of each phase of a batch, in the order they started."""
        return self.conn.execute(
            "SELECT * FROM (SELECT DISTINCT ON (phase) *, extract(epoch FROM finished_at - started_at) AS seconds"
            " FROM phase_runs WHERE batch_id = %s ORDER BY phase, started_at DESC, id DESC) AS latest"
            " ORDER BY started_at, id", (batch_id,)).fetchall()
