"""Benchmark of compression against the naive baseline, all in one run on one generated corpus.

Corpus (seeded, camera-like, see media/sample_library.py): 12 MP photos saved at quality 95-98, 12 MP photos
already at 80-85, HEICs, PNG screenshots, grainy 1080p30 phone clips at a camera's ~17 Mbit/s and one clip a
messenger already squeezed to ~1.5 Mbit/s.

- ours: the phase's per-file work (`compress_file`) in a process pool of one worker per available core;
- naive: `Image.save(quality=85)` of every JPEG, and a fixed CRF 23 veryfast transcode of every video, one pool
  of the same size, every output taken whatever it weighs or looks like;
- peers on the JPEGs, the tool people use today (Debian's `jpegoptim`, skipped with a line when it is not
  installed): `jpegoptim --max=85` (lossy, re-encodes above q85) and `jpegoptim --all-progressive` (lossless),
  each output taken when it is smaller, as jpegoptim does.

Per group: bytes saved, files that grew, min/median luma SSIM of the outputs each side would keep, files/s,
CPU seconds per file (the process's and its children's, so it holds on a loaded machine where wall time does
not) and, for videos, frames encoded per second.

    .venv/bin/python benchmarks/compression.py [--quick] [--json FILE]

Generated corpora are cached under data/benchmarks/compression/ (git-ignored). Exits 1 when an output larger
than its input, below the SSIM gate or without every metadata segment of its source was accepted."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media_assets.media import sample_library as sample
from media_assets.media.compressed import KEPT
from media_assets.media.ffmpeg_tools import ffmpeg_path, probe
from media_assets.media.photo_compression import PhotoPolicy, jpeg_layout, jpeg_luma
from media_assets.media.ssim import ssim
from media_assets.media.video_compression import VideoPolicy
from media_assets.phases.compression import CompressionConfig, Job, compress_file
from media_assets.phases.workers import available_cores

CACHE = Path(__file__).resolve().parent.parent / "data" / "benchmarks" / "compression"


@dataclass(frozen=True)
class Sizes:
    photo: tuple[int, int]
    heic: tuple[int, int]
    screen: tuple[int, int]
    clip: tuple[int, int]
    clip_seconds: float
    high: int
    low: int
    heics: int
    screens: int
    clips: int


FULL = Sizes(photo=(4000, 3000), heic=(1024, 768), screen=(1080, 2400), clip=(1920, 1080), clip_seconds=4,
             high=12, low=6, heics=3, screens=4, clips=3)
QUICK = Sizes(photo=(800, 600), heic=(256, 192), screen=(360, 800), clip=(320, 180), clip_seconds=1,
              high=3, low=2, heics=1, screens=1, clips=1)


def build_corpus(folder: Path, sizes: Sizes) -> list[tuple[str, Path, str, str]]:
    """(group, path, media type, format) of every corpus file, generating the missing ones."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus: list[tuple[str, Path, str, str]] = []

    def photo(group: str, name: str, seed: int, quality: int, fmt: str = "JPEG", size: tuple[int, int] | None = None
              ) -> None:
        path = folder / name
        if not path.exists():
            data = sample.photo_bytes(image=sample.camera_like_image(size or sizes.photo, seed), quality=quality,
                                      fmt=fmt, taken=datetime(2024, 5, 1, 12, 0), offset="+02:00",
                                      gps=sample.LISBON)
            sample.write_bytes_if_changed(path, data)
        corpus.append((group, path, "photo", "heic" if fmt == "HEIC" else fmt.lower()))

    for i in range(sizes.high):
        photo("photos q95-98", f"high-{i}.jpg", 100 + i, 95 + i % 4)
    for i in range(sizes.low):
        photo("photos q80-85", f"low-{i}.jpg", 200 + i, 80 + i % 6)
    for i in range(sizes.heics):
        photo("HEIC", f"heic-{i}.heic", 300 + i, 80, fmt="HEIC", size=sizes.heic)
    for i in range(sizes.screens):
        path = folder / f"screen-{i}.png"
        if not path.exists():
            sample.write_bytes_if_changed(path, sample.screenshot_bytes(size=sizes.screen, seed=400 + i))
        corpus.append(("PNG screenshots", path, "photo", "png"))
    if ffmpeg_path():
        pixels = sizes.clip[0] * sizes.clip[1]
        camera_rate = f"{round(17e6 * pixels / (1920 * 1080) / 1e3)}k"
        lean_rate = f"{round(1.5e6 * pixels / (1920 * 1080) / 1e3)}k"
        for i in range(sizes.clips):
            path = folder / f"clip-{i}.mp4"
            if not path.exists():
                sample.make_camera_clip(path, seconds=sizes.clip_seconds, size=sizes.clip, bitrate=camera_rate,
                                        rotation=90 if i % 2 else None)
            corpus.append(("clips 1080p camera", path, "video", "mp4"))
        path = folder / "lean.mp4"
        if not path.exists():
            sample.make_camera_clip(path, seconds=sizes.clip_seconds, size=sizes.clip, bitrate=lean_rate)
        corpus.append(("clips already lean", path, "video", "mp4"))
    return corpus


