"""What every phase shares: its inputs (batch, settings, catalog), its outcome, and the bookkeeping around it
(a `phase_runs` row, timing, one log line per batch). Phases themselves are plain functions, free of Dagster."""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from typing_extensions import Unpack

from media_assets.catalog.files import FileChanges, Move
from media_assets.catalog.repository import Catalog, MediaFile
from media_assets.catalog.states import FileState
from media_assets.phases.workers import release_freed_memory
from media_assets.settings import Settings
from media_assets.storage import make_durable

#: A long phase says how far it is at least this often (in the CLI's output and the Dagster run log).
PROGRESS_SECONDS = 20.0
#: How often a running phase's heartbeat thread wakes up: the progress bar's clock moves on, and a line is written
#: once PROGRESS_SECONDS passed without one.
HEARTBEAT_SECONDS = 1.0
#: A chunk of files worked on together and recorded in one catalog transaction (`in_chunks`): at most this many
#: files, and about this many seconds of work (the first chunk is small, later ones sized from its pace).
CHUNK_FILES = 200
CHUNK_SECONDS = 2.0
FIRST_CHUNK_FILES = 20
T = TypeVar("T")
#: Called with a phase's Progress on every file it finishes and on every heartbeat (the CLI's progress bar on a
#: terminal), from the phase's thread and from its heartbeat thread.
PROGRESS_LISTENERS: list[Callable[[Progress], None]] = []


@dataclass
class Progress:
    """How far a phase is: files done of `total`, files/s and an ETA; a line every PROGRESS_SECONDS. The phase's
    heartbeat thread (`heartbeat`) writes the line also while one file takes longer than that, naming the file
    the phase is `working_on`, so a 4 GB download or a long transcode does not look like a hang."""

    phase: str
    log: logging.Logger | Any
    total: int | None = None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    last_line: float = field(default_factory=time.monotonic)
    #: The file the phase is on and since when (one tuple: the heartbeat thread reads it while the phase sets it).
    on: tuple[str, float] | None = None
    _line_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def expect(self, total: int) -> None:
        self.total = total

    def advance(self, files: int = 1) -> None:
        self.done += files
        self._tell_listeners()
        self._line_if_due(self.line)

    @contextmanager
    def working_on(self, what: str) -> Iterator[None]:
        """While the block runs, heartbeat lines say "still on `what`, N s". Blocks nest (a chunk's upload inside
        the loop over the files): the outer file is named again when the inner block ends."""
        outer, self.on = self.on, (what, time.monotonic())
        try:
            yield
        finally:
            self.on = outer

    def beat(self) -> None:
        """The heartbeat thread's tick: the progress bar's elapsed time moves on, and a line once PROGRESS_SECONDS
        passed without one."""
        self._tell_listeners()
        self._line_if_due(self._still_line)

    @property
    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def line(self) -> str:
        return f"{self.phase}: {self._counts()}"

    def _still_line(self) -> str:
        on = self.on
        if on is None:  # between files (a query, dedup's clustering): how far it is
            return self.line()
        what, since = on
        return f"{self.phase}: still on {what}, {time.monotonic() - since:.0f} s; {self._counts()}"

    def _tell_listeners(self) -> None:
        for listener in PROGRESS_LISTENERS:
            listener(self)

    def _line_if_due(self, line: Callable[[], str]) -> None:
        with self._line_lock:  # the phase's thread and its heartbeat: one line per interval, not one each
            now = time.monotonic()
            if now - self.last_line < PROGRESS_SECONDS:
                return
            self.last_line = now
        self.log.info(line())

    def _counts(self) -> str:
        eta = "unknown"
        if self.total is not None and self.done:
            seconds = max(self.total - self.done, 0) / self.rate
            eta = f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
        total = f"/{self.total}" if self.total is not None else ""
        return f"{self.done}{total} files, {self.rate:.1f} files/s, ETA {eta}"


