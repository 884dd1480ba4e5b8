"""What removing a file costs on a filesystem. Verification's pruning removes each verified batch's `originals/`
copies, and an ext4 mounted with `discard` trims a file's blocks there and then: on such a disk, pruning takes
longer than the checks it follows.

FILES files of SIZE MB are written and synced in a new folder in DIR (default: the temporary folder, so TMPDIR
chooses too), each with a second hard link. Removing the links is the baseline (the same unlink, no blocks
freed); removing the files then frees their blocks. Printed: ms per file, wall and CPU, of each, and the
filesystem's type and mount options.

    .venv/bin/python benchmarks/removal.py [--quick] [--dir DIR] [--files N] [--size-mb MB] [--json FILE]"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def filesystem(path: Path) -> str:
    """The type and mount options of the filesystem `path` is on, from /proc/mounts (the longest mount point
    that holds it)."""
    mount, kind, options = "", "unknown", ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            _, point, fs_type, fs_options, *_ = line.split()
            inside = str(path).startswith(point.rstrip("/") + "/") or str(path) == point
            if inside and len(point) >= len(mount):
                mount, kind, options = point, fs_type, fs_options
    return f"{kind} ({options})" if options else kind


def _remove_all(paths: list[Path]) -> dict[str, float]:
    """ms per file, wall and CPU (user + system of this process), to unlink `paths` one after another."""
    wall, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        path.unlink()
    count = max(len(paths), 1)
    return {"wall_ms": round(1000 * (time.perf_counter() - wall) / count, 3),
            "cpu_ms": round(1000 * (time.process_time() - cpu) / count, 3)}


def measure(folder: Path, files: int, size: int) -> dict[str, Any]:
    data = os.urandom(size)
    paths = [folder / f"IMG_{n:05d}.jpg" for n in range(files)]
    for path in paths:
        path.write_bytes(data)
        os.link(path, path.with_suffix(".link"))
    os.sync()  # written long before, as a batch's originals are when it is pruned
    links = _remove_all([path.with_suffix(".link") for path in paths])
    os.sync()
    removals = _remove_all(paths)
    return {"files": files, "size_mb": round(size / 2**20, 2), "filesystem": filesystem(folder.resolve()),
            "hard_link": links, "file": removals,
            "ratio": round(removals["wall_ms"] / max(links["wall_ms"], 1e-6), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 files of 1 MB (for a test)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (its filesystem is measured)")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size-mb", type=float, default=1.8, help="the size of a 12 MP camera JPEG")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    files, size = (50, 2**20) if args.quick else (args.files, int(args.size_mb * 2**20))
    folder = Path(tempfile.mkdtemp(prefix="media-pipeline-removal-", dir=args.dir))
    try:
        figures = measure(folder, files, size)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    print(f"{files} files of {figures['size_mb']} MB on {figures['filesystem']}\n")
    print("| removing | wall ms a file | CPU ms a file |\n| --- | ---: | ---: |")
    for what, key in (("a second hard link (baseline: no blocks freed)", "hard_link"), ("the file", "file")):
        row = figures[key]
        print(f"| {what} | {row['wall_ms']} | {row['cpu_ms']} |")
    print(f"\nremoving a file takes {figures['ratio']}x the baseline ({figures['machine']})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
