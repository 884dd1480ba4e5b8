"""`verify --full` / `--repair` in the catalog (revision 0013): each check with its counts, for `status`, and each
repaired copy, in its upload row and the file's history (`state_changes`, a row that keeps the state)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.types.json import Jsonb

from media_assets.catalog.repository import Catalog, MediaFile


@dataclass(frozen=True)
class IntegrityCheck:
    """One run of `verify --full` (or `--repair`): who started it, when, and what it found."""

    started_at: datetime
    finished_at: datetime
    started_by: str
    repair: bool
    ok: bool
    counts: dict[str, int]
    repaired: int
    problems: str | None


def record_integrity_check(catalog: Catalog, *, started_at: datetime, started_by: str, repair: bool, ok: bool,
                           counts: dict[str, int], repaired: int, problems: str | None) -> None:
    catalog.conn.execute(
        "INSERT INTO integrity_checks (started_at, started_by, repair, ok, counts, repaired, problems)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (started_at, started_by, repair, ok, Jsonb(counts), repaired, problems))


def last_integrity_check(catalog: Catalog) -> IntegrityCheck | None:
    row = catalog.conn.execute(
        "SELECT started_at, finished_at, started_by, repair, ok, counts, repaired, problems FROM integrity_checks"
        " ORDER BY finished_at DESC, id DESC LIMIT 1").fetchone()
    return IntegrityCheck(**row) if row else None


def record_repair(catalog: Catalog, file: MediaFile, destination: str, remote_id: str, detail: str,
                  copy_identity: str | None = None) -> None:
    """A copy at `destination` sent again and verified: its upload row now names it and its identity (verified
    now), and the file's history says what was repaired."""
    with catalog.transaction() as cur:
        cur.execute("UPDATE uploads SET remote_id = %s, copy_identity = %s, uploaded_at = now(), verified_at = now()"
                    " WHERE file_id = %s AND destination = %s", (remote_id, copy_identity, file.id, destination))
        cur.execute("INSERT INTO state_changes (file_id, from_state, to_state, detail) VALUES (%s, %s, %s, %s)",
                    (file.id, file.state.value, file.state.value, detail))
