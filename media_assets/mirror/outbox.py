"""The local side of the mirror: the outbox the catalog's triggers fill, read a page at a time, and cleared
only for the rows Supabase confirmed. Also the counter of consecutive failed cycles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from media_assets.catalog.repository import Catalog
from media_assets.mirror.tables import MirroredTable


@dataclass(frozen=True)
class Change:
    row_key: str
    op: str
    version: int


def has_pending_changes(catalog: Catalog) -> bool:
    """One EXISTS on the outbox: what the sensor asks every interval, with no request to Supabase."""
    row = catalog.conn.execute("SELECT EXISTS (SELECT 1 FROM mirror_outbox) AS pending").fetchone()
    return bool(row["pending"])


def pending_counts(catalog: Catalog) -> dict[str, int]:
    rows = catalog.conn.execute("SELECT table_name, count(*) AS n FROM mirror_outbox GROUP BY table_name").fetchall()
    return {row["table_name"]: int(row["n"]) for row in rows}


def lag_seconds(catalog: Catalog) -> float | None:
    """Age of the oldest change not yet confirmed by Supabase; None when everything is mirrored."""
    row = catalog.conn.execute(
        "SELECT extract(epoch FROM now() - min(changed_at)) AS lag FROM mirror_outbox").fetchone()
    return None if row["lag"] is None else float(row["lag"])


def read_changes(catalog: Catalog, table: MirroredTable, *, after: str, limit: int) -> list[Change]:
    """The next page of one table's queued changes, in key order (keyset paging on the outbox's primary key)."""
    rows = catalog.conn.execute(
        "SELECT row_key, op, version FROM mirror_outbox WHERE table_name = %s AND row_key > %s"
        " ORDER BY row_key LIMIT %s", (table.name, after, limit)).fetchall()
    return [Change(row["row_key"], row["op"], int(row["version"])) for row in rows]


def current_rows(catalog: Catalog, table: MirroredTable, keys: list[str]) -> list[dict[str, Any]]:
    """The rows as they are now, as JSON-ready dicts (PostgreSQL formats timestamps); every dict has every column,
    so each request carries one full key set."""
    if not keys:
        return []
    rows = catalog.conn.execute(
        f"SELECT to_jsonb(t) AS row FROM (SELECT {table.select_list} FROM {table.name}"
        f" WHERE id = ANY(%s::{table.key_type}[])) t", (keys,)).fetchall()
    return [row["row"] for row in rows]


def confirm(catalog: Catalog, table: MirroredTable, changes: list[Change]) -> None:
    """Forget the changes Supabase confirmed, unless the row changed again since it was read (its version moved)."""
    catalog.conn.execute(
        "DELETE FROM mirror_outbox o USING unnest(%s::text[], %s::bigint[]) AS c(row_key, version)"
        " WHERE o.table_name = %s AND o.row_key = c.row_key AND o.version = c.version",
        ([c.row_key for c in changes], [c.version for c in changes], table.name))


def record_success(catalog: Catalog) -> None:
    catalog.conn.execute("UPDATE mirror_state SET consecutive_failures = 0, last_success_at = now(),"
                         " last_error = NULL")


def record_failure(catalog: Catalog, error: str) -> int:
    """Count one more failed cycle; returns how many failed in a row."""
    row = catalog.conn.execute(
        "UPDATE mirror_state SET consecutive_failures = consecutive_failures + 1, last_failure_at = now(),"
        " last_error = %s RETURNING consecutive_failures", (error,)).fetchone()
    return int(row["consecutive_failures"])


def consecutive_failures(catalog: Catalog) -> int:
    """How many sync cycles failed in a row (0 after a success): what alerts watch."""
    row = catalog.conn.execute("SELECT consecutive_failures FROM mirror_state").fetchone()
    return int(row["consecutive_failures"])
