"""`media-pipeline status` as data (under defs/: whether a batch runs is read from the Dagster instance): per
batch numbers, where the copies are and how full the disks are, and what the automation does next. `cli`
prints it as text or, with `--json`, for scripts."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from media_assets.catalog.dashboard import batch_summaries, bytes_at_destinations
from media_assets.catalog.integrity import last_integrity_check
from media_assets.defs.batch.sensors import next_batch_decision
from media_assets.defs.instance import Pipeline
from media_assets.integrity import CATEGORIES, FINE, STARTED_BY
from media_assets.storage import free_bytes

#: Batches `status` lists, newest first.
RECENT_BATCHES = 5


def status_data(pipeline: Pipeline) -> dict[str, Any]:
    catalog, settings = pipeline.catalog, pipeline.settings
    destinations = settings.destinations
    folders = {"local": destinations.local_destination_dir, "pixel": destinations.pixel_sync_dir}
    held = bytes_at_destinations(catalog)
    decision = next_batch_decision(settings, catalog, pipeline.instance, datetime.now(timezone.utc))
    return {
        "files_by_state": catalog.count_by_state(),
        "batches": [asdict(batch) for batch in batch_summaries(catalog, RECENT_BATCHES)],
        "destinations": {name: {"bytes": held.get(name, 0), "folder": str(folder) if folder else None,
                                "free_bytes": free_bytes(folder) if folder else None}
                         for name, folder in {**dict.fromkeys(held), **folders}.items()
                         if name in held or folder is not None},
        "last_verify": asdict(last) if (last := last_integrity_check(catalog)) else None,
        "automation": {"mode": settings.automation.execution_mode,
                       "starts_batch": decision.start, "reason": decision.reason},
    }


def status_lines(data: dict[str, Any]) -> list[str]:
    """The batch, destination and automation parts of the text `status`."""
    lines = ["Last batches (files, duplicates, quarantined, bytes saved by compression):"]
    lines += [f"  {b['id']}  {b['status']:<9}  {b['files']} files, {b['duplicates']} duplicates, "
              f"{b['quarantined']} quarantined, {b['bytes_saved'] / 1e6:.1f} MB saved" for b in data["batches"]]
    lines.append("Destinations (as catalogued):")
    for name, place in sorted(data["destinations"].items()):
        free = f", {place['free_bytes'] / 1e9:.1f} GB free" if place["free_bytes"] is not None else ""
        where = f" in {place['folder']}" if place["folder"] else ""
        lines.append(f"  {name:<8} {place['bytes'] / 1e6:10.1f} MB{where}{free}")
    lines.append(_last_verify_line(data["last_verify"]))
    automation = data["automation"]
    verdict = "would start a batch if the sources hold new files" if automation["starts_batch"] else "waits"
    lines.append(f"Automation ({automation['mode']}): {verdict}: {automation['reason']}")
    return lines


def _last_verify_line(last: dict[str, Any] | None) -> str:
    if last is None:
        return "Last verify --full: never (`media-pipeline verify --full` checks every copy now)"
    how = STARTED_BY[last["started_by"]]
    how += ", with --repair" if last["repair"] else ""
    counts = last["counts"]
    found = ", ".join(f"{counts[c]} {c.replace('_', ' ')}" for c in CATEGORIES if counts.get(c))
    repaired = f", {last['repaired']} repaired" if last["repaired"] else ""
    left = sum(counts.get(c, 0) for c in CATEGORIES if c not in FINE) - last["repaired"]
    verdict = "all fine" if last["ok"] else f"{left} PROBLEM(S) LEFT (`media-pipeline verify --full` lists them)"
    when = f"{last['finished_at'].astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"
    return f"Last verify --full: {when} ({how}): {verdict}: {found}{repaired}"
