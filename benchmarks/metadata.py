"""Benchmark of capture-date reading: `capture_date` (libexiv2 for photos, with the time-zone lookup) on the real
camera files of media_assets_tests/real_files and on generated 12 MP camera JPEGs, against the time the download
phase spends copying and hashing the same bytes (`write_atomically`) and checking them (`identify`, which decodes
every image), so it shows whether reading metadata could become the download's bottleneck.

    .venv/bin/python benchmarks/metadata.py [--quick] [--json FILE]

Target: a capture date costs under a fifth of the copy of its file and less than identifying it."""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media_assets.media.dates import capture_date
from media_assets.media.identify import UnsupportedMedia, identify
from media_assets.media.sample_library import make_photo
from media_assets.storage import write_atomically

REAL_FILES = Path(__file__).resolve().parent.parent / "media_assets_tests" / "real_files"


def _photos(folder: Path, quick: bool) -> dict[str, list[Path]]:
    real = []
    for path in sorted(REAL_FILES.iterdir()):
        try:
            identify(path)
        except (UnsupportedMedia, OSError):
            continue
        real.append(path)
    generated = [make_photo(folder / f"IMG_{n:04d}.JPG", size=(1600, 1200) if quick else (4000, 3000), seed=n,
                            taken=datetime(2023, 7, 1, 12, n % 60), offset="+02:00", gps=(48.85, 2.35))
                 for n in range(4 if quick else 12)]
    return {"real camera files (HEIC, JPEG, MPO, WebP)": real, "12 MP camera JPEGs": generated}


def _per_file(paths: list[Path], action: Any, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        for path in paths:
            action(path)
    return (time.perf_counter() - started) / (rounds * len(paths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rounds = 2 if args.quick else 10
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        copies = folder / "copies"
        copies.mkdir()

        def copy(path: Path) -> None:
            with path.open("rb") as stream:
                write_atomically(stream, copies / path.name)

        def read_date(path: Path) -> None:
            capture_date(path, is_video=False, home_zone="Europe/Paris")

        for label, paths in _photos(folder, args.quick).items():
            copy(paths[0])  # warm: imports, the zone database, the page cache
            read_date(paths[0])
            date_s = _per_file(paths, read_date, rounds)
            copy_s = _per_file(paths, copy, rounds)
            identify_s = _per_file(paths, identify, rounds)
            size = sum(p.stat().st_size for p in paths) / len(paths)
            rows.append({"files": label, "count": len(paths), "mean_mb": round(size / 1e6, 2),
                         "capture_date_ms": round(date_s * 1000, 3), "copy_and_hash_ms": round(copy_s * 1000, 3),
                         "identify_ms": round(identify_s * 1000, 3), "dates_per_s": round(1 / date_s),
                         "ratio": round(date_s / copy_s, 3), "below_identify": date_s < identify_s})
        shutil.rmtree(copies)
    print("| files | n | mean MB | capture_date ms/file | copy+SHA-256 ms/file | identify ms/file | dates/s "
          "| date/copy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['files']} | {row['count']} | {row['mean_mb']} | {row['capture_date_ms']} | "
              f"{row['copy_and_hash_ms']} | {row['identify_ms']} | {row['dates_per_s']:,} | {row['ratio']} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2))
    return 0 if all(row["ratio"] < 0.2 and row["below_identify"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
