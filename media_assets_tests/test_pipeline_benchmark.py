"""benchmarks/pipeline.py --quick runs in CI so the benchmark never rots: the whole generated library goes
through `run --all`, copies are found, the disk holds no more than the kept copies and the destinations', and
the per-file catalog queries are index lookups on a 100,000-file catalog."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_quick_pipeline_benchmark_takes_every_file_and_leaves_a_bounded_disk(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "pipeline.py"), "--quick", "--json", str(out),
                           "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| download | 42.3 | 45.6 |" in done.stdout
    [result] = json.loads(out.read_text())["sizes"].values()
    states = result["states"]
    assert sum(states.values()) == result["files"] == 200 and "quarantined" not in states
    assert states["duplicate"] >= 20  # 5% exact and 5% resized copies
    assert result["disk"]["footprint_ratio"] <= 1.05
    assert result["peak_rss_mb"] > 0 and result["catalog_mb"] > 0
    assert set(result["status"]["query_plans"].values()) == {"index"}, result["status"]["query_plans"]
