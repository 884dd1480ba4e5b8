"""Peak memory of a run, sampled over its whole process tree (the process, its workers, ffmpeg, ...).

Not `ru_maxrss`: Linux keeps it across execve, so a child started from a big parent reports the parent's peak
(the dedup benchmark's 10,000-file child once "peaked" at 1,071 MB that way, 130 MB when started from a shell),
and RUSAGE_CHILDREN gives only the largest single descendant. Sampling the tree every 50 ms sees only the run's
own processes; it can miss a peak shorter than that, which a phase working on thousands of files does not have.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass
class TreeMemory:
    """Samples the summed RSS (and PSS: shared pages counted once) of a process and its descendants."""

    pid: int
    interval: float = 0.05
    peak_rss: int = 0
    peak_pss: int = 0
    peak_processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = pss = 0
        for process in processes:
            try:
                info = process.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, len(processes))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def figures(self) -> dict[str, float]:
        return {"peak_rss_mb": round(self.peak_rss / 2**20, 1), "peak_pss_mb": round(self.peak_pss / 2**20, 1),
                "peak_processes": self.peak_processes}


def run_sampled(command: list[str], **popen: Any) -> tuple[subprocess.CompletedProcess[str], TreeMemory, float]:
    """Run `command` to its end while sampling its process tree: (result, memory, wall seconds)."""
    started = time.perf_counter()
    with (subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen) as child,
          TreeMemory(child.pid) as memory):
        stdout, stderr = child.communicate()
    seconds = time.perf_counter() - started
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr), memory, seconds
