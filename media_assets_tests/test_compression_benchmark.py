"""The compression benchmark runs end to end in its quick form and holds its promises on that corpus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "compression.py"


@pytest.mark.slow
def test_quick_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out), "--cache", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| photos q95-98 |" in done.stdout
    report = json.loads(out.read_text())
    ours, naive = report["ours"]["groups"], report["naive"]["groups"]
    assert report["violations"] == []
    assert all(row["grew"] == 0 for row in ours.values())
    high = ours["photos q95-98"]
    assert high["saved_percent"] > 0 and high["ssim_min"] >= 0.98
    assert naive["photos q80-85"]["grew"] >= 1  # the baseline's known failure, reproduced
    if shutil.which("jpegoptim"):  # the peer rows, beside ours, on the same JPEGs
        assert set(report["peers"]) == {"jpegoptim --max=85", "jpegoptim --all-progressive"}
        assert "| photos q95-98 | jpegoptim --max=85 |" in done.stdout
    else:
        assert "peers skipped: no jpegoptim binary" in done.stdout
    assert all(row["cpu_s_per_file"] >= 0 and row["metadata_lost"] == 0 for row in ours.values())
    assert naive["photos q95-98"]["metadata_lost"] >= 1  # Image.save drops EXIF: the check sees it
    if "clips already lean" in ours:
        assert ours["clips already lean"]["outputs"] == 0