# --- the contenders (run in worker processes) -------------------------------------------------------------


def metadata_lost(source: Path, output: bytes, fmt: str) -> bool:
    """Whether a JPEG output lacks any metadata segment of its source byte for byte (EXIF, ICC, XMP, ...)."""
    return fmt == "jpeg" and jpeg_layout(source.read_bytes()).metadata != jpeg_layout(output).metadata

#: jpegoptim's options of each peer row.
PEERS = {"jpegoptim --max=85": ("--max=85",), "jpegoptim --all-progressive": ("--all-progressive",)}


def cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (ffmpeg, jpegoptim)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ours(path: Path, media_type: str, fmt: str, out: Path, *, video_threads: int = 0) -> dict[str, Any]:
    config = CompressionConfig(photo=PhotoPolicy(), video=replace(VideoPolicy(), threads=video_threads), workers=1,
                               progress_every=1)
    started, cpu = time.perf_counter(), cpu_seconds()
    result = compress_file(Job(path, media_type, fmt, out, paired=False), config)
    return {"seconds": time.perf_counter() - started, "cpu": cpu_seconds() - cpu, "before": result.size_before,
            "after": result.size_after if result.output else result.size_before,
            "changed": result.output is not None, "quality": result.quality,
            "kept": result.action == KEPT, "decision": result.decision,
            "metadata_lost": result.output is not None and metadata_lost(path, result.output.read_bytes(), fmt)}


def naive(path: Path, media_type: str, fmt: str, out: Path) -> dict[str, Any]:
    before = path.stat().st_size
    started, cpu = time.perf_counter(), cpu_seconds()
    if media_type == "video":
        out = out.with_suffix(".mp4")
        subprocess.run([ffmpeg_path() or "ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(path), "-c:v", "libx264",
                        "-crf", "23", "-preset", "veryfast", "-c:a", "copy", str(out)], check=True, timeout=3600)
        return {"seconds": time.perf_counter() - started, "cpu": cpu_seconds() - cpu, "before": before,
                "after": out.stat().st_size, "changed": True, "quality": None}
    if fmt != "jpeg":  # the naive baseline only re-encodes JPEGs
        return {"seconds": 0.0, "cpu": 0.0, "before": before, "after": before, "changed": False, "quality": None}
    with Image.open(path) as img:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=85)
    seconds, spent = time.perf_counter() - started, cpu_seconds() - cpu
    data = buffer.getvalue()
    return {"seconds": seconds, "cpu": spent, "before": before, "after": len(data), "changed": True,
            "quality": ssim(jpeg_luma(path.read_bytes()), jpeg_luma(data)),
            "metadata_lost": metadata_lost(path, data, fmt)}


