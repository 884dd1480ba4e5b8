"""Benchmark of deduplication, all in one run on one generated corpus:

- throughput (files/s) of the phase's fingerprinting and deciding, pool of os.cpu_count() workers, signatures of
  the near candidates included, against the naive baseline (full decode + imagehash.phash + sha256 per file, one
  process), on 12 MP JPEG and HEIC: distinct camera photos (with EXIF thumbnails), the same photos without EXIF
  (messenger copies: the reduced decode every JPEG took before thumbnails were used), the corpus's own JPEGs
  (copies and look-alikes: most have a near candidate to confirm) and the corpus's HEICs;
- precision/recall of the phase's decisions on copies (50 %, 25 %, q70, PNG, HEIC) and look-alikes (bursts,
  re-crops, shots of one flat scene), against an empty catalog;
- near-duplicate search: 1,000 new hashes against 1,000,000 catalog hashes, multi-index vs numpy brute force;
- peak memory of fingerprinting + deciding a 10,000-file batch (small files: the pixels are never kept, so
  memory does not depend on their size; the files' own decode buffers live in the workers).

    .venv/bin/python benchmarks/dedup.py [--quick] [--json FILE]

Generated corpora are cached under data/benchmarks/ (git-ignored). Exits 1 on a false duplicate."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import time
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.memory import run_sampled
from media_assets.catalog.repository import MediaFile
from media_assets.catalog.states import FileState
from media_assets.media.dates import register_heif
from media_assets.media.hashing import sha256_file
from media_assets.media.near_index import NearIndex, brute_force
from media_assets.media.perceptual import fingerprint
from media_assets.media.sample_library import textured_image, write_bytes_if_changed
from media_assets.phases.deduplication import (
    DEFAULT_NEAR_RADIUS,
    Item,
    decide,
    pixel_signer,
)
from media_assets.phases.workers import Workers
from media_assets_tests.dedup_corpus import CorpusFile, exif_with_thumbnail, score, write_corpus

CACHE = Path(__file__).resolve().parent.parent / "data" / "benchmarks" / "dedup"


class EmptyCatalog:
    """The catalog as a first batch sees it: nothing kept yet (decide() only reads these two things)."""

    def find_kept_by_hash(self, content_hash: str, size_bytes: int) -> None:
        return None

    def kept_phashes(self, after_id: int, limit: int) -> list[tuple[int, int]]:
        return []


def _media_file(file_id: int, path: Path) -> MediaFile:
    with Image.open(path) as img:
        width, height, fmt = img.width, img.height, (img.format or "").lower()
    return MediaFile(id=file_id, batch_id="bench", source="folder", source_id=str(path), source_version="",
                     original_name=path.name, size_bytes=path.stat().st_size, content_hash=sha256_file(path),
                     media_type="photo", media_format="heic" if fmt == "heif" else fmt, width=width, height=height,
                     captured_at=None, capture_utc_offset_minutes=None, capture_date_source=None,
                     state=FileState.DOWNLOADED, error=None, original_path=str(path), output_path=None,
                     output_size=None, output_hash=None, compression_decision=None, staged_path=None,
                     sorted_path=None)


def _naive(path: str) -> tuple[int, str]:
    register_heif()
    with Image.open(path) as img:
        img.load()
        phash = int(str(imagehash.phash(img)), 16)
    return phash, hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _phase(files: list[MediaFile], workers: Workers) -> dict[int, Any]:
    """What the phase computes between the catalog reads and writes: fingerprints, then decisions (with the
    near candidates' signatures), against an empty catalog. Decisions by file id."""
    tasks = ((file, (Path(file.original_path or ""), file.media_type)) for file in files)
    items = [Item(file, result) for file, result in workers.map(fingerprint, tasks)]
    assert all(i.fingerprint.error is None for i in items), [i.fingerprint.error for i in items]
    return decide(EmptyCatalog(), items, DEFAULT_NEAR_RADIUS, pixel_signer(workers, Path("/")))  # type: ignore[arg-type]


def throughput(paths: list[Path], workers: int, rounds: int = 3) -> dict[str, float]:
    """Files/s of the naive baseline and of the phase (`rounds` batches of the same files, warm pool)."""
    _naive(str(paths[0]))  # imports and first-call costs are not the files'
    started = time.perf_counter()
    for path in paths:
        _naive(str(path))
    naive = len(paths) / (time.perf_counter() - started)
    files = [_media_file(n + 1, p) for n, p in enumerate(paths)]  # identify + SHA-256: the download phase's work
    with Workers(workers) as pool:
        list(pool.map(fingerprint, [(n, (paths[0], "photo")) for n in range(workers)]))  # start them
        started = time.perf_counter()
        for _ in range(rounds):
            _phase(files, pool)
        phase = rounds * len(paths) / (time.perf_counter() - started)
    return {"files": len(paths), "naive_files_per_s": round(naive, 2), "phase_files_per_s": round(phase, 2),
            "speedup": round(phase / naive, 1)}


def jpeg_set(folder: Path, count: int, size: tuple[int, int], camera: bool = False) -> list[Path]:
    """`count` distinct textured photos: bare JPEGs (no EXIF, like a messenger's copies), or as a camera writes
    them (`camera`: EXIF with a 160x120 thumbnail). Both forms are written together, from one picture."""
    bare, cameras = [], []
    for n in range(count):
        bare.append(folder / f"jpeg-{size[0]}x{size[1]}-{n:03d}.jpg")
        cameras.append(folder / f"camera-{size[0]}x{size[1]}-{n:03d}.jpg")
        if not (bare[-1].exists() and (cameras[-1].exists() or not camera)):
            image = textured_image(size, 500 + n)
            for path, exif in ((bare[-1], None), (cameras[-1], exif_with_thumbnail(Image.Exif(), image))):
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=92, **({"exif": exif} if exif else {}))
                write_bytes_if_changed(path, buffer.getvalue())
    return cameras if camera else bare