@contextmanager
def heartbeat(ctx: PhaseContext) -> Iterator[None]:
    """A thread that calls `ctx.progress.beat()` every HEARTBEAT_SECONDS while the block (a phase) runs: the
    phase's own thread may be busy with one file for minutes (a download, a copy, an upload, a hash) and cannot
    say so itself. The thread is joined when the block ends, so no line comes after the phase's summary. Dagster's
    `context.log` may be called from it: its handler keeps per-thread state and the Postgres event log opens a
    connection per write; the thread never touches the catalog."""
    stopped = threading.Event()

    def beat_until_stopped() -> None:
        while not stopped.wait(HEARTBEAT_SECONDS):
            ctx.progress.beat()  # read each time: a phase may start a new Progress (deduplication's decisions)

    thread = threading.Thread(target=beat_until_stopped, name=f"{ctx.progress.phase} heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()


@dataclass
class Chunk:
    """Files a phase works on together (`in_chunks`): what their work wrote, and what the catalog records of it
    afterwards (in one transaction, set-based: one statement per kind of change, not per file), then what may
    only happen once that is recorded (a removal)."""

    catalog: Catalog
    progress: Progress
    files: list[MediaFile]
    written: list[Path] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    gathered: list[tuple[Callable[[list[Any]], object], list[Any]]] = field(default_factory=list)
    afterwards: list[Callable[[], object]] = field(default_factory=list)

    def __iter__(self) -> Iterator[MediaFile]:
        """The chunk's files, each named by the phase's heartbeat lines while the caller works on it."""
        for file in self.files:
            with self.progress.working_on(file.original_name):
                yield file

    @property
    def ids(self) -> list[int]:
        """The chunk's file ids: to read what the chunk needs (sidecars, uploads) in one query."""
        return [file.id for file in self.files]

    def wrote(self, path: Path) -> None:
        """`path` was written or renamed without an fsync (`durable=False`): it is made durable before the
        catalog records anything of the chunk."""
        self.written.append(path)

    def move(self, file: MediaFile, target: FileState, *, detail: str | None = None,
             **changes: Unpack[FileChanges]) -> None:
        """Move the file when the chunk is recorded (`Catalog.move_files`, with the chunk's other moves)."""
        self.moves.append(Move(file, target, detail, changes))

    def gather(self, record: Callable[[list[T]], object]) -> list[T]:
        """A list the phase fills as it works (sidecars sorted, files pruned): `record` writes all of it in one
        statement in the chunk's transaction, unless it stays empty."""
        items: list[T] = []
        self.gathered.append((record, items))
        return items

    def then(self, action: Callable[[], object]) -> None:
        """Something to do once the chunk is recorded (remove a copy whose removal is recorded first)."""
        self.afterwards.append(action)

    def finish(self) -> None:
        make_durable(self.written)
        gathered = [(record, items) for record, items in self.gathered if items]
        if self.moves or gathered:
            with self.catalog.transaction() as cur:
                self.catalog.move_files(self.moves, cursor=cur)
                for record, items in gathered:
                    record(items)
        for action in self.afterwards:
            action()


def in_chunks(ctx: PhaseContext, files: Iterable[MediaFile], work: Callable[[Chunk], None], *,
              progress: bool = True) -> None:
    """Group commit: `work` does the file-system work of up to CHUNK_FILES files (about CHUNK_SECONDS of work)
    without an fsync each, then the chunk is made durable once and recorded in ONE catalog transaction, instead
    of an fsync and a WAL flush per file. A kill in between leaves the chunk's files in their old state, and a
    re-run finds their copies already there (same content) and catches up. When `work` fails, what it
    recorded for the files it finished is still recorded. `progress`: the files count as the phase's progress
    once recorded."""
    remaining = iter(files)
    size = FIRST_CHUNK_FILES
    while batch := list(itertools.islice(remaining, size)):
        chunk = Chunk(ctx.catalog, ctx.progress, batch)
        started = time.monotonic()
        try:
            work(chunk)
        except BaseException:
            with contextlib.suppress(Exception):  # the catalog may be what failed: the re-run catches up then
                chunk.finish()
            raise
        chunk.finish()
        if progress:
            ctx.progress.advance(len(batch))
        per_file = (time.monotonic() - started) / len(batch)
        size = max(1, min(CHUNK_FILES, int(CHUNK_SECONDS / max(per_file, 1e-6))))


class PhaseFailed(RuntimeError):
    """The phase found something wrong that must stop the batch (a re-run continues from here)."""


@dataclass
class PhaseContext:
    batch_id: str
    settings: Settings
    catalog: Catalog
    log: logging.Logger | Any = field(default_factory=lambda: logging.getLogger("media_assets"))
    dagster_run_id: str | None = None
    progress: Progress = field(init=False)

    def __post_init__(self) -> None:
        self.progress = Progress("phase", self.log)  # run_phase names it after the phase

    def files(self, *states: FileState, counted_here: bool = True) -> Iterator[MediaFile]:
        """The batch's files in these states (`Catalog.iter_files`), each named by the phase's heartbeat lines
        while the caller works on it and then counted as progress (unless not `counted_here`: a phase that works
        in chunks advances the progress itself when a file's work is done)."""
        for file in self.pending(*states):
            with self.progress.working_on(file.original_name):
                yield file
            if counted_here:
                self.progress.advance()

    def pending(self, *states: FileState) -> Iterator[MediaFile]:
        """The batch's files in these states, which the phase's progress now expects (for `in_chunks`, which
        names each file while it is worked on and counts it once its chunk is recorded)."""
        counts = self.catalog.count_by_state(self.batch_id)
        self.progress.expect(sum(counts.get(state.value, 0) for state in states))
        return self.catalog.iter_files(self.batch_id, *states)

    def path(self, relative: str) -> Path:
        """A catalog path (relative to MEDIA_ROOT) as an absolute path."""
        return self.settings.storage.media_root / relative

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.settings.storage.media_root))


