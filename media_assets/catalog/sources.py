"""What the catalog knows about where its files came from."""

from __future__ import annotations

from psycopg.rows import tuple_row

from media_assets.catalog.repository import Catalog


def has_files_below(catalog: Catalog, source: str, prefix: str) -> bool:
    """Whether the catalog holds a file that `source` took from an id starting with `prefix` (for a folder
    source: a path below a source folder)."""
    with catalog.conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT EXISTS (SELECT 1 FROM media_files WHERE source = %s AND starts_with(source_id, %s))",
                          (source, prefix)).fetchone()
    return bool(row and row[0])
