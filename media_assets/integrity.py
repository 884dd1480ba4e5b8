"""`media-pipeline verify --full`: re-hash everything the catalog says is kept, like `rclone check`, to find
bit rot, missing files and strays, and download back what iCloud holds (all, or `--sample N`) to compare its
SHA-256. Read-only: it reports and never repairs."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from media_assets.catalog.dashboard import remote_ids_at
from media_assets.catalog.icloud import uploaded_file_ids
from media_assets.catalog.repository import Catalog
from media_assets.catalog.sidecars import all_sidecars
from media_assets.catalog.states import FileState
from media_assets.destinations.base import Destination, ListsItsFiles, ReadsBack
from media_assets.media.hashing import sha256_file
from media_assets.settings import Settings
from media_assets.storage import TEMP_PREFIX

CATEGORIES = ("matching", "pruned", "differing", "missing", "unknown_extra", "errors")
#: Categories that are no problem: a copy that holds its bytes, or one removed on purpose after verification.
FINE = ("matching", "pruned")


@dataclass
class IntegrityReport:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    problems: list[str] = field(default_factory=list)

    def add(self, category: str, detail: str | None = None) -> None:
        self.counts[category] += 1
        if detail is not None:
            self.problems.append(f"{category}: {detail}")

    @property
    def ok(self) -> bool:
        return not any(self.counts[c] for c in CATEGORIES if c not in FINE)

    def to_text(self) -> str:
        lines = [", ".join(f"{n} {c.replace('_', ' ')}" for c, n in self.counts.items())]
        lines += self.problems
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
        check(file.original_path, file.content_hash, "original", file.original_pruned_at is not None)
        if file.output_path != file.original_path:
            check(file.output_path, file.output_hash, "compressed copy", file.output_pruned_at is not None)
        if file.state in (FileState.SORTED, FileState.VERIFIED):
            check(file.sorted_path, file.output_hash, "kept copy")
        for upload in catalog.uploads_of(file.id):
            if upload.status != "uploaded":
                continue
            destination = destinations.get(upload.destination)
            if destination is None:
                continue  # a destination turned off since: nothing to compare against
            where = f"{file.original_name!r} at {upload.destination} ({upload.remote_id})"
            reader = destination if isinstance(destination, ReadsBack) and (
                read_back is None or (file.id, upload.destination) in read_back) else None
            try:
                remote_id, checksum = upload.remote_id or "", upload.checksum or ""
                arrived = destination.verify(remote_id, checksum)
                same_bytes = not arrived or reader is None or reader.verify_bytes(remote_id, checksum)
            except Exception as error:  # any failure to look is an error to report
                report.add("errors", f"{upload.destination} {upload.remote_id}: {error}")
                continue
            if not arrived and isinstance(destination, ListsItsFiles) and destination.holds(upload.remote_id or ""):
                report.add("differing", f"{where}: the copy there does not match its checksum")
            elif not arrived:
                report.add("missing", where)
            elif not same_bytes:
                report.add("differing", f"{where}: the bytes downloaded back do not match its checksum")
            else:
                report.add("matching")

    for name, destination in destinations.items():
        if isinstance(destination, ListsItsFiles):
            for extra in sorted(destination.all_ids() - remote_ids_at(catalog, name)):
                report.add("unknown_extra", f"{name} {extra}: at the destination, not sent by the pipeline")

    for sidecar in all_sidecars(catalog):
        check(sidecar.kept_path, sidecar.content_hash, "sidecar")

    for folder in ("originals", "compressed", "uploaded", "quarantine"):
        for root, _dirs, files in os.walk(settings.storage_dir(folder)):
            for name in files:
                path = Path(root) / name
                if path not in known and not name.startswith(TEMP_PREFIX):
                    report.add("unknown_extra", str(path.relative_to(settings.storage.media_root)))
    return report
