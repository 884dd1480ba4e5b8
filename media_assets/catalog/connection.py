"""One psycopg 3 connection to the catalog, opened on first use and again after the server went away."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import DictRow, dict_row

#: A connection whose rows are dicts by column name; the catalog's query modules turn them into dataclasses.
Connection = psycopg.Connection[DictRow]
Cursor = psycopg.Cursor[DictRow]


class CatalogConnection:
    """The connection every part of the catalog (files, batches, uploads, stats) queries through."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: Connection | None = None

    @property
    def conn(self) -> Connection:
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
    def transaction(self) -> Iterator[Cursor]:
        with self.conn.transaction(), self.conn.cursor() as cur:
            yield cur
