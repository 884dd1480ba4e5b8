"""Uploads (icloud_upload, pixel_upload): send each staged file to a destination and record it in `uploads`.

A file becomes `uploaded` once every enabled destination has a row for it (uploaded, or not accepted with a
reason), so both upload phases can run in either order and a re-run only sends what is missing."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import datetime, timedelta, timezone

from media_assets.catalog.icloud import IN_LIBRARY
from media_assets.catalog.repository import MediaFile, path_inside_source
from media_assets.catalog.states import FileState
from media_assets.destinations.base import (
    Destination,
    HoldsItsSource,
    StatsItsCopies,
    UploadError,
    UploadJob,
    UploadsInGroups,
)
from media_assets.media.identify import content_format
from media_assets.phases.common import PhaseContext, PhaseFailed, PhaseOutcome

#: Files handed to the destination at a time (a concurrent destination keeps that many in flight).
SEND_CHUNK = 32


def upload(ctx: PhaseContext, outcome: PhaseOutcome, destination: Destination,
           required_destinations: Collection[str]) -> None:
    chunk: list[MediaFile] = []
    failures: list[tuple[MediaFile, Exception]] = []
    for file in ctx.files(FileState.STAGED, counted_here=False):  # a file counts once its upload is done
        if _settled_unsent(ctx, outcome, destination, file):
            ctx.progress.advance()
            continue
        chunk.append(file)
        if len(chunk) == SEND_CHUNK:
            _send(ctx, outcome, destination, chunk, failures)
            chunk = []
    _send(ctx, outcome, destination, chunk, failures)
    finish_uploads(ctx, outcome, required_destinations)
    if failures:
        first, error = failures[0]
        raise PhaseFailed(f"{len(failures)} file(s) could not be {destination.sending}: {_cause(error)} "
                          f"(first: {path_inside_source(first.source_path, ctx.settings.sources.folder_source_paths)}"
                          "); they stay staged and a re-run of the batch retries them")


def _settled_unsent(ctx: PhaseContext, outcome: PhaseOutcome, destination: Destination, file: MediaFile) -> bool:
    """Whether the file needs no sending: uploaded already, already in the destination's library, or a format it
    does not accept (recorded as such)."""
    if ctx.catalog.upload_for(file.id, destination.name) is not None:
        outcome.counts["already_uploaded"] += 1
        return True
    outcome.files += 1
    held = destination.already_holds(file.source, file.source_id) if isinstance(destination,
                                                                                HoldsItsSource) else None
    if held is not None:
        ctx.catalog.record_upload(file.id, destination.name, status=IN_LIBRARY, remote_id=held,
                                  checksum=file.output_hash, detail="already in iCloud: taken from this library")
        outcome.counts["already_in_icloud"] += 1
        return True
    reason = destination.refusal(_staged_format(ctx, file), file.media_type)
    if reason is not None:
        ctx.catalog.record_upload(file.id, destination.name, status="not_accepted", remote_id=None,
                                  checksum=file.output_hash, detail=reason)
        outcome.counts["not_accepted"] += 1
        ctx.log.warning(f"{file.original_name!r} not accepted by {destination.name}: {reason}")
        return True
    return False


def _cause(error: Exception) -> str:
    """The reason without the path (the message names the place and the file): 'Operation not permitted'."""
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)


def _staged_format(ctx: PhaseContext, file: MediaFile) -> str | None:
    """The format the destination receives: the original's, or that of compression's output when it is another
    file (a HEIC's JPEG derivative is what lets a JPEG-only destination take a HEIC)."""
    if not file.staged_path or not file.output_path or file.output_path == file.original_path:
        return file.media_format
    return content_format(ctx.path(file.staged_path)) or file.media_format


def _send(ctx: PhaseContext, outcome: PhaseOutcome, destination: Destination, files: list[MediaFile],
          failures: list[tuple[MediaFile, Exception]]) -> None:
    """Send files and record each result in this thread. A destination that uploads in groups (iCloud) transfers
    several at once; the catalog is still written here, one file at a time."""
    if not files:
        return
    jobs = [UploadJob(ctx.path(f.staged_path or ""), _name(f.staged_path), f.output_hash or "", capture_moment(f))
            for f in files]
    results: Iterable[tuple[UploadJob, str | Exception]]
    if isinstance(destination, UploadsInGroups):
        results = destination.upload_many(jobs)
    else:
        results = ((job, _upload_one(destination, job)) for job in jobs)
    for file, result in _each_awaited(ctx, files, results):
        if isinstance(result, Exception):
            outcome.failed += 1
            failures.append((file, result))
            ctx.catalog.set_error(file.id, f"upload to {destination.name} failed: {result}")
            ctx.log.warning(f"upload of {file.original_name!r} to {destination.name} failed: {result}")
        else:
            # right after the copy was written (or found) with these very bytes: verification stats, not reads
            identity = destination.identity(result) if isinstance(destination, StatsItsCopies) else None
            ctx.catalog.record_upload(file.id, destination.name, status="uploaded", remote_id=result,
                                      checksum=file.output_hash, copy_identity=identity)
            outcome.bytes_out += file.output_size or 0
            outcome.counts["uploaded"] += 1
        ctx.progress.advance()


def _each_awaited(ctx: PhaseContext, files: list[MediaFile], results: Iterable[tuple[UploadJob, str | Exception]]
                  ) -> Iterator[tuple[MediaFile, str | Exception]]:
    """Each file with its result, the phase `working_on` the file while its result is awaited (its upload)."""
    awaited = iter(results)
    for file in files:
        with ctx.progress.working_on(file.original_name):
            _job, result = next(awaited)
        yield file, result


def capture_moment(file: MediaFile) -> datetime | None:
    """The file's capture date as an instant: its local time at its UTC offset, or at this machine's offset
    when the offset is unknown (as the date chain read it)."""
    if file.captured_at is None:
        return None
    if file.capture_utc_offset_minutes is None:
        return file.captured_at.astimezone()
    return file.captured_at.replace(tzinfo=timezone(timedelta(minutes=file.capture_utc_offset_minutes)))


def _upload_one(destination: Destination, job: UploadJob) -> str | Exception:
    try:
        return destination.upload(*job)
    except (UploadError, OSError) as error:
        return error


def finish_uploads(ctx: PhaseContext, outcome: PhaseOutcome, required_destinations: Collection[str]) -> None:
    """Move staged files on once every enabled destination has taken (or declined) them."""
    required = set(required_destinations)
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.STAGED):
        done = {row.destination for row in ctx.catalog.uploads_of(file.id)}
        if required <= done:
            ctx.catalog.move(file, FileState.UPLOADED, error=None)
            outcome.counts["ready_for_sorting"] += 1


def _name(staged_path: str | None) -> str:
    return (staged_path or "").rsplit("/", 1)[-1]
