"""`media-pipeline find PATTERN`: a file's whole history, for 'what happened to IMG_1234.jpg?'."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from media_assets.catalog.file_history import matching_files, state_history
from media_assets.catalog.repository import Catalog, path_inside_source

#: Files shown at most for one pattern (newest first).
MAX_MATCHES = 20


def file_history_text(catalog: Catalog, pattern: str, source_folders: Sequence[Path]) -> str:
    """Every file whose name or source path contains `pattern`: its path inside the source folder (of
    `source_folders`) and where that is, its batch, dates, decisions, paths, destinations with their remote
    ids, the file it duplicates, and each state with its time."""
    records = matching_files(catalog, pattern, MAX_MATCHES)
    if not records:
        return f"no file in the catalog matches {pattern!r}"
    blocks = []
    for record in records:
        inside = path_inside_source(record.source_path, source_folders)
        lines = [f"{inside} (file {record.id}, batch {record.batch_id}): {record.state}"]
        if inside != record.source_path:
            lines.append(f"  at the source: {record.source_path}")
        if record.captured_at:
            lines.append(f"  taken: {record.captured_at:%Y-%m-%d %H:%M:%S} (from {record.capture_date_tag or '?'})")
        if record.compression_decision:
            lines.append(f"  compression: {record.compression_decision}, {record.bytes_saved or 0:,} bytes saved")
        if record.duplicate_kind:
            lines.append(f"  {record.duplicate_kind} duplicate of: "
                         f"{path_inside_source(record.keeper_path or '', source_folders)}")
        if record.error:
            lines.append(f"  {'quarantined' if record.state == 'quarantined' else 'last error'}: {record.error}")
        for label, path in (("original path", record.original_path), ("output path", record.output_path),
                            ("staged path", record.staged_path), ("sorted path", record.sorted_path)):
            if path:
                lines.append(f"  {label}: {path}")
        if record.destinations:
            lines.append(f"  destinations: {record.destinations}")
        for change in state_history(catalog, record.id):
            detail = f" ({change.detail})" if change.detail else ""
            lines.append(f"  {change.changed_at:%Y-%m-%d %H:%M:%S} {change.from_state or '-'} -> "
                         f"{change.to_state}{detail}")
        blocks.append("\n".join(lines))
    more = f"\n(first {MAX_MATCHES} matches shown)" if len(records) == MAX_MATCHES else ""
    return "\n\n".join(blocks) + more
