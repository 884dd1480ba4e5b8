"""Running the pipeline for years: the whole library's numbers for the dashboard, the invariants the asset checks
guard. Free of Dagster so tests call it directly; the read-only queries here span
the whole library, which the per-batch `Catalog` methods do not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from media_assets.batches import BatchStatus
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FINAL_STATES, FileState
from media_assets.settings import GB, STORAGE_FOLDERS, Settings
from media_assets.storage import folder_bytes, free_bytes, free_space


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict of one invariant, with numbers the UI can show beside it."""

    passed: bool
    description: str
    metadata: dict[str, int | float | str] = field(default_factory=dict)


# -- the dashboard ---------------------------------------------------------------------------------------------

def watched_folders(settings: Settings) -> dict[str, Path]:
    """Every folder the pipeline writes to, by a short name: the storage folders and the destinations."""
    folders = {name: settings.storage_dir(name) for name in STORAGE_FOLDERS}
    folders["destination"] = settings.destinations.local_destination_dir
    if settings.destinations.pixel_sync_dir is not None:
        folders["pixel_sync"] = settings.destinations.pixel_sync_dir
    folders["data"] = settings.storage.data_dir
    return folders


def library_stats(catalog: Catalog, settings: Settings) -> dict[str, int | float]:
    """The whole library in numbers: files by state, batches by status, bytes saved by compression, duplicates,
    and the size and free space of each folder. Every value is a number so the UI plots it over time."""
    stats: dict[str, int | float] = {f"files_{state.value}": 0 for state in FileState}
    counts = catalog.count_by_state()
    stats.update({f"files_{state}": n for state, n in counts.items()})
    stats["files_total"] = sum(counts.values())
    stats.update({f"batches_{status.value}": 0 for status in BatchStatus})
    stats.update({f"batches_{status}": n for status, n in catalog.batches_by_status().items()})
    totals = catalog.byte_totals()
    stats["bytes_before_compression"] = totals.bytes_before_compression
    stats["bytes_after_compression"] = totals.bytes_after_compression
    stats["bytes_saved_by_compression"] = totals.bytes_before_compression - totals.bytes_after_compression
    stats["bytes_not_stored_twice"] = totals.duplicate_bytes
    stats["duplicates_exact"] = stats["duplicates_near"] = 0
    stats.update({f"duplicates_{kind}": n for kind, n in catalog.duplicates_by_kind().items()})
    for name, folder in watched_folders(settings).items():
        stats[f"{name}_bytes"] = folder_bytes(folder)
        stats[f"{name}_free_gb"] = round(free_bytes(folder) / GB, 2)
    return stats


# -- the invariants --------------------------------------------------------------------------------------------

def check_no_file_in_between(catalog: Catalog, batch_id: str) -> CheckOutcome:
    """After a batch every file is verified, a recorded duplicate or quarantined: none is left half way."""
    counts = catalog.count_by_state(batch_id)
    stuck = {state: n for state, n in counts.items() if FileState(state) not in FINAL_STATES}
    metadata: dict[str, int | float | str] = {"files": sum(counts.values()), "files_in_between": sum(stuck.values())}
    if stuck:
        listed = ", ".join(f"{n} {state}" for state, n in sorted(stuck.items()))
        return CheckOutcome(False, f"batch {batch_id} left files in between: {listed}", metadata)
    return CheckOutcome(True, f"every file of batch {batch_id} reached a final state", metadata)


def check_uploads_verified(catalog: Catalog, batch_id: str, *, verification_enabled: bool) -> CheckOutcome:
    """Every upload of the batch's files was re-read at its destination and matched the catalog's checksum."""
    rows = catalog.batch_uploads(batch_id)
    unverified = [f"{row.original_name} at {row.destination}" for row in rows if not row.verified]
    metadata: dict[str, int | float | str] = {"uploads": len(rows), "unverified": len(unverified)}
    if not verification_enabled:
        return CheckOutcome(True, "ENABLE_VERIFICATION is false: uploads are not re-read", metadata)
    if unverified:
        return CheckOutcome(False, f"{len(unverified)} upload(s) of batch {batch_id} not verified: "
                            + "; ".join(unverified[:10]), metadata)
    return CheckOutcome(True, f"all {len(rows)} upload(s) of batch {batch_id} verified", metadata)


def check_free_space(settings: Settings) -> CheckOutcome:
    """Every folder the pipeline writes to has at least FREE_SPACE_ALERT_GB free (GB = 10^9 bytes)."""
    space = free_space(settings)
    metadata: dict[str, int | float | str] = {f"{key.lower()}_free_gb": round(gb, 2)
                                               for key, gb in space.free_gb.items()}
    metadata["threshold_gb"] = space.threshold_gb
    if space.low:
        listed = ", ".join(f"{key} has {gb:.1f} GB" for key, gb in sorted(space.low.items()))
        return CheckOutcome(False, f"less than FREE_SPACE_ALERT_GB={space.threshold_gb} GB free: {listed}",
                            metadata)
    return CheckOutcome(True, f"every folder has at least {space.threshold_gb} GB free", metadata)

