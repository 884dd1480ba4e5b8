"""Take the README's screenshots of the Dagster UI with real batches. Run by hand (the test suite does not need
Chromium): `apt-get install -y chromium && .venv/bin/python scripts/screenshots.py`.

It builds a throw-away installation in a temporary folder (embedded PostgreSQL, the sample library), runs two
batches and the `library_stats` asset in process, starts a dagster-webserver on it and lets headless Chromium
photograph a few pages into docs/screenshots/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
LOCATION = "media_assets.definitions"


def pages(last_batch: str) -> dict[str, str]:
    """The pages to photograph: the phases in order, one batch's numbers, the library, the runs."""
    return {
        "asset-graph": f"/locations/{LOCATION}/asset-groups/media",
        "batches": f"/assets/download?view=partitions&partition={last_batch}",
        "library-stats": "/assets/library_stats",
        "runs": "/runs",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(folder: Path) -> str:
    """Two real batches and the library's numbers, recorded in the installation's Dagster instance; returns
    the second batch's id."""
    from dagster import materialize

    from media_assets.definitions import defs
    from media_assets.defs.instance import open_pipeline
    from media_assets.defs.library.assets import library_stats
    from media_assets.defs.library.checks import free_space
    from media_assets.media import sample_library as sample
    from media_assets.runner import run_batch
    from media_assets.settings import load_settings

    settings_file = folder / "settings.env"
    settings_file.write_text("FOLDER_SOURCE_PATHS=library\nDATA_DIR=data\nMEDIA_ROOT=media\n"
                             "LOCAL_DESTINATION_DIR=destination\nREPORTS_DIR=reports\n")
    settings_file.chmod(0o600)
    os.environ["MEDIA_PIPELINE_SETTINGS"] = str(settings_file)
    sample.write_sample_library(folder / "library")
    pipeline = open_pipeline(load_settings(settings_file))  # sets the database and DAGSTER_HOME variables
    try:
        for seed in (1, 2):
            if seed == 2:  # the second batch: a few new photos and a late duplicate
                for n in range(3):
                    sample.make_photo(folder / f"library/new/IMG_2025010{n + 1}_120000.jpg", seed=100 + n)
                shutil.copy(folder / "library" / sample.GARDEN, folder / "library/new/garden-copy.jpg")
            report = run_batch(pipeline)
            print(f"batch {report.batch_id}: {'succeeded' if report.success else 'FAILED'}", flush=True)
        materialize([library_stats, free_space], instance=pipeline.instance, resources=defs.resources)
        return report.batch_id
    finally:
        pipeline.close()


def _screenshot(chromium: str, url: str, target: Path) -> None:
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                        f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--window-size=1400,900",
                        f"--screenshot={target}", url], check=True, capture_output=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        print("needs Chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    from media_assets.catalog.database import stop_embedded_postgres

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="media-pipeline-screens-") as tmp:
        folder = Path(tmp)
        last_batch = _prepare(folder)
        port = _free_port()
        server = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1",
                                   "-p", str(port), "-m", LOCATION], cwd=folder, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"{base}/server_info", timeout=5).close()
                    break
                except OSError:
                    time.sleep(1)
            # The UI greets a new local instance with a newsletter dialog; mark it seen, as its "Skip" does.
            nux = urllib.request.Request(f"{base}/graphql", data=b'{"query": "mutation { setNuxSeen }"}',
                                         headers={"Content-Type": "application/json"}, method="POST")
            urllib.request.urlopen(nux, timeout=30).close()
            for name, path in pages(last_batch).items():
                _screenshot(chromium, base + path, OUT / f"{name}.png")
                print(f"wrote {OUT / name}.png", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
            stop_embedded_postgres(folder / "data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
