"""Benchmark of iCloud transfers: the pipeline's download (ICloudSource, as the download phase drives it) and
upload (ICloudDestination.upload_many, as the upload phase drives it) against sequential transfers in the same
run, over the local HTTPS stand-in with 50 ms added to every request and a server-side rate limit that answers
429 (counted), driven by the real pyicloud.

    .venv/bin/python benchmarks/transfers.py [--quick] [--json FILE]

The pipeline runs twice: at the default ICLOUD_CONCURRENCY (4) and at 8 transfers at once, where the pacer
(100 requests/s here) rather than the number of transfers sets the pace. Target: pipeline >= 4x sequential for
downloads and uploads, with no 429 (the pacer keeps under the limit). Exits 1 when a file is missing or corrupt or
any 429 was answered; the speed-up is printed, not enforced."""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media_assets.destinations.base import UploadJob
from media_assets.destinations.icloud import ICloudDestination
from media_assets.icloud.config import ICloudConfig
from media_assets.icloud.session import connect
from media_assets.media.sample_library import photo_bytes
from media_assets.phases.download import bring_item
from media_assets.sources.icloud import ICloudSource
from media_assets_tests.icloud_standin import ICloudStandIn

LATENCY = 0.050
SERVER_LIMIT_PER_SECOND = 120
PACED_PER_SECOND = 100
CONCURRENCIES = (4, 8)  # the default, and enough transfers for the pacer to set the pace


class NothingKnown:
    """The catalog side of the source for a benchmark: every asset is new, nothing failed before."""

    def is_known(self, source_id: str) -> bool:
        return False

    def retry_count(self, source_id: str) -> int:
        return 0

    def full_scan_due(self, every_days: int) -> bool:
        return True

    def record_full_scan(self) -> None:
        pass

    def record_walk(self, seen_asset_ids: set[str]) -> None:
        pass

    def record_failure(self, source_id: str, reason: str) -> None:
        raise RuntimeError(f"{source_id} failed: {reason}")

    def clear_failure(self, source_id: str) -> None:
        pass


def _download(config: ICloudConfig, target: Path) -> tuple[float, dict[str, str]]:
    """Scan and take every item the way the download phase does; seconds and sha256 per source id."""
    connection = connect(config, code_provider=None)
    source = ICloudSource(config, NothingKnown(), lambda: connection)  # type: ignore[arg-type]
    digests: dict[str, str] = {}
    started = time.perf_counter()
    for item in source.scan():
        _size, digests[item.source_id] = bring_item(source, item.source_id, target / item.source_id.replace("/", "-"))
    return time.perf_counter() - started, digests


def _upload(config: ICloudConfig, files: list[Path]) -> tuple[float, list[str]]:
    connection = connect(config, code_provider=None)
    destination = ICloudDestination(config, lambda: connection)
    jobs = [UploadJob(path, path.name, "") for path in files]
    started = time.perf_counter()
    if config.concurrency == 1:
        ids = [destination.upload(*job) for job in jobs]
    else:
        ids = [str(result) for _job, result in destination.upload_many(jobs)]
    return time.perf_counter() - started, ids


def run(assets: int) -> dict[str, Any]:
    standin = ICloudStandIn(latency=LATENCY, rate_limit=SERVER_LIMIT_PER_SECOND,
                            passwords={"bench@example.com": "pw"}).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            originals = {standin.add_asset(f"IMG_{n:04d}.JPG", photo_bytes(size=(96, 72), seed=n)).asset_id
                         for n in range(assets)}
            expected = {f"{a.asset_id}/original": hashlib.sha256(a.data).hexdigest() for a in standin.assets}
            base = ICloudConfig(username="bench@example.com", password="pw", cookie_dir=folder / "s" / "bench",
                                transfer_dir=folder / "transfer", endpoint=standin.base_url,
                                ca_bundle=str(standin.write_ca(folder)), requests_per_second=PACED_PER_SECOND,
                                concurrency=4)
            connect(base, code_provider=lambda prompt, deadline: standin.code)
            sequential = replace(base, concurrency=1)
            pipelines = [(f"{n} at once", replace(base, concurrency=n)) for n in CONCURRENCIES]
            rows: dict[str, Any] = {}
            for label, config in [("download sequential", sequential),
                                  *((f"download {name}", config) for name, config in pipelines)]:
                target = folder / label.replace(" ", "-")
                target.mkdir()
                throttled = standin.throttled
                seconds, digests = _download(config, target)
                rows[label] = {"files": len(digests), "seconds": round(seconds, 2),
                               "files_per_s": round(len(digests) / seconds, 1),
                               "intact": digests == expected, "http_429": standin.throttled - throttled}
            uploads, share = [], assets // 2
            for n in range(share * (1 + len(pipelines))):
                path = folder / "up" / f"UP_{n:04d}.JPG"
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(photo_bytes(size=(96, 72), seed=10_000 + n))
                uploads.append(path)
            runs = [("upload sequential", sequential), *((f"upload {name}", config) for name, config in pipelines)]
            for index, (label, config) in enumerate(runs):
                files = uploads[index * share:(index + 1) * share]
                throttled = standin.throttled
                seconds, ids = _upload(config, files)
                stored = {a.asset_id: a.data for a in standin.assets if a.asset_id not in originals}
                intact = all(stored.get(i) == p.read_bytes() for i, p in zip(ids, files, strict=True))
                rows[label] = {"files": len(ids), "seconds": round(seconds, 2),
                               "files_per_s": round(len(ids) / seconds, 1), "intact": intact,
                               "http_429": standin.throttled - throttled}
    finally:
        standin.stop()
    for label, row in rows.items():
        baseline = rows[f"{label.split()[0]} sequential"]
        row["speedup"] = round(row["files_per_s"] / baseline["files_per_s"], 2)
    return {"assets": assets, "latency_ms": LATENCY * 1000, "server_limit_per_s": SERVER_LIMIT_PER_SECOND,
            "paced_per_s": PACED_PER_SECOND, "concurrencies": list(CONCURRENCIES), "machine": f"{platform.machine()}, "
            f"{platform.python_implementation()} {platform.python_version()}", "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 assets (for CI)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    result = run(60 if args.quick else 500)
    print(f"{result['assets']} assets, {result['latency_ms']:.0f} ms per request, server limit "
          f"{result['server_limit_per_s']}/s, paced at {result['paced_per_s']}/s")
    print(f"{'transfer':<20} {'files':>6} {'seconds':>8} {'files/s':>8} {'speed-up':>9} {'429s':>5} intact")
    for label, row in result["rows"].items():
        speedup = f"{row['speedup']:.2f}x"
        print(f"{label:<20} {row['files']:>6} {row['seconds']:>8.2f} {row['files_per_s']:>8.1f} {speedup:>9} "
              f"{row['http_429']:>5} {row['intact']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = all(row["intact"] and row["http_429"] == 0 for row in result["rows"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
