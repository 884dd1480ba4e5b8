"""The listing benchmark runs end to end in its quick form, in the folder it is given, and leaves nothing there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "listing.py"


def test_quick_benchmark(tmp_path: Path) -> None:
    out, where = tmp_path / "result.json", tmp_path / "disk"
    where.mkdir()
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--dir", str(where), "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr  # it asserts the walk chose exactly the new files
    figures = json.loads(out.read_text())
    assert (figures["files"], figures["batch"]) == (5000, 500)
    assert figures["walk_us_per_file"] > 0 and figures["floor_us_per_file"] > 0
    # ten batches, the k-th walked twice over k batches' files: 110 walks of 500 files, spread over 5,000
    expected = 110 * 500 * figures["walk_us_per_file"] / 1e3 / 5000
    assert abs(figures["first_import_walks_ms_per_file"] - expected) <= 0.002
    assert "| the folder source choosing a batch |" in done.stdout
    assert list(where.iterdir()) == []
