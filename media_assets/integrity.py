"""`media-pipeline verify --full`: re-hash everything the catalog says is kept, like `rclone check`, to find
bit rot, missing files and strays, and download back what iCloud holds (all, or `--sample N`) to compare its
SHA-256. `--repair` then sends a bad or missing destination copy again from the kept copy (once that re-hashes to
the catalog's checksum), verifies it and records it; a copy that matches is never touched. Every check is
recorded in the catalog (`status` shows the last) and any problem is a Telegram alert."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from media_assets.catalog.dashboard import remote_ids_at
from media_assets.catalog.icloud import uploaded_file_ids
from media_assets.catalog.integrity import record_integrity_check, record_repair
from media_assets.catalog.repository import Catalog, MediaFile, path_inside_source
from media_assets.catalog.sidecars import all_sidecars
from media_assets.catalog.states import FileState
from media_assets.destinations.base import (
    Destination,
    ListsItsFiles,
    ReadsBack,
    Resends,
    SeesItsCopies,
    StatsItsCopies,
    UploadJob,
)
from media_assets.media.hashing import sha256_file
from media_assets.phases.upload import capture_moment
from media_assets.settings import Settings
from media_assets.storage import TEMP_PREFIX
from media_assets.telegram.notify import send_alert

CATEGORIES = ("matching", "pruned", "differing", "missing", "unknown_extra", "errors")
#: Categories that are no problem: a copy that holds its bytes, or one removed on purpose after verification.
FINE = ("matching", "pruned")
#: The place of the copies in MEDIA_ROOT (originals, compressed and kept copies, sidecars, strays there); the
#: other places are the destinations, by name.
KEPT = "kept"
#: Who starts a check (`integrity_checks.started_by`), as the alert names it.
STARTED_BY = {"cli": "by hand", "schedule": "the weekly scrub", "ui": "from the Dagster UI"}
#: Problem lines an alert lists and the catalog keeps of a check (the command prints them all).
ALERT_LINES = 10
STORED_LINES = 100


@dataclass(frozen=True)
class DamagedCopy:
    """A copy at a destination that is missing or holds other bytes: what `--repair` sends again."""

    file: MediaFile
    destination: str
    remote_id: str
    category: str


@dataclass
class IntegrityReport:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    #: The counts per place (KEPT or a destination's name).
    by_place: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    damaged: list[DamagedCopy] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    not_repaired: list[str] = field(default_factory=list)

    def add(self, category: str, detail: str | None = None, place: str = KEPT) -> None:
        self.counts[category] += 1
        self.by_place.setdefault(place, Counter())[category] += 1
        if detail is not None:
            self.problems.append(f"{category}: {detail}")

    @property
    def found(self) -> int:
        """Problems the check found (repaired ones included)."""
        return sum(n for category, n in self.counts.items() if category not in FINE)

    @property
    def ok(self) -> bool:
        """Nothing left to fix: no problem found, or every one repaired."""
        return self.found == len(self.repaired)

    def metadata(self) -> dict[str, int]:
        """The counts, then each place's non-zero ones ("local_differing"), and the copies repaired."""
        per_place = {f"{place}_{category}": n for place, counts in sorted(self.by_place.items())
                     for category, n in counts.items() if n}
        return {**self.counts, **per_place, "repaired": len(self.repaired)}

    def summary(self) -> str:
        line = ", ".join(f"{n} {c.replace('_', ' ')}" for c, n in self.counts.items())
        return line + (f"; {len(self.repaired)} repaired" if self.repaired else "")

    def to_text(self) -> str:
        lines = [self.summary()]
        lines += [f"  {place}: " + ", ".join(f"{n} {c.replace('_', ' ')}" for c, n in counts.items())
                  for place, counts in sorted(self.by_place.items())]
        lines += self.problems
        lines += [f"repaired: {line}" for line in self.repaired]
        lines += [f"not repaired: {line}" for line in self.not_repaired]
        return "\n".join(lines)


