"""Walk the README's paths through a running Dagster UI in headless Chromium, check what each page shows, and save
the README's screenshots in docs/screenshots/. Run by hand (the test suite needs no browser):

    make ui                                   # or media-pipeline ui; it starts nothing else
    .venv/bin/python scripts/ui_check.py      # --url http://host:port for another UI

It starts nothing and changes nothing in the installation but one flag (the UI's newsletter dialog marked as seen,
as its "Skip" button does). It needs at least one batch and `library_stats` refreshed by the daemon; it asks the
UI over GraphQL what it needs (the newest batch, a batch re-run after a failure), then loads each page in system
Chromium (`apt-get install -y chromium`) with `--dump-dom` to check the rendered text and `--screenshot` to
photograph it. Exit status 1 names every page that did not show what the README promises."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
LOCATION = "media_assets.definitions"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--virtual-time-budget=25000"]


@dataclass(frozen=True)
class Page:
    """One stop on the README's paths: where, what its rendered text must contain, the screenshot's name."""

    name: str
    path: str
    shows: tuple[str, ...]
    width: int = 1400
    height: int = 1000


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/graphql", method="POST",
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    if "errors" in body:
        raise RuntimeError(f"GraphQL: {body['errors']}")
    return body["data"]


BATCHES = """
query {
  assetOrError(assetKey: {path: ["verification"]}) {
    ... on Asset { assetMaterializations(limit: 100) { partition runId } }
  }
  libraryStats: assetOrError(assetKey: {path: ["library_stats"]}) {
    ... on Asset { assetMaterializations(limit: 1) { runId metadataEntries { label } } }
  }
}"""
FAILED_RUNS = """
query { runsOrError(filter: {statuses: [FAILURE]}) { ... on Runs { results { tags { key value } } } } }"""


def _facts(url: str) -> tuple[str, str | None]:
    """The newest verified batch, and the newest verified one that had failed before (or None)."""
    data = graphql(url, BATCHES)
    verified = data["assetOrError"].get("assetMaterializations") or []
    if not verified:
        raise SystemExit("no batch has been verified yet: run one first (make run, or new_batch in the UI)")
    stats = data["libraryStats"].get("assetMaterializations") or []
    if not stats:
        raise SystemExit("library_stats has never been refreshed: is the daemon running (make ui)?")
    labels = {entry["label"] for entry in stats[0]["metadataEntries"]}
    if not {"by_capture_month", "by_batch_month"} <= labels:
        raise SystemExit(f"library_stats lacks its month tables: {sorted(labels)}")
    failed = {tag["value"] for run in graphql(url, FAILED_RUNS)["runsOrError"]["results"]
              for tag in run["tags"] if tag["key"] == "dagster/partition"}
    recovered = next((m["partition"] for m in verified if m["partition"] in failed), None)  # newest first
    return verified[0]["partition"], recovered


def pages(batch: str) -> list[Page]:
    """The README's paths in order: lineage, the library's numbers, one batch's files, runs, the retry job."""
    return [
        Page("asset-graph", f"/locations/{LOCATION}/asset-groups/media", ("download", "verification"), height=650),
        Page("library-stats", "/assets/library_stats?view=events", ("by_capture_month", "by_batch_month"),
             height=2150),
        Page("batches", f"/assets/download?view=partitions&partition={batch}", ("bytes_in", "files")),
        Page("verification-files", f"/assets/verification?view=events&partition={batch}",
             ("files_table", "source_path", "quarantine_reason"), width=1900, height=1300),
        Page("runs", "/runs", ("retry_failed_batches",)),
        Page("retry-job", f"/locations/{LOCATION}/jobs/retry_failed_batches/playground",
             ("retry_failed_batches", "Launch Run")),
    ]


def _chromium(chromium: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
                              capture_output=True, text=True, check=True, timeout=240)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def visit(chromium: str, url: str, page: Page) -> list[str]:
    """Load the page, check its rendered text, photograph it; returns what it failed to show."""
    address = url + page.path
    dom = _chromium(chromium, "--dump-dom", address).stdout
    missing = [text for text in page.shows if text not in dom]
    _chromium(chromium, f"--window-size={page.width},{page.height}", f"--screenshot={OUT / page.name}.png", address)
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="the running UI (default: make ui's)")
    url = parser.parse_args().url.rstrip("/")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        print("needs Chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    batch, recovered = _facts(url)
    if recovered is None:
        print("note: no failed batch has been recovered yet", flush=True)
    graphql(url, "mutation { setNuxSeen }")  # the newsletter dialog a new instance greets with, as "Skip" does
    OUT.mkdir(parents=True, exist_ok=True)
    failures = []
    for page in pages(recovered or batch):
        missing = visit(chromium, url, page)
        status = f"missing {missing}" if missing else "ok"
        print(f"{page.name:<20} {url}{page.path}: {status} -> {OUT / page.name}.png", flush=True)
        if missing:
            failures.append(page.name)
    if failures:
        print(f"pages that did not show what the README says: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
