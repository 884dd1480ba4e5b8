"""The capture-date benchmark runs end to end in its quick form and measures both kinds of file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "metadata.py"


@pytest.mark.slow
def test_quick_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: the target missed (timings vary with load)
    rows = json.loads(out.read_text())["rows"]
    assert [row["files"] for row in rows] == ["real camera files (HEIC, JPEG, MPO, WebP)", "12 MP camera JPEGs"]
    assert all(row["count"] > 0 and row["capture_date_ms"] > 0 and row["copy_and_hash_ms"] > 0 for row in rows)
    assert "| real camera files (HEIC, JPEG, MPO, WebP) |" in done.stdout
