"""Uploads (icloud_upload, pixel_upload): send each staged file to a destination and record it in `uploads`.

A file becomes `uploaded` once every enabled destination has a row for it (uploaded, or not accepted with a
reason), so both upload phases can run in either order and a re-run only sends what is missing."""

from __future__ import annotations

from collections.abc import Collection

from media_assets.catalog.states import FileState
from media_assets.destinations.base import Destination, UploadError
from media_assets.phases.common import PhaseContext, PhaseFailed, PhaseOutcome


def upload(ctx: PhaseContext, outcome: PhaseOutcome, destination: Destination,
           required_destinations: Collection[str]) -> None:
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.STAGED):
        if ctx.catalog.upload_for(file.id, destination.name) is not None:
            outcome.counts["already_uploaded"] += 1
            continue
        outcome.files += 1
        reason = destination.refusal(file.media_format, file.media_type)
        if reason is not None:
            ctx.catalog.record_upload(file.id, destination.name, status="not_accepted", remote_id=None,
                                      checksum=file.output_hash, detail=reason)
            outcome.counts["not_accepted"] += 1
            ctx.log.warning(f"{file.original_name!r} not accepted by {destination.name}: {reason}")
            continue
        try:
            remote_id = destination.upload(ctx.path(file.staged_path or ""), _name(file.staged_path),
                                           file.output_hash or "")
        except (UploadError, OSError) as error:
            outcome.failed += 1
            ctx.catalog.set_error(file.id, f"upload to {destination.name} failed: {error}")
            ctx.log.warning(f"upload of {file.original_name!r} to {destination.name} failed: {error}")
            continue
        ctx.catalog.record_upload(file.id, destination.name, status="uploaded", remote_id=remote_id,
                                  checksum=file.output_hash)
        outcome.bytes_out += file.output_size or 0
        outcome.counts["uploaded"] += 1
    finish_uploads(ctx, outcome, required_destinations)
    if outcome.failed:
        raise PhaseFailed(f"{outcome.failed} file(s) could not be uploaded to {destination.name}; "
                          "they stay staged and a re-run of the batch retries them")


def finish_uploads(ctx: PhaseContext, outcome: PhaseOutcome, required_destinations: Collection[str]) -> None:
    """Move staged files on once every enabled destination has taken (or declined) them."""
    required = set(required_destinations)
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.STAGED):
        done = {row["destination"] for row in ctx.catalog.uploads_of(file.id)}
        if required <= done:
            ctx.catalog.move(file, FileState.UPLOADED, error=None)
            outcome.counts["ready_for_sorting"] += 1


def _name(staged_path: str | None) -> str:
    return (staged_path or "").rsplit("/", 1)[-1]