def _read_back_choice(catalog: Catalog, destinations: Mapping[str, Destination],
                      sample: int | None) -> set[tuple[int, str]] | None:
    """Which uploads to download back: all (None), or a random `sample` of those at destinations that can."""
    if sample is None:
        return None
    uploaded = [(file_id, name) for name, destination in destinations.items() if isinstance(destination, ReadsBack)
                for file_id in uploaded_file_ids(catalog, name)]
    return set(random.sample(uploaded, min(sample, len(uploaded))))


def check_everything(settings: Settings, catalog: Catalog, destinations: Mapping[str, Destination],
                     read_back_sample: int | None = None) -> IntegrityReport:
    """Everything kept, and every upload; at a destination that reads back (iCloud), every upload is also
    downloaded and its SHA-256 compared, or only a random `read_back_sample` of them."""
    report = IntegrityReport()
    known: set[Path] = set()
    read_back = _read_back_choice(catalog, destinations, read_back_sample)
    folders = settings.sources.folder_source_paths

    def check(relative: str | None, expected: str | None, what: str, pruned: bool = False) -> None:
        if not relative or not expected:
            return
        path = settings.storage.media_root / relative
        if path in known:
            return
        known.add(path)
        try:
            if not path.is_file():
                report.add(*(("pruned",) if pruned else ("missing", f"{what} {relative}")))
            elif sha256_file(path) != expected:
                report.add("differing", f"{what} {relative} does not match its checksum")
            else:
                report.add("matching")
        except OSError as error:
            report.add("errors", f"{what} {relative}: {error.strerror}")

    # Every catalogued copy that must still hold its bytes: originals, compressed outputs, sorted copies.
    for file in catalog.iter_hashed_files():
        name = path_inside_source(file.source_path, folders)
        check(file.original_path, file.content_hash, f"original of {name}:", file.original_pruned_at is not None)
        if file.output_path != file.original_path:
            check(file.output_path, file.output_hash, f"compressed copy of {name}:",
                  file.output_pruned_at is not None)
        if file.state in (FileState.SORTED, FileState.VERIFIED):
            check(file.sorted_path, file.output_hash, f"kept copy of {name}:")
        for upload in catalog.uploads_of(file.id):
            if upload.status != "uploaded":
                continue
            destination = destinations.get(upload.destination)
            if destination is None:
                continue  # a destination turned off since: nothing to compare against
            place, remote_id, checksum = upload.destination, upload.remote_id or "", upload.checksum or ""
            where = f"{name} at {place} ({remote_id})"
            reader = destination if isinstance(destination, ReadsBack) and (
                read_back is None or (file.id, place) in read_back) else None
            try:
                arrived = destination.verify(remote_id, checksum)
                same_bytes = not arrived or reader is None or reader.verify_bytes(remote_id, checksum)
                there = arrived or (isinstance(destination, SeesItsCopies) and destination.holds(remote_id))
            except Exception as error:  # any failure to look is an error to report
                report.add("errors", f"{where}: {error}", place)
                continue
            if not there:
                report.add("missing", where, place)
            elif not arrived:
                report.add("differing", f"{where}: the copy there does not match its checksum", place)
            elif not same_bytes:
                report.add("differing", f"{where}: the bytes downloaded back do not match its checksum", place)
            else:
                report.add("matching", place=place)
                continue
            report.damaged.append(DamagedCopy(file, place, remote_id, "missing" if not there else "differing"))

    for name, destination in destinations.items():
        if isinstance(destination, ListsItsFiles):
            for extra in sorted(destination.all_ids() - remote_ids_at(catalog, name)):
                report.add("unknown_extra", f"{name} {extra}: at the destination, not sent by the pipeline", name)

    for sidecar in all_sidecars(catalog):
        check(sidecar.kept_path, sidecar.content_hash, "sidecar", sidecar.pruned)

    for folder in ("originals", "compressed", "uploaded", "quarantine"):
        for root, _dirs, files in os.walk(settings.storage_dir(folder)):
            for name in files:
                path = Path(root) / name
                if path not in known and not name.startswith(TEMP_PREFIX):
                    report.add("unknown_extra", str(path.relative_to(settings.storage.media_root)))
    return report


