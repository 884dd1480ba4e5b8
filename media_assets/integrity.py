"""`media-pipeline verify --full`: re-hash everything the catalog says is kept, like `rclone check`, to find
bit rot, missing files and strays, and download back what iCloud holds (all, or `--sample N`) to compare its
SHA-256. Read-only: it reports and never repairs."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from media_assets.catalog.dashboard import remote_ids_at
from media_assets.catalog.icloud import uploaded_file_ids
from media_assets.catalog.repository import Catalog
from media_assets.catalog.sidecars import all_sidecars
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


def _kept_files(catalog: Catalog) -> Iterator[dict]:
    """Every catalogued copy that must still hold its bytes: originals, compressed outputs, sorted copies."""
    last_id = 0
    while True:
        rows = catalog.conn.execute(
            "SELECT id, original_name, state, content_hash, original_path, output_hash, output_path, sorted_path,"
            " original_pruned_at, output_pruned_at FROM media_files WHERE id > %s AND content_hash IS NOT NULL"
            " ORDER BY id LIMIT 500",
            (last_id,)).fetchall()
        if not rows:
            return
        yield from rows
        last_id = rows[-1]["id"]


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

    for row in _kept_files(catalog):
        check(row["original_path"], row["content_hash"], "original", row["original_pruned_at"] is not None)
        if row["output_path"] != row["original_path"]:
            check(row["output_path"], row["output_hash"], "compressed copy", row["output_pruned_at"] is not None)
        if row["state"] in ("sorted", "verified"):
            check(row["sorted_path"], row["output_hash"], "kept copy")
        for upload in catalog.uploads_of(row["id"]):
            if upload["status"] != "uploaded":
                continue
            destination = destinations.get(upload["destination"])
            if destination is None:
                continue  # a destination turned off since: nothing to compare against
            where = f"{row['original_name']!r} at {upload['destination']} ({upload['remote_id']})"
            reader = destination if isinstance(destination, ReadsBack) and (
                read_back is None or (row["id"], upload["destination"]) in read_back) else None
            try:
                arrived = destination.verify(upload["remote_id"], upload["checksum"])
                same_bytes = not arrived or reader is None or reader.verify_bytes(upload["remote_id"],
                                                                                 upload["checksum"])
            except Exception as error:  # noqa: BLE001 - any failure to look is an error to report
                report.add("errors", f"{upload['destination']} {upload['remote_id']}: {error}")
                continue
            if not arrived and isinstance(destination, ListsItsFiles) and destination.holds(upload["remote_id"]):
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
