"""Real camera and phone files from package sdists (real_files/README.md): outcome, capture date and winning tag
as real_files/expected.csv says."""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path

import pytest

from media_assets.media.dates import capture_date
from media_assets.media.identify import MediaKind, UnsupportedMedia, identify

REAL_FILES = Path(__file__).parent / "real_files"
#: 2020-09-13 12:26:40 UTC, the file time every copy gets.
FILE_TIME = 1_600_000_000
ROWS = list(csv.DictReader((REAL_FILES / "expected.csv").open()))


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['file']}{'@' + r['cut_to'] if r['cut_to'] else ''}" for r in ROWS])
def test_real_file(row: dict[str, str], tmp_path: Path) -> None:
    data = (REAL_FILES / row["file"]).read_bytes()
    if row["cut_to"]:
        data = data[: int(len(data) * float(row["cut_to"]))]
    path = tmp_path / row["file"]
    path.write_bytes(data)
    os.utime(path, (FILE_TIME, FILE_TIME))
    try:
        identified = identify(path)
        outcome, what = "accepted", identified.format
    except UnsupportedMedia as refused:
        identified, outcome, what = None, "quarantined", refused.reason
    assert outcome == row["outcome"], what
    assert row["format_or_reason"] in what
    if row["tag"]:
        taken = capture_date(path, is_video=identified is not None and identified.kind is MediaKind.VIDEO,
                             home_zone="UTC")
        offset = int(row["utc_offset_minutes"]) if row["utc_offset_minutes"] else None
        assert (taken.tag, taken.local, taken.utc_offset_minutes) == (
            row["tag"], datetime.fromisoformat(row["date"]), offset)


def test_the_set_stays_small() -> None:
    assert sum(p.stat().st_size for p in REAL_FILES.iterdir()) <= 20_000_000
