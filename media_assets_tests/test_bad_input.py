"""Garbage in, nothing lost: every kind of bad file a real library holds ends quarantined with a one-line reason
(or handled), the batch goes on, and nothing outside the storage root is read or written."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

import media_assets.defs.batch.assets as assets
from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.media.ffmpeg_tools import ffmpeg_path
from media_assets.runner import run_batch
from media_assets.sources.base import SourceItem
from media_assets.sources.configured import local_sources
from media_assets_tests.conftest import MakePipeline


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb's calling card)."""
    buffer = io.BytesIO()
    from PIL import Image

    Image.new("L", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


class OddSource:
    """A source that hands over what real services sometimes do: hostile names and files that keep growing."""

    name = "odd"

    def __init__(self, photo: bytes) -> None:
        self.photo = photo
        self.items = {
            "evil": SourceItem("odd", "evil", "1", "../../etc/passwd", size=len(photo)),
            "growing": SourceItem("odd", "growing", "1", "growing.jpg", size=len(photo)),
        }

    def scan(self) -> Iterator[SourceItem]:
        yield from self.items.values()

    def lookup(self, source_id: str) -> SourceItem:
        return self.items[source_id]

    @contextmanager
    def open(self, source_id: str) -> Iterator[BinaryIO]:
        yield io.BytesIO(self.photo)

    def unchanged(self, item_source_id: str, version: str) -> bool:
        return item_source_id != "growing"


@pytest.fixture
def bad_library(make_pipeline: MakePipeline, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> tuple[Pipeline, Path]:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    good = sample.photo_bytes(size=(320, 240), seed=5)
    heic = sample.photo_bytes(size=(256, 192), seed=6, fmt="HEIC")
    (library / "empty.jpg").write_bytes(b"")
    (library / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (library / "truncated.heic").write_bytes(heic[: len(heic) // 2])
    sample.make_photo(library / "really-a-png.jpg", size=(64, 48), seed=7, fmt="PNG")
    (library / "notes.jpg").write_text("shopping list: milk, eggs\n")
    (library / "bomb.png").write_bytes(_png_claiming(30_000, 30_000))
    (library / "huge.png").write_bytes(_png_claiming(100_000, 100_000))
    (library / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + os.urandom(4000))
    (library / "holiday photo 1.jpg").write_bytes(sample.photo_bytes(size=(64, 48), seed=8))
    (library / "🎂 birthday.jpg").write_bytes(sample.photo_bytes(size=(64, 48), seed=9))
    (library / "two\nlines.jpg").write_bytes(sample.photo_bytes(size=(64, 48), seed=10))
    (library / ("x" * 251 + ".jpg")).write_bytes(sample.photo_bytes(size=(64, 48), seed=11))
    with open(os.path.join(os.fsencode(library), b"caf\xe9.jpg"), "wb") as undecodable:
        undecodable.write(sample.photo_bytes(size=(64, 48), seed=12))
    (library / "twice-a.jpg").write_bytes(good)
    (library / "twice-b.jpg").write_bytes(good)
    outside = tmp_path / "outside-secret.jpg"
    outside.write_bytes(sample.photo_bytes(size=(64, 48), seed=13))
    (library / "link-out.jpg").symlink_to(outside)
    ffmpeg = ffmpeg_path()
    if ffmpeg:
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac",
                        str(library / "audio-only.mp4")], check=True)
    odd = OddSource(sample.photo_bytes(size=(64, 48), seed=14))
    monkeypatch.setattr(assets, "local_sources", lambda settings: {**local_sources(settings), "odd": odd})
    return pipeline, library


def test_every_bad_file_is_quarantined_with_a_reason_and_the_batch_goes_on(bad_library: tuple[Pipeline, Path],
                                                                                tmp_path: Path) -> None:
    pipeline, library = bad_library
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    report = run_batch(pipeline)
    assert report.success, report.error

    files = {f.original_name: f for f in pipeline.catalog.iter_files(report.batch_id, *FileState)}
    reasons = {name: f.error or "" for name, f in files.items() if f.state is FileState.QUARANTINED}
    expected = {
        "empty.jpg": "empty file", "truncated.jpg": "truncated", "truncated.heic": "HEIC", "notes.jpg": "text",
        "bomb.png": "30000x30000", "huge.png": "100000x100000", "corrupt.mp4": "corrupt video",
        "link-out.jpg": "outside", "growing.jpg": "changed while",
    }
    if ffmpeg_path():
        expected["audio-only.mp4"] = "no video stream"
    for name, fragment in expected.items():
        assert name in reasons, f"{name} was not quarantined: {files[name].state}"
        assert fragment in reasons[name] and "\n" not in reasons[name], reasons[name]
    assert set(reasons) == set(expected), "nothing else was quarantined"

    verified = {name for name, f in files.items() if f.state is FileState.VERIFIED}
    assert {"really-a-png.jpg", "holiday photo 1.jpg", "🎂 birthday.jpg", "two\nlines.jpg", "../../etc/passwd",
            "x" * 251 + ".jpg", "caf\ufffd.jpg", "twice-a.jpg"} <= verified
    sorted_path = files["../../etc/passwd"].sorted_path
    assert sorted_path is not None and Path(sorted_path).stem == "passwd"
    assert files["twice-b.jpg"].state is FileState.DUPLICATE
    # Every name that reached a folder is one safe, bounded path component inside that folder.
    for f in files.values():
        for relative in filter(None, (f.original_path, f.sorted_path)):
            path = (pipeline.settings.storage.media_root / relative).resolve()
            assert path.is_relative_to(pipeline.settings.storage.media_root) and "\n" not in relative
            assert len(path.name.encode()) <= 200
    for path in pipeline.settings.destinations.local_destination_dir.rglob("*"):
        assert path.resolve().is_relative_to(pipeline.settings.destinations.local_destination_dir)
    # Nothing new appeared beside the pipeline's own folders, and the outside file was not copied.
    after = {p for p in tmp_path.iterdir()}
    assert after == set(before)
    assert not [p for p in pipeline.settings.storage.media_root.rglob("*outside-secret*")]
    assert len(report.quarantined) == len(expected)
