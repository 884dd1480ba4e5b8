"""`media-pipeline find PATTERN`: a file's whole history, for 'what happened to IMG_1234.jpg?'."""

from __future__ import annotations

from media_assets.catalog.file_history import matching_files, state_history
from media_assets.catalog.repository import Catalog

#: Files shown at most for one pattern (newest first).
MAX_MATCHES = 20


def file_history_text(catalog: Catalog, pattern: str) -> str:
    """Every file whose name or source path contains `pattern`: its batch, dates, decisions, paths,
    destinations with their remote ids, the file it duplicates, and each state with its time."""
    rows = matching_files(catalog, pattern, MAX_MATCHES)
    if not rows:
        return f"no file in the catalog matches {pattern!r}"
    blocks = []
    for row in rows:
        lines = [f"{row['source_path']} (file {row['id']}, batch {row['batch_id']}): {row['state']}"]
        if row["captured_at"]:
            lines.append(f"  taken: {row['captured_at']:%Y-%m-%d %H:%M:%S} (from {row['capture_date_tag'] or '?'})")
        if row["compression_decision"]:
            saved = (row["size_bytes"] or 0) - (row["output_size"] or 0)
            lines.append(f"  compression: {row['compression_decision']}, {saved:,} bytes saved")
        if row["duplicate_kind"]:
            lines.append(f"  {row['duplicate_kind']} duplicate of: {row['keeper_path']}")
        if row["error"]:
            lines.append(f"  {'quarantined' if row['state'] == 'quarantined' else 'last error'}: {row['error']}")
        for label in ("original_path", "output_path", "staged_path", "sorted_path"):
            if row[label]:
                lines.append(f"  {label.replace('_', ' ')}: {row[label]}")
        if row["destinations"]:
            lines.append(f"  destinations: {row['destinations']}")
        for change in state_history(catalog, row["id"]):
            detail = f" ({change['detail']})" if change["detail"] else ""
            lines.append(f"  {change['changed_at']:%Y-%m-%d %H:%M:%S} {change['from_state'] or '-'} -> "
                         f"{change['to_state']}{detail}")
        blocks.append("\n".join(lines))
    more = f"\n(first {MAX_MATCHES} matches shown)" if len(rows) == MAX_MATCHES else ""
    return "\n\n".join(blocks) + more