def accuracy(files: list[CorpusFile], workers: int) -> dict[str, Any]:
    with Workers(workers) as pool:
        decisions = _phase([_media_file(n + 1, f.path) for n, f in enumerate(files)], pool)
    path_of = {n + 1: f.path for n, f in enumerate(files)}
    duplicates = {path_of[file_id]: path_of[d.keeper_id] for file_id, d in decisions.items() if d.keeper_id}
    return {kind: {"true_copies": a.true_copies, "found": a.found, "false_duplicates": a.false_duplicates,
                   "recall": round(a.recall, 4), "precision": round(a.precision, 4)}
            for kind, a in score(files, duplicates).items()}


def search(catalog_size: int, queries: int, radius: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    hashes = rng.integers(-(2**63), 2**63 - 1, catalog_size, dtype=np.int64)
    new = hashes[rng.integers(0, catalog_size, queries)].copy().view(np.uint64)
    for i in range(queries // 2):  # half are near copies of catalogued pictures, half unrelated
        for bit in rng.choice(64, i % (radius + 1), replace=False):
            new[i] ^= np.uint64(1 << int(bit))
    new[queries // 2:] = rng.integers(0, 2**63, queries - queries // 2, dtype=np.int64).view(np.uint64)
    tracemalloc.start()
    started = time.perf_counter()
    index = NearIndex(np.arange(catalog_size), hashes, radius)
    built = time.perf_counter() - started
    positions, ids, _ = index.search(new.view(np.int64))
    total = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    started = time.perf_counter()
    expected = brute_force(hashes, new, radius)
    naive = time.perf_counter() - started
    same = set(zip(positions.tolist(), ids.tolist(), strict=True)) == set(zip(*expected, strict=True))
    return {"catalog": catalog_size, "queries": queries, "radius": radius, "build_s": round(built, 3),
            "index_total_s": round(total, 3), "index_peak_mb": round(peak / 2**20, 1),
            "brute_force_s": round(naive, 3), "same_answers": same, "matches": len(positions)}


def batch_memory(folder: Path, files: int, workers: int) -> dict[str, float]:
    paths = jpeg_set(folder, files, (96, 72))
    tracemalloc.start()
    started = time.perf_counter()
    batch = [_media_file(n + 1, p) for n, p in enumerate(paths)]
    with Workers(workers) as pool:
        _phase(batch, pool)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"files": files, "seconds": round(seconds, 1), "python_peak_mb": round(peak / 2**20, 1)}


def batch_memory_alone(folder: Path, files: int, workers: int) -> dict[str, float]:
    """batch_memory in a fresh process whose tree (it and its workers) is sampled from here, so its peak is
    neither the 12 MP corpus generator's nor that of writing the batch's own files (made here first)."""
    jpeg_set(folder, files, (96, 72))
    done, memory, _seconds = run_sampled([sys.executable, __file__, "--batch-memory", str(files),
                                          "--cache", str(folder)])
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return {**json.loads(done.stdout), **memory.figures()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where generated corpora are kept")
    parser.add_argument("--batch-memory", type=int, help=argparse.SUPPRESS)  # the child of batch_memory_alone
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    if args.batch_memory:
        print(json.dumps(batch_memory(args.cache, args.batch_memory, workers)))
        return 0
    big = (640, 480) if args.quick else (4000, 3000)
    folder = args.cache / ("quick" if args.quick else "full")
    folder.mkdir(parents=True, exist_ok=True)
    originals = 3 if args.quick else 6
    started = time.perf_counter()
    corpus = write_corpus(folder / "corpus", size=big, originals=originals, bursts=originals // 2,
                          flats=originals // 3)
    print(f"corpus of {len(corpus)} files ready in {time.perf_counter() - started:.0f} s (cached in {folder})")
    jpegs = [f.path for f in corpus if f.path.suffix == ".jpg" and f.kind not in ("resized50", "resized25")]
    heics = [f.path for f in corpus if f.kind == "heic"]
    distinct = 8 if args.quick else 24
    cameras, bare = (jpeg_set(folder / "distinct", distinct, big, camera) for camera in (True, False))
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {workers} cores, Python {platform.python_version()}",
        "when": datetime.now().isoformat(timespec="seconds"),
        "jpeg_camera": throughput(cameras, workers),
        "jpeg_bare": throughput(bare, workers),
        "jpeg": throughput(jpegs, workers),
        "heic": throughput(heics, workers),
        "accuracy": accuracy(corpus, workers),
        "search": search(20_000 if args.quick else 1_000_000, 200 if args.quick else 1_000, DEFAULT_NEAR_RADIUS),
        "batch": batch_memory_alone(folder / "batch", 300 if args.quick else 10_000, workers),
    }
    print(f"machine: {results['machine']}")
    print("\n| input | files | naive files/s | phase files/s | speed-up |\n| --- | --- | --- | --- | --- |")
    labels = {"jpeg_camera": "JPEG, distinct camera photos (EXIF thumbnail)",
              "jpeg_bare": "JPEG, the same without EXIF (reduced decode)",
              "jpeg": "JPEG, corpus copies and look-alikes (near candidates)", "heic": "HEIC, corpus"}
    for name, label in labels.items():
        r = results[name]
        print(f"| {big[0]}x{big[1]} {label} | {r['files']} | {r['naive_files_per_s']} "
              f"| {r['phase_files_per_s']} | {r['speedup']}x |")
    print("\n| kind | true copies | found | false duplicates | recall | precision |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind, r in results["accuracy"].items():
        print(f"| {kind} | {r['true_copies']} | {r['found']} | {r['false_duplicates']} | {r['recall']:.3f} "
              f"| {r['precision']:.3f} |")
    s = results["search"]
    print(f"\nsearch: {s['queries']} new hashes vs {s['catalog']:,} at radius {s['radius']}: multi-index "
          f"{s['index_total_s']} s in all (build {s['build_s']} s), peak {s['index_peak_mb']} MB; numpy brute force "
          f"{s['brute_force_s']} s; same answers: {s['same_answers']}")
    b = results["batch"]
    print(f"batch: {b['files']} files fingerprinted and decided in {b['seconds']} s, Python peak "
          f"{b['python_peak_mb']} MB, peak of the process tree (parent and workers, sampled) RSS "
          f"{b['peak_rss_mb']} MB, PSS {b['peak_pss_mb']} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if results["accuracy"]["all"]["false_duplicates"] == 0 and s["same_answers"] else 1


if __name__ == "__main__":
    sys.exit(main())
