"""A phase's numbers for a whole batch, summed over every run of it: a retry that finds little left to do
still reports what the batch holds, never zero."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from media_assets.catalog.repository import Catalog

#: `phase_runs.details` keys that are the row's own columns.
_COLUMNS = frozenset({"files", "failed", "bytes_in", "bytes_out", "seconds", "status"})
#: Counts of what one run found already done or left over: the newest run's, not a sum.
SNAPSHOT_COUNTS = frozenset({"already_uploaded", "already_known", "left_for_next_batch"})


@dataclass(frozen=True)
class PhaseTotals:
    """Files, bytes and per-decision counts of every finished run of one phase of one batch. `failed` is the
    newest run's: a file that failed in an earlier run was tried again by the next one, so it counts once."""

    files: int = 0
    failed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)


def phase_totals(catalog: Catalog, batch_id: str, phase: str) -> PhaseTotals:
    rows = catalog.conn.execute(
        "SELECT files_processed, files_failed, bytes_in, bytes_out, details,"
        " coalesce(extract(epoch FROM finished_at - started_at), 0) AS seconds FROM phase_runs"
        " WHERE batch_id = %s AND phase = %s AND status <> 'running' ORDER BY started_at, id",
        (batch_id, phase)).fetchall()
    if not rows:
        return PhaseTotals()
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update({k: v for k, v in _numbers(row["details"]).items() if k not in SNAPSHOT_COUNTS})
    counts.update({k: v for k, v in _numbers(rows[-1]["details"]).items() if k in SNAPSHOT_COUNTS})
    retried = sum(int(r["files_failed"]) for r in rows[:-1])
    return PhaseTotals(files=sum(int(r["files_processed"]) for r in rows) - retried,
                       failed=int(rows[-1]["files_failed"]),
                       bytes_in=sum(int(r["bytes_in"]) for r in rows), bytes_out=sum(int(r["bytes_out"]) for r in rows),
                       seconds=float(sum(float(r["seconds"]) for r in rows)), counts=counts)


def _numbers(details: dict[str, object] | None) -> dict[str, int]:
    """The counts of a run's details; its measures (floats, such as pruning_seconds) are that run's own."""
    return {key: value for key, value in (details or {}).items()
            if key not in _COLUMNS and isinstance(value, int) and not isinstance(value, bool)}
