"""Catalog rows of sidecars (media/sidecar files that travel with a photo: .AAE, .xmp, a Takeout .json)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from psycopg.rows import class_row, tuple_row

from media_assets.catalog.repository import Catalog


@dataclass(frozen=True)
class Sidecar:
    id: int
    file_id: int
    name: str
    original_path: str
    sorted_path: str | None
    content_hash: str | None  # SHA-256 of its bytes (NULL for rows recorded before revision 0012)
    #: Its photo's original was pruned (KEEP_ORIGINALS): a sidecar still beside it (never sorted) went with it.
    original_pruned: bool = False

    @property
    def kept_path(self) -> str:
        """Where the sidecar is now: beside its sorted photo, else beside its original."""
        return self.sorted_path or self.original_path

    @property
    def pruned(self) -> bool:
        """Removed on purpose: never sorted (its photo was a duplicate), and its photo's original was pruned."""
        return self.sorted_path is None and self.original_pruned


_COLUMNS = ("s.id, s.file_id, s.name, s.original_path, s.sorted_path, s.content_hash,"
            " f.original_pruned_at IS NOT NULL AS original_pruned")


def record_sidecar(catalog: Catalog, file_id: int, name: str, original_path: str, content_hash: str) -> None:
    """Remember a sidecar the download put at `original_path` (a re-run of the download updates the row)."""
    with catalog.transaction() as cur:
        cur.execute("INSERT INTO sidecars (file_id, name, original_path, content_hash) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (file_id, name) DO UPDATE SET original_path = EXCLUDED.original_path,"
                    " content_hash = EXCLUDED.content_hash",
                    (file_id, name, original_path, content_hash))


def _select(catalog: Catalog, where: str, params: tuple[object, ...]) -> list[Sidecar]:
    with catalog.conn.cursor(row_factory=class_row(Sidecar)) as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM sidecars s JOIN media_files f ON f.id = s.file_id WHERE {where}",
                           params).fetchall()


def sidecars_of(catalog: Catalog, file_id: int) -> list[Sidecar]:
    return _select(catalog, "s.file_id = %s ORDER BY s.id", (file_id,))


def sidecars_by_file(catalog: Catalog, file_ids: Sequence[int]) -> dict[int, list[Sidecar]]:
    """The sidecars of several files in one query (a phase's chunk), by file id; [] for a file without any."""
    found: dict[int, list[Sidecar]] = {file_id: [] for file_id in file_ids}
    for sidecar in _select(catalog, "s.file_id = ANY(%s) ORDER BY s.id", (list(file_ids),)):
        found[sidecar.file_id].append(sidecar)
    return found


def all_sidecars(catalog: Catalog, page: int = 500) -> Iterator[Sidecar]:
    """Every sidecar of the catalog, read in pages."""
    last_id = 0
    while rows := _select(catalog, "s.id > %s ORDER BY s.id LIMIT %s", (last_id, page)):
        yield from rows
        last_id = rows[-1].id


def mark_sidecars_sorted(catalog: Catalog, placed: Sequence[tuple[int, str]]) -> None:
    """(sidecar id, sorted path) of several sidecars in one statement: atomic on its own, or part of the
    transaction the caller has open (a sorting chunk)."""
    catalog.conn.execute("UPDATE sidecars AS s SET sorted_path = v.sorted_path"
                         " FROM unnest(%s::bigint[], %s::text[]) AS v(id, sorted_path) WHERE s.id = v.id",
                         ([sidecar_id for sidecar_id, _ in placed], [path for _, path in placed]))


def sorted_sidecars(catalog: Catalog, batch_id: str) -> list[tuple[str, str]]:
    """(photo's sorted path, sidecar's sorted path) of a batch, for the report."""
    with catalog.conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(
            "SELECT f.sorted_path, s.sorted_path FROM sidecars s JOIN media_files f ON f.id = s.file_id"
            " WHERE f.batch_id = %s AND s.sorted_path IS NOT NULL ORDER BY s.id", (batch_id,)).fetchall()
