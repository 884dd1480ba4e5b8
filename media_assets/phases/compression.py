"""Compression: per file, a smaller encoding nobody can see, or the original bytes with the reason.

The decisions live in media/photo_compression.py and media/video_compression.py. This phase streams the
batch's unique files from the catalog in pages, runs the work in a process pool (a bounded number of files in
flight, so memory stays flat whatever the batch size), and alone writes the catalog: one transaction per file
with the output that flows on to staging (the compressed file, or the original), the decision, and the quality
score (SSIM of the output against the original). Originals are only read; outputs appear in
`compressed/<batch>/` through a temp name and a rename. Compression is optional, so a file whose compression
crashes is not quarantined: its original flows on, with the error as the recorded decision.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from media_assets.catalog.states import FileState
from media_assets.media.compressed import FAILED, KEPT, Compressed, kept
from media_assets.media.photo_compression import PhotoPolicy, compress_photo
from media_assets.media.video_compression import VideoPolicy, compress_video
from media_assets.phases.workers import Workers, available_cores, release_freed_memory
from media_assets.storage import remove_partials

if TYPE_CHECKING:  # a worker imports this module for `compress_file`: no catalog (psycopg) or settings (pydantic)
    from media_assets.catalog.repository import Catalog, MediaFile
    from media_assets.phases.common import PhaseContext, PhaseOutcome
    from media_assets.settings import Settings

#: Fewer files than this per worker are compressed in the parent: starting a pool would cost more.
POOL_MIN_FILES_PER_WORKER = 2
#: A video with frames larger than this is compressed with no other file beside it. ffmpeg transcoding 1080p holds
#: about 150 MB (x264's frames, the decoder's); beside a 12 MP photo's re-encode (about 140 MB in its worker) the
#: run's processes passed 600 MB. 720p (0.9 MP, about 70 MB in ffmpeg) still shares the machine.
ALONE_MIN_VIDEO_PIXELS = 1_000_000


@dataclass(frozen=True)
class CompressionConfig:
    photo: PhotoPolicy
    video: VideoPolicy
    workers: int
    progress_every: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CompressionConfig:
        """The compression section of the checked settings, as the policies the media code takes."""
        c = settings.compression
        photo = PhotoPolicy(jpeg_quality=c.jpeg_quality, quality_margin=c.jpeg_quality_margin,
                            min_saving_percent=c.min_saving_percent, min_ssim=c.min_ssim,
                            max_megapixels=c.max_megapixels, heic_jpeg_derivative=c.heic_jpeg_derivative)
        video = VideoPolicy(codec=c.video_codec, crf=c.video_crf, preset=c.video_preset,
                            min_bits_per_pixel=c.video_min_bits_per_pixel, min_saving_percent=c.min_saving_percent,
                            min_ssim=c.video_min_ssim)
        return cls(photo=photo, video=video, workers=c.workers, progress_every=c.progress_every)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs about one file (picklable, no database)."""

    source: Path
    media_type: str | None
    media_format: str | None
    target_stem: Path
    paired: bool


def compress_file(job: Job, config: CompressionConfig) -> Compressed:
    """One file's decision; never raises, so one bad file cannot stop the batch."""
    size = 0
    try:
        size = job.source.stat().st_size
        if job.media_type == "video":
            return compress_video(job.source, job.media_format or "", job.target_stem, config.video,
                                  paired=job.paired)
        if job.media_type == "photo":
            return compress_photo(job.source, job.media_format or "", job.target_stem, config.photo)
        return kept(size, f"unknown media type {job.media_type!r}")
    except Exception as error:  # compression is optional: the original flows on
        return kept(size, f"compression failed: {type(error).__name__}: {error}", action=FAILED)
    finally:
        release_freed_memory()


def _results(config: CompressionConfig, jobs: Iterable[tuple[MediaFile, Job]], workers: Workers
             ) -> Iterator[tuple[MediaFile, Compressed]]:
    """(file, result) in the order of `jobs`; a worker that dies keeps that file's original."""
    def worker_failed(file: MediaFile, error: Exception) -> Compressed:
        return kept(file.size_bytes or 0, f"compression worker failed: {type(error).__name__}: {error}",
                    action=FAILED)

    return workers.map(compress_file, ((file, (job, config)) for file, job in jobs), on_error=worker_failed,
                       name=lambda file: file.original_name, runs_alone=runs_alone)


