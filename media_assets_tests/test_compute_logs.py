"""The step logs' capture (`PrivateComputeLogManager`): owner-only files, shown where the output went, and no
helper process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from media_assets.defs.instance import PRIVATE_LOG_MODE, PrivateComputeLogManager

CAPTURE = """
import subprocess, sys
import psutil
from media_assets.defs.instance import PrivateComputeLogManager
manager = PrivateComputeLogManager(base_dir=sys.argv[1])
with manager.capture_logs(["run-1", "compute_logs", "abcdefgh"]):
    print("a line of the step", flush=True)
    print("a warning of the step", file=sys.stderr, flush=True)
    subprocess.run(["echo", "a child's line"], check=True)
    print(len(psutil.Process().children(recursive=True)), file=sys.stderr, flush=True)
print("after the step", flush=True)
"""


def test_a_capture_writes_private_logs_and_shows_them_with_no_helper_process(tmp_path: Path) -> None:
    """Dagster's own capture starts a `tail -F` and a Python watcher (11 MB RSS) per stream beside every step;
    a thread of the run's process mirrors the logs instead."""
    done = subprocess.run([sys.executable, "-c", CAPTURE, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout == "a line of the step\na child's line\nafter the step\n"
    assert done.stderr == "a warning of the step\n0\n", "the step's process had no child but its own"
    manager = PrivateComputeLogManager(base_dir=str(tmp_path))
    log_key = ["run-1", "compute_logs", "abcdefgh"]
    out = Path(manager.get_captured_local_path(log_key, "out"))
    err = Path(manager.get_captured_local_path(log_key, "err"))
    assert out.read_text() == "a line of the step\na child's line\n"
    assert err.read_text() == "a warning of the step\n0\n"
    for written in (out, err, Path(manager.complete_artifact_path(log_key))):
        assert written.stat().st_mode & 0o777 == PRIVATE_LOG_MODE, written

