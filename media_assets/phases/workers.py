"""A phase's worker processes: files are processed in parallel, results come back in order, and only a few
jobs per worker are in flight, so memory stays bounded whatever the batch size. The parent alone writes the
catalog."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

K = TypeVar("K")
R = TypeVar("R")


class Workers:
    """A process pool of `count` workers, or the parent alone when `count` is 1 (a small batch)."""

    def __init__(self, count: int, *, in_flight_per_worker: int = 4) -> None:
        self.count = count
        self.in_flight = count * in_flight_per_worker
        # spawn: the parent holds a database connection and Dagster's threads, neither of which may be forked.
        self._pool = (ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))
                      if count > 1 else None)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def map(self, job: Callable[..., R], tasks: Iterable[tuple[K, tuple[Any, ...]]], *,
            on_error: Callable[[K, Exception], R] | None = None) -> Iterator[tuple[K, R]]:
        """(key, job(*args)) for each (key, args) of `tasks`, in order. With `on_error`, a job whose worker
        failed (killed, out of memory) gives `on_error(key, error)` instead of stopping the phase."""
        if self._pool is None:
            for key, args in tasks:
                yield key, job(*args)
            return
        window: deque[tuple[K, Future[R]]] = deque()

        def collect() -> tuple[K, R]:
            key, future = window.popleft()
            try:
                return key, future.result()
            except Exception as error:
                if on_error is None:
                    raise
                return key, on_error(key, error)

        for key, args in tasks:
            window.append((key, self._pool.submit(job, *args)))
            if len(window) >= self.in_flight:
                yield collect()
        while window:
            yield collect()
