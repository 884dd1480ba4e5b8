"""The catalog's side of the Supabase mirror: the outbox its triggers fill (read a chunk at a time, cleared only
for rows Supabase confirmed), the mirror's state (failures in a row, last success, last full pass), the lock that
lets one pass run at a time, and the per-key-range checksums the reconciliation compares with the remote's.

The checksums use the same SQL as the remote's `mirror_checksums` (supabase/migrations): a row's hash is the md5
of `jsonb_build_array(<mirrored columns>)::text` with timestamps in UTC, so equal rows hash equally on both sides."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from media_assets.catalog.locks import MIRROR_PASS, AdvisoryLock
from media_assets.catalog.repository import Catalog


def _rows(catalog: Catalog, query: str | sql.Composed, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with catalog.conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _row(catalog: Catalog, query: str | sql.Composed, params: tuple[Any, ...] = ()) -> dict[str, Any]:
    """The one row a query answers (an aggregate, or mirror_state's single row)."""
    [row] = _rows(catalog, query, params)
    return row


@dataclass(frozen=True)
class MirroredTable:
    """A catalog table copied to Supabase: its name, the SQL type of its `id` key, the columns sent."""

    name: str
    key_type: str
    columns: tuple[str, ...]

    @property
    def select_list(self) -> str:
        return ", ".join(self.columns)


@dataclass(frozen=True)
class Change:
    """One queued change: the row as it is now (None once deleted), stamped with the outbox version it was read
    at as `mirror_stamp` (versions only grow, so the remote can keep the newer of two writes)."""

    row_key: str
    version: int
    #: The row's JSON text, ready to send.
    row: str | None


@dataclass(frozen=True)
class MirrorStatus:
    pending: dict[str, int]
    consecutive_failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    last_full_at: datetime | None


def has_pending_changes(catalog: Catalog) -> bool:
    """One EXISTS on the outbox: what the sensor asks every interval, with no request to Supabase."""
    return bool(_row(catalog, "SELECT EXISTS (SELECT 1 FROM mirror_outbox) AS pending")["pending"])


def pending_counts(catalog: Catalog) -> dict[str, int]:
    rows = _rows(catalog, "SELECT table_name, count(*) AS n FROM mirror_outbox GROUP BY table_name")
    return {row["table_name"]: int(row["n"]) for row in rows}


def lag_seconds(catalog: Catalog) -> float | None:
    """Age of the oldest change not yet confirmed by Supabase; None when everything is mirrored."""
    lag = _row(catalog, "SELECT extract(epoch FROM now() - min(changed_at)) AS lag FROM mirror_outbox")["lag"]
    return None if lag is None else float(lag)


def read_changes(catalog: Catalog, table: MirroredTable, *, after: str, limit: int) -> list[Change]:
    """The next page of one table's queued changes in key order, each with the row's current content read in the
    same statement (so the version never claims newer content than the row it comes with). Every row carries
    every column, so one request carries one key set."""
    # The page is cut from the outbox first, so only its rows are turned into JSON, whatever the planner estimates.
    query = sql.SQL(
        "SELECT o.row_key, o.version,"
        " CASE WHEN t.id IS NULL THEN NULL"
        " ELSE (to_jsonb(t) || jsonb_build_object('mirror_stamp', o.version))::text END AS row"
        " FROM (SELECT row_key, version FROM mirror_outbox WHERE table_name = %s AND row_key > %s"
        " ORDER BY row_key LIMIT %s) o"
        " LEFT JOIN (SELECT {columns} FROM {table}) t ON t.id = o.row_key::{key_type} ORDER BY o.row_key").format(
        columns=_columns(table), table=sql.Identifier(table.name), key_type=sql.SQL(table.key_type))
    rows = _rows(catalog, query, (table.name, after, limit))
    return [Change(row["row_key"], int(row["version"]), row["row"]) for row in rows]


def confirm(catalog: Catalog, table: MirroredTable, changes: list[Change]) -> None:
    """Forget the changes Supabase confirmed, unless the row changed again since it was read (its version moved)."""
    if changes:
        catalog.conn.execute(
            "DELETE FROM mirror_outbox o USING unnest(%s::text[], %s::bigint[]) AS c(row_key, version)"
            " WHERE o.table_name = %s AND o.row_key = c.row_key AND o.version = c.version",
            ([c.row_key for c in changes], [c.version for c in changes], table.name))


def rows_by_key(catalog: Catalog, table: MirroredTable, keys: list[str]) -> list[str]:
    """The rows as they are now, as JSON text with every column (PostgreSQL formats the timestamps), with
    `mirror_stamp` 0: what the reconciliation writes over whatever the remote has; any later change outranks it."""
    if not keys:
        return []
    query = sql.SQL("SELECT (to_jsonb(t) || jsonb_build_object('mirror_stamp', 0))::text AS row"
                    " FROM (SELECT {columns} FROM {table}"
                    " WHERE id = ANY(%s::{key_type}[]) ORDER BY id) t").format(
        columns=_columns(table), table=sql.Identifier(table.name), key_type=sql.SQL(table.key_type))
    return [row["row"] for row in _rows(catalog, query, (keys,))]


# -- reconciliation ------------------------------------------------------------------------------------------

def _columns(table: MirroredTable) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, table.columns))


