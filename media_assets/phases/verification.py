"""Verification: prove that every file of the batch arrived. A sorted file is verified when its bytes in
`uploaded/` and at every destination match the catalog's checksum; then every file of the batch must be
verified, a duplicate of a named file, or quarantined with a reason, or the phase fails loudly. A verified
batch then gives back the disk its intermediate copies took (`pruning.py`)."""

from __future__ import annotations

from collections.abc import Mapping

from media_assets.catalog.states import FINAL_STATES, FileState
from media_assets.destinations.base import Destination
from media_assets.media.hashing import sha256_file
from media_assets.phases.common import PhaseContext, PhaseFailed, PhaseOutcome
from media_assets.phases.pruning import release_copies
from media_assets.sources.base import MediaSource


def verify(ctx: PhaseContext, outcome: PhaseOutcome, destinations: Mapping[str, Destination],
           sources: Mapping[str, MediaSource]) -> None:
    """Verify the batch; once every file is accounted for, release its intermediate copies and the originals
    that are due (`pruning.py`; `sources` tell whether a folder still holds a file)."""
    problems: list[str] = []
    for file in ctx.files(FileState.SORTED):
        outcome.files += 1
        kept = ctx.path(file.sorted_path or "")
        if not kept.is_file() or sha256_file(kept) != file.output_hash:
            problems.append(f"{file.original_name!r}: kept copy {file.sorted_path} is missing or differs")
            continue
        bad = [row["destination"] for row in ctx.catalog.uploads_of(file.id) if row["status"] == "uploaded"
               and not _arrived(destinations, row["destination"], row["remote_id"], file.output_hash or "")]
        if bad:
            problems.append(f"{file.original_name!r}: not found intact at {', '.join(bad)}")
            continue
        for row in ctx.catalog.uploads_of(file.id):
            if row["status"] == "uploaded":
                ctx.catalog.mark_upload_verified(file.id, row["destination"])
        ctx.catalog.move(file, FileState.VERIFIED)
        outcome.bytes_in += file.output_size or 0
        outcome.counts["verified"] += 1
    problems += unaccounted(ctx)
    outcome.failed = len(problems)
    if problems:
        raise PhaseFailed(f"{len(problems)} file(s) of batch {ctx.batch_id} are not accounted for: "
                          + "; ".join(problems[:10]))
    release_copies(ctx, outcome, sources)


def unaccounted(ctx: PhaseContext) -> list[str]:
    """Files of the batch that are neither verified, a recorded duplicate, nor quarantined with a reason."""
    counts = ctx.catalog.count_by_state(ctx.batch_id)
    open_states = {state: n for state, n in counts.items() if FileState(state) not in FINAL_STATES}
    return [f"{n} file(s) still {state}" for state, n in sorted(open_states.items())]


def _arrived(destinations: Mapping[str, Destination], name: str, remote_id: str | None, checksum: str) -> bool:
    destination = destinations.get(name)
    return destination is not None and remote_id is not None and destination.verify(remote_id, checksum)
