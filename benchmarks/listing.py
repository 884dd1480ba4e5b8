"""What finding a batch's new files costs as the library grows. A folder source has no change feed: each batch
walks the whole folder and stats every known file (a file changed in place is a new version), twice (the check
that decides a batch starts, and download choosing its files). So during a first import the k-th batch walks
about k batches' worth of known files, and the walks' share of each file's cost grows with the library.

A library of FILES empty files in day folders of 10 is written in a new folder in DIR (default: the temporary
folder); all but the last BATCH files are known, as for the last batch of a first import. Timed, best of three:
the source's walk choosing that batch (`FolderSource` + `BatchSelection`, as the pipeline runs it, with the known
versions in memory: the catalog query that reads them is not counted), against the floor any walk pays (`os.walk`
and one `lstat` a file). Printed: µs per file walked, the last batch's two walks, and what the walks add to each
file of a whole first import of FILES files in batches of BATCH.

    .venv/bin/python benchmarks/listing.py [--quick] [--dir DIR] [--files N] [--batch N] [--json FILE]"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media_assets.selection import BatchLimits, BatchSelection  # noqa: E402
from media_assets.sources.folder import FolderSource  # noqa: E402

#: Walks of a folder source per batch: `automation.check_sources`, then download's.
WALKS_PER_BATCH = 2
FILES_PER_DAY = 10


def write_library(root: Path, files: int) -> None:
    for n in range(files):
        day = root / f"{2000 + n // 40_000}" / f"day-{n // FILES_PER_DAY:05d}"
        if n % FILES_PER_DAY == 0:
            day.mkdir(parents=True)
        (day / f"IMG_{n:06d}.JPG").write_bytes(b"x")


def _best_of_three(walk: Callable[[], int]) -> tuple[float, int]:
    """The shortest of three timed calls, and what the call returned."""
    best, result = float("inf"), 0
    for _ in range(3):
        started = time.perf_counter()
        result = walk()
        best = min(best, time.perf_counter() - started)
    return best, result


def measure(root: Path, files: int, batch: int) -> dict[str, Any]:
    write_library(root, files)
    source = FolderSource([root])
    items = list(source.scan())
    known = {(item.source_id, item.version) for item in items[:files - batch]}

    def choose() -> int:
        selection = BatchSelection(BatchLimits(max_files=batch, max_bytes=10**15))
        taken = sum(len(group) for group in selection.take_from(source.scan(), known))
        assert taken == batch and selection.known == files - batch, "the walk did not choose the new files"
        return taken

    def floor() -> int:
        walked = 0
        for folder, _, names in os.walk(root):
            for name in names:
                os.lstat(os.path.join(folder, name))
                walked += 1
        return walked

    ours, _ = _best_of_three(choose)
    bare, walked = _best_of_three(floor)
    assert walked == files
    per_file_us = 1e6 * ours / files
    batches = files // batch
    # The k-th batch of a first import walks about k * batch files, WALKS_PER_BATCH times.
    walked_in_import = WALKS_PER_BATCH * batch * batches * (batches + 1) / 2
    return {"files": files, "batch": batch, "walk_us_per_file": round(per_file_us, 2),
            "floor_us_per_file": round(1e6 * bare / files, 2), "ratio": round(ours / bare, 2),
            "last_batch_walks_s": round(WALKS_PER_BATCH * ours, 3),
            "first_import_walks_ms_per_file": round(walked_in_import * per_file_us / 1000 / files, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 files in batches of 500 (for a test)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the library")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000, help="BATCH_MAX_FILES")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    files, batch = (5_000, 500) if args.quick else (args.files, args.batch)
    root = Path(tempfile.mkdtemp(prefix="media-pipeline-listing-", dir=args.dir))
    try:
        figures = measure(root, files, batch)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    print(f"a library of {files:,} files, the last batch of {batch:,} new ({figures['machine']})\n")
    print("| walk | µs a file walked |\n| --- | ---: |")
    print(f"| os.walk + lstat (baseline: the floor) | {figures['floor_us_per_file']} |")
    print(f"| the folder source choosing a batch | {figures['walk_us_per_file']} |")
    print(f"\n{figures['ratio']}x the floor; the last batch's {WALKS_PER_BATCH} walks take "
          f"{figures['last_batch_walks_s']} s; over a first import of {files:,} files in batches of {batch:,}, "
          f"the walks add {figures['first_import_walks_ms_per_file']} ms to each file")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
