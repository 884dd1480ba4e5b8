"""The catalog's batches and their phase runs. A batch's status is changed only through
`media_assets.batches.BatchLifecycle`; the rows come back as `Batch` and `PhaseRun`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from media_assets.catalog.connection import CatalogConnection


@dataclass(frozen=True)
class Batch:
    """One row of `batches`; `error` says why a failed batch failed."""

    id: str
    created_at: datetime
    status: str
    scanned_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    #: The sources held more new files than the batch took (revision 0006): the next one starts at once.
    backlog: bool
    error: str | None


@dataclass(frozen=True)
class PhaseRun:
    """One run of one phase over a batch; `seconds` is None while it runs."""

    id: int
    batch_id: str
    phase: str
    dagster_run_id: str | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    files_processed: int
    files_failed: int
    bytes_in: int
    bytes_out: int
    details: dict[str, Any] | None
    error: str | None
    seconds: float | None


_BATCH_COLUMNS = ", ".join(f.name for f in fields(Batch))
_PHASE_RUN_COLUMNS = ", ".join(f.name for f in fields(PhaseRun) if f.name != "seconds")


class BatchQueries(CatalogConnection):
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
        assert row is not None  # an aggregate always returns one row
        return int(row["n"]), int(row["bytes"])

    def batch(self, batch_id: str) -> Batch | None:
        row = self.conn.execute(f"SELECT {_BATCH_COLUMNS} FROM batches WHERE id = %s", (batch_id,)).fetchone()
        return Batch(**row) if row else None

    def batches_created_since(self, since: datetime) -> int:
        row = self.conn.execute("SELECT count(*) AS n FROM batches WHERE created_at >= %s", (since,)).fetchone()
        return int(row["n"]) if row else 0

    def recent_batches(self, limit: int = 5) -> list[Batch]:
        rows = self.conn.execute(f"SELECT {_BATCH_COLUMNS} FROM batches ORDER BY created_at DESC, id DESC LIMIT %s",
                                 (limit,)).fetchall()
        return [Batch(**row) for row in rows]

    def failed_batches(self) -> list[str]:
        """Batches whose last run failed, oldest first (the order they are re-run in)."""
        rows = self.conn.execute("SELECT id FROM batches WHERE status = 'failed' ORDER BY created_at, id").fetchall()
        return [row["id"] for row in rows]

    # -- phase runs ----------------------------------------------------------------------------------------

    def start_phase_run(self, batch_id: str, phase: str, dagster_run_id: str | None) -> int:
        row = self.conn.execute(
            "INSERT INTO phase_runs (batch_id, phase, dagster_run_id, status) VALUES (%s, %s, %s, 'running')"
            " RETURNING id", (batch_id, phase, dagster_run_id)).fetchone()
        assert row is not None  # INSERT ... RETURNING always returns the row
        return int(row["id"])

    def finish_phase_run(self, run_id: int, *, status: str, files_processed: int = 0, files_failed: int = 0,
                         bytes_in: int = 0, bytes_out: int = 0, details: Mapping[str, Any] | None = None,
                         error: str | None = None) -> None:
        self.conn.execute(
            "UPDATE phase_runs SET finished_at = now(), status = %s, files_processed = %s, files_failed = %s,"
            " bytes_in = %s, bytes_out = %s, details = %s, error = %s WHERE id = %s",
            (status, files_processed, files_failed, bytes_in, bytes_out, json.dumps(dict(details or {})), error,
             run_id))

    def latest_phase_runs(self, batch_id: str) -> list[PhaseRun]:
        """The newest run of each phase of a batch, in the order they started."""
        rows = self.conn.execute(
            f"SELECT * FROM (SELECT DISTINCT ON (phase) {_PHASE_RUN_COLUMNS},"
            " extract(epoch FROM finished_at - started_at)::float AS seconds"
            " FROM phase_runs WHERE batch_id = %s ORDER BY phase, started_at DESC, id DESC) AS latest"
            " ORDER BY started_at, id", (batch_id,)).fetchall()
        return [PhaseRun(**row) for row in rows]