def runs_alone(file: MediaFile) -> bool:
    """Whether the file's compression is too big to share the machine: a video above ALONE_MIN_VIDEO_PIXELS
    (one of unknown size too). Videos are few, so the cost is a core idle while each of them is transcoded."""
    if file.media_type != "video":
        return False
    return file.width is None or file.height is None or file.width * file.height > ALONE_MIN_VIDEO_PIXELS


def _paired(catalog: Catalog, file: MediaFile) -> bool:
    """Whether deduplication linked this video to a still (Live Photo)."""
    fingerprint = catalog.fingerprints([file.id]).get(file.id)
    return fingerprint is not None and bool(fingerprint["pair_key"])


def record(catalog: Catalog, ctx: PhaseContext, file: MediaFile, result: Compressed) -> None:
    """One transaction: the file moves to compressed with what flows on, its decision and quality score."""
    path: str | None
    if result.output is not None:
        path, size, digest = ctx.relative(result.output), result.size_after, result.output_hash
    else:
        path, size, digest = file.original_path, file.size_bytes, file.content_hash
    catalog.move(file, FileState.COMPRESSED, detail=result.decision, compression_decision=result.decision,
                 quality_score=result.quality, output_path=path, output_size=size, output_hash=digest)


def compress(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    """Compress the batch's unique files, then measure what compression did to the whole batch."""
    _compress_files(ctx, outcome)
    outcome.measures.update(quality_metadata(ctx.catalog, ctx.batch_id))


def _compress_files(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    config = CompressionConfig.from_settings(ctx.settings)
    target_dir = ctx.settings.storage_dir("compressed") / ctx.batch_id
    remove_partials(target_dir)
    total = ctx.catalog.count_by_state(ctx.batch_id).get(FileState.UNIQUE.value, 0)
    if not total:
        return
    workers = config.workers if total >= config.workers * POOL_MIN_FILES_PER_WORKER else 1
    # ffmpeg would start a thread per core in every worker: each gets its share of the cores instead.
    config = replace(config, video=replace(config.video, threads=max(1, available_cores() // workers)))

    def jobs() -> Iterator[tuple[MediaFile, Job]]:
        for file in ctx.catalog.iter_files(ctx.batch_id, FileState.UNIQUE):
            paired = file.media_type == "video" and _paired(ctx.catalog, file)
            yield file, Job(ctx.path(file.original_path or ""), file.media_type, file.media_format,
                            target_dir / str(file.id), paired)

    started = time.perf_counter()
    ctx.progress.expect(total)
    with Workers(workers, in_flight_per_worker=2, working_on=ctx.progress.working_on) as pool:
        for done, (file, result) in enumerate(_results(config, jobs(), pool), start=1):
            record(ctx.catalog, ctx, file, result)
            outcome.files += 1
            outcome.counts[result.action] += 1
            outcome.bytes_in += file.size_bytes or 0
            outcome.bytes_out += (result.size_after if result.output is not None else file.size_bytes) or 0
            ctx.progress.advance()
            if done % config.progress_every == 0 or done == total:
                rate = done / max(time.perf_counter() - started, 1e-9)
                ctx.log.info(f"compression: {done}/{total} files ({rate:.1f} files/s), "
                             f"{outcome.bytes_in - outcome.bytes_out:,} bytes saved so far")
    outcome.counts["bytes_saved"] = outcome.bytes_in - outcome.bytes_out


def quality_metadata(catalog: Catalog, batch_id: str) -> dict[str, float | int]:
    """Bytes saved and the distribution of quality scores of a batch's compressed outputs, as plain numbers
    for Dagster's metadata plots (read back from the catalog, so a re-run reports the whole batch)."""
    rows = catalog.compression_results(batch_id)
    scores = sorted(r.quality_score for r in rows if r.changed and r.quality_score is not None)
    values: dict[str, float | int] = {
        "bytes_saved": sum((r.size_bytes or 0) - (r.output_size or 0) for r in rows),
        "outputs_with_quality_score": len(scores),
    }
    if scores:
        values.update(quality_min=round(scores[0], 5), quality_median=round(statistics.median(scores), 5))
    return values


def keep_originals(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    """Compression turned off: the originals are what gets staged."""
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.UNIQUE):
        record(ctx.catalog, ctx, file, kept(file.size_bytes or 0, "compression turned off"))
        outcome.files += 1
        outcome.bytes_in += file.size_bytes or 0
        outcome.bytes_out += file.size_bytes or 0
        outcome.counts[KEPT] += 1
    outcome.measures.update(quality_metadata(ctx.catalog, ctx.batch_id))
