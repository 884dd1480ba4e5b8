"""What the catalog knows about where its files came from."""

from __future__ import annotations

from media_assets.catalog.repository import Catalog


def has_files_below(catalog: Catalog, source: str, prefix: str) -> bool:
    """Whether the catalog holds a file that `source` took from an id starting with `prefix` (for a folder
    source: a path below a source folder)."""
    row = catalog.conn.execute(
        "SELECT EXISTS (SELECT 1 FROM media_files WHERE source = %s AND starts_with(source_id, %s)) AS taken",
        (source, prefix)).fetchone()
    return bool(row["taken"])
