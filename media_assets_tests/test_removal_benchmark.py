"""The removal benchmark runs end to end in its quick form, in the folder it is given, and leaves nothing there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "removal.py"


def test_quick_benchmark(tmp_path: Path) -> None:
    out, where = tmp_path / "result.json", tmp_path / "disk"
    where.mkdir()
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--dir", str(where), "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    assert figures["files"] == 50 and figures["size_mb"] == 1.0
    assert figures["hard_link"]["wall_ms"] > 0 and figures["file"]["wall_ms"] > 0
    assert figures["filesystem"] != "unknown"  # the mount holding tmp_path was found in /proc/mounts
    assert "| the file |" in done.stdout
    assert list(where.iterdir()) == []
