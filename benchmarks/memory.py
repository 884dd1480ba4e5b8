"""Peak memory and CPU time of a run, sampled over its whole process tree (the process, its workers, ffmpeg, ...).

Not `ru_maxrss`: Linux keeps it across execve, so a child started from a big parent reports the parent's peak
(the dedup benchmark's 10,000-file child once "peaked" at 1,071 MB that way, 130 MB when started from a shell),
and RUSAGE_CHILDREN gives only the largest single descendant. Sampling the tree every 50 ms sees only the run's
own processes; it can miss a peak shorter than that, which a phase working on thousands of files does not have.

CPU time is sampled the same way, so that a run on a machine shared with other work can be judged by what it
spent rather than by its wall time: at each sample, the user + system seconds of every live process of the tree
plus what each has collected from its exited children (the kernel's RUSAGE_CHILDREN totals, which include the
children's own reaped descendants). A process's seconds move to its parent's collected total when it is reaped,
so the sum only dips between an exit and its reap; the series keeps its running maximum. `cpu_between` reads the
series for any interval of the run (a phase), and the 1-minute load average is sampled beside it.
"""

from __future__ import annotations

import bisect
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass
class TreeMemory:
    """Samples the summed RSS (and PSS: shared pages counted once) and the CPU seconds of a process and its
    descendants, and the machine's load average."""

    pid: int
    interval: float = 0.05
    peak_rss: int = 0
    peak_pss: int = 0
    peak_processes: int = 0
    #: The processes at the peak RSS: (name, RSS MB), largest first.
    peak_breakdown: list[tuple[str, float]] = field(default_factory=list)
    #: (epoch seconds, CPU seconds of the tree so far), one per sample.
    cpu: list[tuple[float, float]] = field(default_factory=list)
    #: (epoch seconds, 1-minute load average), one per sample.
    load: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = pss = 0
        cpu = 0.0
        each: list[tuple[str, float]] = []
        for process in processes:
            try:
                info = process.memory_full_info()
                times = process.cpu_times()
                name = process.name() if process.pid == self.pid else f"{process.name()} {process.pid}"
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            cpu += times.user + times.system + times.children_user + times.children_system
            each.append((name, round(info.rss / 2**20, 1)))
        if rss > self.peak_rss:
            self.peak_breakdown = sorted(each, key=lambda item: -item[1])
        now = time.time()
        self.cpu.append((now, max(cpu, self.cpu[-1][1] if self.cpu else 0.0)))
        self.load.append((now, os.getloadavg()[0]))
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

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the tree spent between two epoch times (interpolated between the samples around them)."""
        return max(0.0, self._cpu_at(end) - self._cpu_at(start))

    def _cpu_at(self, when: float) -> float:
        times = [t for t, _ in self.cpu]
        i = bisect.bisect_left(times, when)
        if i == 0:
            return self.cpu[0][1] if self.cpu else 0.0
        if i == len(times):
            return self.cpu[-1][1]
        (t0, c0), (t1, c1) = self.cpu[i - 1], self.cpu[i]
        return c0 + (c1 - c0) * (when - t0) / max(t1 - t0, 1e-9)

    def load_between(self, start: float, end: float) -> dict[str, float]:
        """Mean and highest 1-minute load average sampled between two epoch times."""
        values = [v for t, v in self.load if start <= t <= end] or [v for _, v in self.load[-1:]]
        return {"mean": round(sum(values) / len(values), 1), "max": round(max(values), 1)} if values else {}

    def figures(self) -> dict[str, Any]:
        return {"peak_rss_mb": round(self.peak_rss / 2**20, 1), "peak_pss_mb": round(self.peak_pss / 2**20, 1),
                "peak_processes": self.peak_processes, "peak_breakdown_mb": self.peak_breakdown,
                "cpu_seconds": round(self.cpu[-1][1] if self.cpu else 0, 1),
                "load": self.load_between(self.load[0][0], self.load[-1][0]) if self.load else {}}


def run_sampled(command: list[str], **popen: Any) -> tuple[subprocess.CompletedProcess[str], TreeMemory, float]:
    """Run `command` to its end while sampling its process tree: (result, memory, wall seconds)."""
    started = time.perf_counter()
    with (subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen) as child,
          TreeMemory(child.pid) as memory):
        stdout, stderr = child.communicate()
    seconds = time.perf_counter() - started
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr), memory, seconds