def jpegoptim(options: tuple[str, ...], path: Path, media_type: str, fmt: str, out: Path) -> dict[str, Any]:
    """A peer on one JPEG (other files are not its job); its output is taken only when smaller, as it does."""
    if fmt != "jpeg":
        return {"skipped": True}
    before = path.stat().st_size
    started, cpu = time.perf_counter(), cpu_seconds()
    data = subprocess.run(["jpegoptim", *options, "--quiet", "--stdout", str(path)], capture_output=True,
                          check=True, timeout=600).stdout
    seconds, spent = time.perf_counter() - started, cpu_seconds() - cpu
    changed = 0 < len(data) < before
    return {"seconds": seconds, "cpu": spent, "before": before, "after": len(data) if changed else before,
            "changed": changed, "quality": ssim(jpeg_luma(path.read_bytes()), jpeg_luma(data)) if changed else None,
            "metadata_lost": changed and metadata_lost(path, data, fmt)}


def run(contender: Callable[..., dict[str, Any]], corpus: list[tuple[str, Path, str, str]], out: Path, workers: int,
        kinds: tuple[str, ...] = ("photo", "video")) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per-file results and the wall time of the photos and of the videos, each its own pool run."""
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = [{"skipped": True} for _ in corpus]
    walls: dict[str, float] = {}
    for kind in kinds:
        indices = [i for i, entry in enumerate(corpus) if entry[2] == kind]
        started = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            futures = {i: pool.submit(contender, corpus[i][1], kind, corpus[i][3], out / str(i)) for i in indices}
            for i, future in futures.items():
                results[i] = future.result()
        walls[kind] = time.perf_counter() - started
    return results, walls


def frames(path: Path) -> int:
    info = probe(path)
    stream = next(s for s in info["streams"] if s["codec_type"] == "video")
    return int(stream.get("nb_frames") or 0)


def summarise(corpus: list, results: list[dict[str, Any]], walls: dict[str, float], workers: int) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for (group, path, kind, _fmt), result in zip(corpus, results, strict=True):
        if result.get("skipped"):
            continue
        g = groups.setdefault(group, {"files": 0, "before": 0, "after": 0, "grew": 0, "changed": 0,
                                      "scores": [], "cpu_seconds": 0.0, "cpu": 0.0, "frames": 0, "kind": kind,
                                      "metadata_lost": 0})
        g["files"] += 1
        g["cpu"] += result["cpu"]
        g["before"] += result["before"]
        g["after"] += result["after"]
        g["grew"] += result["after"] > result["before"]
        g["changed"] += result["changed"]
        g["metadata_lost"] += bool(result.get("metadata_lost"))
        g["cpu_seconds"] += result["seconds"]
        if result["changed"] and result["quality"] is not None:
            g["scores"].append(result["quality"])
        if kind == "video" and result["changed"]:  # frames actually encoded
            g["frames"] += frames(path)
    rows = {}
    for group, g in groups.items():
        scores = sorted(g["scores"])
        # Throughput on all cores: the group's share of its pool run, as if it ran alone.
        parallel = g["cpu_seconds"] / workers
        rows[group] = {
            "files": g["files"], "bytes_in": g["before"], "bytes_out": g["after"],
            "saved_percent": round(100 * (g["before"] - g["after"]) / g["before"], 1),
            "grew": g["grew"], "outputs": g["changed"], "metadata_lost": g["metadata_lost"],
            "ssim_min": round(scores[0], 4) if scores else None,
            "ssim_median": round(statistics.median(scores), 4) if scores else None,
            "files_per_s": round(g["files"] / parallel, 2) if parallel else None,
            "cpu_s_per_file": round(g["cpu"] / g["files"], 3),
        }
    encoded = sum(g["frames"] for g in groups.values())
    # Frames encoded per second of the videos' pool run: all cores, every check and kept file included.
    fps = round(encoded / walls["video"], 1) if encoded and walls.get("video") else None
    return {"groups": rows, "wall_seconds": {k: round(v, 2) for k, v in walls.items() if v}, "video_fps": fps,
            "frames_encoded": encoded}


def ssim_text(row: dict) -> str:
    return f"{row['ssim_min']} / {row['ssim_median']}" if row["ssim_min"] is not None else "-"


def table(report: dict[str, Any]) -> str:
    lines = ["| group | files | ours: saved | grew | outputs | SSIM min / median | files/s | CPU s/file "
             "| naive: saved | grew | SSIM min / median | files/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for group, row in report["ours"]["groups"].items():
        base = report["naive"]["groups"][group]
        lines.append(
            f"| {group} | {row['files']} | {row['saved_percent']}% | {row['grew']} | {row['outputs']} | "
            f"{ssim_text(row)} | {row['files_per_s']} | {row['cpu_s_per_file']} | {base['saved_percent']}% | "
            f"{base['grew']} | {ssim_text(base)} | {base['files_per_s'] or '-'} |")
    lines.append("")
    lines.append(f"video frames encoded per second on all cores: ours {report['ours']['video_fps']} "
                 f"({report['ours']['frames_encoded']} frames), naive {report['naive']['video_fps']} "
                 f"({report['naive']['frames_encoded']} frames)")
    if report["peers"]:
        lines += ["", "| JPEGs | contender | saved | grew | outputs | metadata lost | SSIM min / median | CPU s/file |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for group in next(iter(report["peers"].values()))["groups"]:
            for name, summary in (("ours", report["ours"]), *report["peers"].items()):
                row = summary["groups"][group]
                lines.append(f"| {group} | {name} | {row['saved_percent']}% | {row['grew']} | {row['outputs']} | "
                             f"{row['metadata_lost']} | {ssim_text(row)} | {row['cpu_s_per_file']} |")
    else:
        lines += ["", "peers skipped: no jpegoptim binary on this machine (Debian: apt-get install jpegoptim)"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where generated corpora are kept")
    args = parser.parse_args()
    workers = available_cores()
    folder = args.cache / ("quick" if args.quick else "full")
    started = time.perf_counter()
    corpus = build_corpus(folder / "corpus", QUICK if args.quick else FULL)
    print(f"corpus of {len(corpus)} files ready in {time.perf_counter() - started:.0f} s (cached in {folder})")
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {workers} cores, Python {platform.python_version()}",
        "quick": args.quick,
        "load_average": {"start": os.getloadavg()[0]},
    }
    # ffmpeg gets each worker's share of the cores, as in the phase.
    for name, contender in (("ours", partial(ours, video_threads=max(1, available_cores() // workers))),
                            ("naive", naive)):
        results, walls = run(contender, corpus, folder / f"out-{name}", workers)
        report[name] = summarise(corpus, results, walls, workers)
        report["load_average"][f"after {name}"] = os.getloadavg()[0]
        if name == "ours":
            report["decisions"] = {corpus[i][1].name: r["decision"] for i, r in enumerate(results)}
            floors = {"photo": PhotoPolicy().min_ssim, "video": VideoPolicy().min_ssim}
            bad = [corpus[i][1].name for i, r in enumerate(results)
                   if r["changed"] and (r["after"] >= r["before"] or (r["quality"] or 1.0) < floors[corpus[i][2]]
                                        or r["metadata_lost"])]
            report["violations"] = bad
    report["peers"] = {}
    if shutil.which("jpegoptim"):
        for index, (name, options) in enumerate(PEERS.items()):
            results, walls = run(partial(jpegoptim, options), corpus, folder / f"out-peer-{index}", workers,
                                 kinds=("photo",))
            report["peers"][name] = summarise(corpus, results, walls, workers)
    print(table(report))
    print(f"wall seconds, ours: {report['ours']['wall_seconds']}, naive: {report['naive']['wall_seconds']}")
    # Wall-clock rates only mean something on an idle machine; the 1-minute load says whether it was.
    print("1-minute load average: " + ", ".join(f"{k} {v:.2f}" for k, v in report["load_average"].items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if report["violations"]:
        print(f"accepted outputs that grew, failed the gate or lost metadata: {report['violations']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