def repair_copies(settings: Settings, catalog: Catalog, destinations: Mapping[str, Destination],
                  report: IntegrityReport) -> None:
    """Send every damaged destination copy of `report` again from the file's kept copy, which must first
    re-hash to the catalog's checksum; verify what arrived (bytes read back where the destination can) and
    record it. What cannot be repaired is said in `report.not_repaired`."""
    folders = settings.sources.folder_source_paths
    for damaged in report.damaged:
        file, place = damaged.file, damaged.destination
        where = f"{path_inside_source(file.source_path, folders)} at {place} ({damaged.remote_id})"
        destination = destinations[place]
        checksum = file.output_hash or ""
        kept = settings.storage.media_root / (file.sorted_path or "")
        if not isinstance(destination, Resends):
            report.not_repaired.append(f"{where}: {place} cannot take a copy again")
            continue
        if not file.sorted_path or not kept.is_file() or sha256_file(kept) != checksum:
            report.not_repaired.append(f"{where}: the kept copy {file.sorted_path or '(none yet)'} does not "
                                       "match the catalog either, so it is not sent")
            continue
        try:
            remote_id = destination.resend(damaged.remote_id, UploadJob(kept, kept.name, checksum,
                                                                        capture_moment(file)))
            intact = destination.verify(remote_id, checksum) and (
                not isinstance(destination, ReadsBack) or destination.verify_bytes(remote_id, checksum))
        except Exception as error:  # one copy that cannot be sent stops no other repair
            report.not_repaired.append(f"{where}: sending it again failed: {error}")
            continue
        if not intact:
            report.not_repaired.append(f"{where}: sent again as {remote_id}, but it does not verify")
            continue
        record_repair(catalog, file, place, remote_id,
                      f"repaired at {place}: the {damaged.category} copy {damaged.remote_id} sent again from "
                      f"the kept copy, verified as {remote_id}",
                      destination.identity(remote_id) if isinstance(destination, StatsItsCopies) else None)
        report.repaired.append(f"{where}: sent again from the kept copy and verified"
                               + (f" as {remote_id}" if remote_id != damaged.remote_id else ""))


def verify_library(settings: Settings, catalog: Catalog, destinations: Mapping[str, Destination], *,
                   started_by: str, read_back_sample: int | None = None, repair: bool = False) -> IntegrityReport:
    """`verify --full` (with `repair`: `--repair`), started by one of STARTED_BY: check, repair if asked, record
    the check in the catalog, and alert on any problem."""
    started_at = datetime.now(timezone.utc)
    report = check_everything(settings, catalog, destinations, read_back_sample)
    if repair:
        repair_copies(settings, catalog, destinations, report)
    record_integrity_check(catalog, started_at=started_at, started_by=started_by, repair=repair, ok=report.ok,
                           counts=report.metadata(), repaired=len(report.repaired),
                           problems="\n".join(_first(report.problems + report.not_repaired, STORED_LINES)) or None)
    if report.found:
        repaired = ([f"{len(report.repaired)} repaired; {report.found - len(report.repaired)} still to fix"]
                    if repair else ["`media-pipeline verify --repair` sends bad or missing destination copies again"])
        head = f"⚠️ verify --full ({STARTED_BY[started_by]}) found problems: {report.summary()}"
        # One key per kind of finding: the same problems are not repeated within the throttle window, new ones are.
        key = "scrub:" + ",".join(f"{c}={n}" for c, n in report.counts.items() if n and c not in FINE)
        send_alert(key, "\n".join([head, *_first(report.problems, ALERT_LINES), *repaired]), settings=settings)
    return report


def _first(lines: list[str], limit: int) -> list[str]:
    return lines[:limit] + ([f"… and {len(lines) - limit} more"] if len(lines) > limit else [])