@dataclass
class PhaseOutcome:
    """What a phase did to a batch; numbers become Dagster metadata and the run report."""

    phase: str
    status: str = "succeeded"
    files: int = 0
    failed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    note: str = ""
    #: Other numbers for the dashboard (not counts: a quality score, a median), read back from the catalog.
    measures: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        if self.status == "skipped":
            return f"{self.phase}: skipped ({self.note})"
        parts = [f"{self.files} files"]
        parts += [f"{n} {what}" for what, n in sorted(self.counts.items()) if n]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.bytes_in and self.bytes_out:
            parts.append(f"{self.bytes_in:,} -> {self.bytes_out:,} bytes")
        elif self.bytes_in or self.bytes_out:  # a phase that reads or writes only: no "-> 0 bytes"
            parts.append(f"{self.bytes_in or self.bytes_out:,} bytes")
        parts.append(f"{self.seconds:.2f}s")
        return f"{self.phase}: " + ", ".join(parts)

    def metadata(self) -> dict[str, int | float | str]:
        values: dict[str, int | float | str] = {
            "files": self.files, "failed": self.failed, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "seconds": round(self.seconds, 3), "status": self.status,
        }
        values.update({k: int(v) for k, v in self.counts.items()})
        values.update(self.measures)
        return values


PhaseFunction = Callable[[PhaseContext, PhaseOutcome], None]


def run_phase(name: str, ctx: PhaseContext, work: PhaseFunction, *, enabled: bool = True,
              when_disabled: PhaseFunction | None = None) -> PhaseOutcome:
    """Run one phase over a batch with its bookkeeping. A disabled phase is recorded as skipped, and
    `when_disabled` lets files flow on past it (for example compression off: originals are staged)."""
    # What the previous phase freed (a batch's fingerprints, the decision's index) goes back to the system:
    # glibc keeps it otherwise, and the next phase's workers would run beside an idle heap.
    release_freed_memory()
    outcome = PhaseOutcome(phase=name)
    ctx.progress = Progress(name, ctx.log)
    run_id = ctx.catalog.start_phase_run(ctx.batch_id, name, ctx.dagster_run_id)
    started = time.perf_counter()
    try:
        with heartbeat(ctx):
            if enabled:
                work(ctx, outcome)
            else:
                outcome.status, outcome.note = "skipped", "turned off in settings"
                if when_disabled is not None:
                    when_disabled(ctx, outcome)
    except Exception as error:
        outcome.seconds = time.perf_counter() - started
        ctx.catalog.finish_phase_run(run_id, status="failed", files_processed=outcome.files,
                                     files_failed=outcome.failed, bytes_in=outcome.bytes_in,
                                     bytes_out=outcome.bytes_out, details=outcome.metadata(),
                                     error=f"{type(error).__name__}: {error}")
        ctx.log.error(f"{name} failed for batch {ctx.batch_id}: {error}")
        raise
    outcome.seconds = time.perf_counter() - started
    ctx.catalog.finish_phase_run(run_id, status=outcome.status, files_processed=outcome.files,
                                 files_failed=outcome.failed, bytes_in=outcome.bytes_in, bytes_out=outcome.bytes_out,
                                 details=outcome.metadata())
    ctx.log.info(f"batch {ctx.batch_id} {outcome.summary()}")
    return outcome
