"""A phase's worker processes: files are processed in parallel, results come back in order, and only a few
jobs per worker are in flight, so memory stays bounded whatever the batch size. The parent alone writes the
catalog. Workers die with the process that started them, however it dies (a SIGKILL included). The parent waits
for each file inside `working_on(name)` (the phase's `Progress.working_on`), so that a single long file (a video
transcode) gets heartbeat lines naming it."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

K = TypeVar("K")
R = TypeVar("R")
#: prctl(2) option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: have the kernel SIGKILL this worker when its parent dies. A spawn worker otherwise
    outlives a killed parent for ever, blocked on a queue whose write end it holds itself (and keeps the
    resource tracker alive with it)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the kernel was told
        os._exit(1)


#: Thread pools that numerical libraries start on import (OpenBLAS, OpenMP, MKL), one thread each in a worker:
#: the pool already runs one process per core, and a worker's own threads would only compete with its siblings.
#: libjpeg-turbo and zlib are single-threaded; ffmpeg gets its share through its own `-threads`.
ONE_THREAD_EACH = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def available_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not only the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim). After a 12 MP photo, glibc keeps up to
    ~35 MB of freed decode and encode buffers in a worker that then waits, for instance on a video's ffmpeg;
    trimming costs well under a millisecond."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc (musl): nothing to trim
            ctypes.CDLL(None).malloc_trim(0)


def _start_worker(parent_pid: int) -> None:
    """Pool initializer: dies with its parent, and its libraries run single-threaded."""
    die_with_parent(parent_pid)
    os.environ.update(ONE_THREAD_EACH)


class Workers:
    """A process pool of `count` workers, or one thread of the parent when `count` is 1 (a small batch: no
    process to start, and the parent can still say what it waits for)."""

    def __init__(self, count: int, *, in_flight_per_worker: int = 4,
                 working_on: Callable[[str], AbstractContextManager[object]] | None = None) -> None:
        self.count = count
        self.in_flight = count * in_flight_per_worker
        #: Entered with the name of the file waited for while the parent waits for it.
        self.working_on = working_on or (lambda _name: contextlib.nullcontext())
        # spawn: the parent holds a database connection and Dagster's threads, neither of which may be forked.
        self._pool: Executor = (ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_start_worker, initargs=(os.getpid(),))
                                if count > 1 else ThreadPoolExecutor(1))

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(cancel_futures=True)

    def map(self, job: Callable[..., R], tasks: Iterable[tuple[K, tuple[Any, ...]]], *,
            on_error: Callable[[K, Exception], R] | None = None,
            name: Callable[[K], str] = str,
            runs_alone: Callable[[K], bool] | None = None) -> Iterator[tuple[K, R]]:
        """(key, job(*args)) for each (key, args) of `tasks`, in order. With `on_error`, a job whose worker
        failed (killed, out of memory) gives `on_error(key, error)` instead of stopping the phase. `name` tells
        `working_on` which file is waited for. A job whose key `runs_alone` says so starts once every earlier job is
        done, and no later one starts before it is: the memory budget for jobs too big to share the machine."""
        window: deque[tuple[K, Future[R]]] = deque()

        def collect() -> tuple[K, R]:
            key, future = window.popleft()
            try:
                with self.working_on(name(key)):
                    return key, future.result()
            except Exception as error:
                if on_error is None:
                    raise
                return key, on_error(key, error)

        for key, args in tasks:
            alone = runs_alone is not None and runs_alone(key)
            while alone and window:
                yield collect()
            window.append((key, self._pool.submit(job, *args)))
            while window and (alone or len(window) >= self.in_flight):
                yield collect()
        while window:
            yield collect()
