"""The run report: what one batch did, as JSON (for tools) and Markdown (for people), newest N kept. Files are
named by their path inside the source ("2019/Trip/IMG_1.jpg"), iCloud files by their iCloud name."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from media_assets.catalog.icloud import count_in_library, kept_originals
from media_assets.catalog.phase_totals import phase_totals
from media_assets.catalog.repository import Catalog, Duplicate, QuarantinedFile, path_inside_source
from media_assets.catalog.sidecars import sorted_sidecars

KEPT_TITLE = "Kept in iCloud: cannot be replaced faithfully"


@dataclass
class RunReport:
    batch_id: str
    success: bool
    duration_seconds: float
    phases_succeeded: int
    phases_total: int
    files_processed: int
    files_by_state: dict[str, int]
    bytes_in: int
    bytes_out: int
    phases: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    quarantined: list[QuarantinedFile] = field(default_factory=list)
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    #: Files taken from the upload account's own iCloud library: recorded as there, not uploaded back.
    already_in_icloud: int = 0
    #: iCloud originals replace-originals mode kept, each with why its upload is not the same asset.
    kept_in_icloud: list[dict[str, str]] = field(default_factory=list)

    @property
    def bytes_saved(self) -> int:
        return self.bytes_in - self.bytes_out

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "bytes_saved": self.bytes_saved}, indent=2, default=str)

    def to_markdown(self) -> str:
        status = "succeeded" if self.success else "FAILED"
        lines = [
            f"# Batch {self.batch_id}: {status}",
            "",
            f"- Duration: {self.duration_seconds:.1f} s",
            f"- Phases succeeded: {self.phases_succeeded}/{self.phases_total}",
            f"- Files processed: {self.files_processed}",
            "- Files by state: " + ", ".join(f"{s} {n}" for s, n in sorted(self.files_by_state.items())),
            f"- Duplicates: {len(self.duplicates)}",
            f"- Quarantined: {len(self.quarantined)}",
            f"- Bytes saved by compression: {self.bytes_saved:,}",
        ]
        if self.already_in_icloud:
            lines.append(f"- Already in iCloud (taken from its library, not uploaded back): {self.already_in_icloud}")
        if self.error:
            lines.append(f"- Error: {self.error}")
        lines += ["", "| phase | status | files | seconds |", "| --- | --- | ---: | ---: |"]
        lines += [f"| {p['phase']} | {p['status']} | {p['files']} | {p['seconds']:.2f} |" for p in self.phases]
        if self.duplicates:
            lines += ["", "## Duplicates", ""]
            lines += [f"- {d.source_path} is {'an' if d.kind == 'exact' else 'a'} {d.kind} duplicate of "
                      f"{d.keeper_path} (file {d.keeper_id})" for d in self.duplicates]
        if self.quarantined:
            lines += ["", "## Quarantined", ""]
            lines += [f"- {q.source_path}: {q.error}" for q in self.quarantined]
        if self.sidecars:
            lines += ["", "## Sidecars kept beside their photo", ""]
            lines += [f"- {s['sidecar']} (with {s['photo']})" for s in self.sidecars]
        if self.kept_in_icloud:
            lines += ["", f"## {KEPT_TITLE}", ""]
            lines += [f"- {k['original_name']}: {k['reason']}" for k in self.kept_in_icloud]
        return "\n".join(lines) + "\n"


def build_report(catalog: Catalog, batch_id: str, phase_order: list[str], *, success: bool,
                 duration_seconds: float, source_folders: Sequence[Path], error: str | None = None) -> RunReport:
    """The batch's report; files are named by their path inside `source_folders` (FOLDER_SOURCE_PATHS)."""
    runs = {run.phase: run for run in catalog.latest_phase_runs(batch_id)}
    phases: list[dict[str, Any]] = []
    for name in phase_order:
        if name not in runs:
            phases.append({"phase": name, "status": "not run", "files": 0, "seconds": 0.0})
            continue
        # The batch's totals over every run of the phase: after a retry the newest run alone says ~0.
        whole = phase_totals(catalog, batch_id, name)
        phases.append({"phase": name, "status": runs[name].status, "files": whole.files,
                       "seconds": round(whole.seconds, 3)})
    totals = catalog.byte_totals(batch_id)
    return RunReport(
        batch_id=batch_id, success=success, duration_seconds=duration_seconds,
        phases_succeeded=sum(1 for p in phases if p["status"] in ("succeeded", "skipped")),
        phases_total=len(phase_order), files_processed=totals.files,
        files_by_state=catalog.count_by_state(batch_id), bytes_in=totals.bytes_before_compression,
        bytes_out=totals.bytes_after_compression, phases=phases,
        duplicates=[replace(d, source_path=path_inside_source(d.source_path, source_folders),
                            keeper_path=path_inside_source(d.keeper_path, source_folders))
                    for d in catalog.duplicates(batch_id)],
        quarantined=[replace(q, source_path=path_inside_source(q.source_path, source_folders))
                     for q in catalog.quarantined(batch_id)],
        sidecars=[{"photo": photo, "sidecar": sidecar} for photo, sidecar in sorted_sidecars(catalog, batch_id)],
        error=error, already_in_icloud=count_in_library(catalog, batch_id),
        kept_in_icloud=[asdict(kept) for kept in kept_originals(catalog, batch_id)])


def _write_private(path: Path, text: str) -> None:
    """Owner-only (0600): a report lists paths of the family's files."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)  # a report written before this rule


def write_report(report: RunReport, folder: Path, keep: int) -> Path:
    """Write `report-<batch>.json` and `.md`, then delete all but the newest `keep` reports."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = folder / f"report-{report.batch_id}"
    _write_private(stem.with_suffix(".json"), report.to_json())
    markdown = stem.with_suffix(".md")
    _write_private(markdown, report.to_markdown())
    reports = sorted(folder.glob("report-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in reports[keep:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".md").unlink(missing_ok=True)
    return markdown
