"""benchmarks/transfers.py --quick runs in CI so the benchmark never rots: every file arrives intact and the
pacer keeps under the stand-in's rate limit (no 429); the speed-up is only printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_quick_transfer_benchmark_moves_everything_intact_without_429s(tmp_path: Path) -> None:
    out = tmp_path / "transfers.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "transfers.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert list(rows) == ["download sequential", "download 4 at once", "download 8 at once",
                          "upload sequential", "upload 4 at once", "upload 8 at once"]
    assert [rows[k]["files"] for k in rows] == [60, 60, 60, 30, 30, 30]
    assert all(row["intact"] and row["http_429"] == 0 for row in rows.values())
    assert "speed-up" in done.stdout and result["concurrencies"] == [4, 8]