def _bucket(table: MirroredTable, bucket_size: int) -> sql.Composable:
    """The same key-range expression as the remote's `mirror_bucket_sql`."""
    if table.key_type == "text":
        return sql.SQL("get_byte(decode(md5(id), 'hex'), 0)::bigint")
    return sql.SQL("(id / {})::bigint").format(sql.Literal(bucket_size))


def _row_hash(table: MirroredTable) -> sql.Composable:
    """The same row hash as the remote's `mirror_row_hash_sql`."""
    return sql.SQL("md5(jsonb_build_array({})::text)").format(_columns(table))


@contextmanager
def _hashing_session(catalog: Catalog) -> Iterator[None]:
    """UTC timestamps and shortest exact floats in the JSON text, as the remote functions set them."""
    with catalog.conn.transaction():
        catalog.conn.execute("SET LOCAL timezone = 'UTC'; SET LOCAL extra_float_digits = 1")
        yield


def bucket_checksums(catalog: Catalog, table: MirroredTable, bucket_size: int) -> dict[int, tuple[int, str]]:
    """{bucket: (rows, checksum)} of the whole table."""
    query = sql.SQL("SELECT {bucket} AS bucket, count(*) AS n, md5(string_agg({row_hash}, '' ORDER BY id)) AS sum"
                    " FROM {table} GROUP BY 1").format(bucket=_bucket(table, bucket_size), row_hash=_row_hash(table),
                                                      table=sql.Identifier(table.name))
    with _hashing_session(catalog):
        rows = _rows(catalog, query)
    return {int(row["bucket"]): (int(row["n"]), row["sum"]) for row in rows}


def row_hashes(catalog: Catalog, table: MirroredTable, bucket_size: int, buckets: list[int]) -> dict[str, str]:
    """{key: row hash} of the rows in `buckets`."""
    query = sql.SQL("SELECT id::text AS key, {row_hash} AS hash FROM {table} WHERE {bucket} = ANY(%s)").format(
        row_hash=_row_hash(table), table=sql.Identifier(table.name), bucket=_bucket(table, bucket_size))
    with _hashing_session(catalog):
        rows = _rows(catalog, query, (buckets,))
    return {row["key"]: row["hash"] for row in rows}


# -- one pass at a time, and its outcome ---------------------------------------------------------------------

@contextmanager
def pass_lock(catalog: Catalog) -> Iterator[None]:
    """Hold the catalog's mirror lock for the duration of a pass; raises LockBusy (naming the holder) when
    another pass has it. On a connection of its own, so it goes when the pass's process dies."""
    lock = AdvisoryLock(catalog.conninfo, MIRROR_PASS, "supabase mirror")
    lock.acquire(wait=False)
    try:
        yield
    finally:
        lock.release()


def record_success(catalog: Catalog, *, full: bool) -> None:
    catalog.conn.execute(
        "UPDATE mirror_state SET consecutive_failures = 0, last_success_at = now(), last_error = NULL,"
        " last_full_at = CASE WHEN %s THEN now() ELSE last_full_at END", (full,))


def record_failure(catalog: Catalog, error: str) -> int:
    """Count one more failed pass; returns how many failed in a row."""
    row = _row(catalog, "UPDATE mirror_state SET consecutive_failures = consecutive_failures + 1,"
                        " last_failure_at = now(), last_error = %s RETURNING consecutive_failures", (error,))
    return int(row["consecutive_failures"])


def consecutive_failures(catalog: Catalog) -> int:
    """How many passes failed in a row (0 after a success): what alerts watch."""
    return mirror_status(catalog).consecutive_failures


def full_pass_due(catalog: Catalog, every: timedelta) -> bool:
    """Whether the last successful full pass is older than `every` (or there never was one)."""
    return bool(_row(catalog, "SELECT last_full_at IS NULL OR last_full_at <= now() - %s AS due FROM mirror_state",
                     (every,))["due"])


def mirror_status(catalog: Catalog) -> MirrorStatus:
    row = _row(catalog, "SELECT * FROM mirror_state")
    return MirrorStatus(pending=pending_counts(catalog), consecutive_failures=int(row["consecutive_failures"]),
                        last_success_at=row["last_success_at"], last_failure_at=row["last_failure_at"],
                        last_error=row["last_error"], last_full_at=row["last_full_at"])
