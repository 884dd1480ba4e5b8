"""The sample library contains what it promises, stays put on reruns, and is the same on every machine."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from media_assets.media import ffmpeg_tools
from media_assets.media import sample_library as sl
from media_assets.media.dates import capture_date, register_heif

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
CAMERA_PHOTOS = (sl.HOLIDAY_NIGHT, sl.HOLIDAY_DAY, sl.GARDEN)
HAS_FFMPEG = ffmpeg_tools.ffmpeg_path() is not None and ffmpeg_tools.ffprobe_path() is not None
EXPECTED = [
    sl.HOLIDAY_NIGHT,
    sl.HOLIDAY_DAY,
    sl.GARDEN,
    sl.SCREENSHOT,
    sl.EXACT_DUPLICATE,
    sl.NEAR_DUPLICATE,
    sl.HEIC_PHOTO,
    *([sl.VIDEO] if HAS_FFMPEG else []),
    sl.CORRUPT,
]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("sample")
    return root, sl.write_sample_library(root)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_every_promised_file(library: tuple[Path, list[Path]]) -> None:
    root, written = library
    assert [p.relative_to(root).as_posix() for p in written] == EXPECTED
    assert sorted(_files(root)) == sorted(EXPECTED)  # and nothing else (no temp files left behind)


def test_camera_photos_have_exif_date_offset_camera_and_gps(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    for rel in (*CAMERA_PHOTOS, sl.HEIC_PHOTO):
        register_heif()
        with Image.open(root / rel) as img:
            exif = img.getexif()
            exif_ifd, gps = exif.get_ifd(EXIF_IFD), exif.get_ifd(GPS_IFD)
        assert exif.get(0x010F) and exif.get(0x0110), rel  # Make, Model
        assert exif_ifd.get(0x9003) and exif_ifd.get(0x9011), rel  # DateTimeOriginal, OffsetTimeOriginal
        assert {1, 2, 3, 4} <= set(gps), rel  # lat ref, lat, lon ref, lon
        assert capture_date(root / rel, is_video=False).tag == "exif_datetimeoriginal"


def test_gps_round_trips_to_decimal_degrees(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    with Image.open(root / sl.GARDEN) as img:
        gps = img.getexif().get_ifd(GPS_IFD)

    def decimal(dms: tuple, ref: str) -> float:
        value = float(dms[0]) + float(dms[1]) / 60 + float(dms[2]) / 3600
        return -value if ref in ("S", "W") else value

    assert decimal(gps[2], gps[1]) == pytest.approx(sl.LISBON[0], abs=1e-5)
    assert decimal(gps[4], gps[3]) == pytest.approx(sl.LISBON[1], abs=1e-5)


def test_late_evening_tokyo_photo_sorts_to_local_day(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    got = capture_date(root / sl.HOLIDAY_NIGHT, is_video=False)
    assert (got.local, got.utc_offset_minutes, got.folder) == (datetime(2023, 7, 1, 23, 30), 540, "2023/07/01")


def test_photos_are_distinct_textured_and_camera_sized(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    hashes = []
    for rel in CAMERA_PHOTOS:
        with Image.open(root / rel) as img:
            assert img.format == "JPEG"
            assert 1_000_000 <= img.width * img.height <= 2_100_000
            pixels = np.asarray(img.convert("L"), dtype=np.float32)
            hashes.append(imagehash.phash(img))
        assert pixels.std() > 20  # not a flat colour
        # Camera-like compression: well above what a flat or smooth image would take.
        assert (root / rel).stat().st_size / pixels.size > 0.15
    assert len({(root / rel).read_bytes() for rel in CAMERA_PHOTOS}) == 3
    assert min(a - b for i, a in enumerate(hashes) for b in hashes[i + 1 :]) > 10


def test_exact_duplicate_is_byte_identical(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    assert sl.EXACT_DUPLICATE != sl.HOLIDAY_NIGHT
    assert Path(sl.EXACT_DUPLICATE).parent != Path(sl.HOLIDAY_NIGHT).parent
    assert (root / sl.EXACT_DUPLICATE).read_bytes() == (root / sl.HOLIDAY_NIGHT).read_bytes()


def test_near_duplicate_is_half_size_other_bytes_same_picture(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    original, near = root / sl.HOLIDAY_DAY, root / sl.NEAR_DUPLICATE
    assert original.read_bytes() != near.read_bytes()
    with Image.open(original) as a, Image.open(near) as b:
        assert b.format == "JPEG"
        assert (b.width, b.height) == (a.width // 2, a.height // 2)
        assert imagehash.phash(a) - imagehash.phash(b) <= 6
    assert capture_date(near, is_video=False) == capture_date(original, is_video=False)


def test_screenshot_is_png_without_exif(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    path = root / sl.SCREENSHOT
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert len(img.getexif()) == 0
    got = capture_date(path, is_video=False)
    assert (got.source, got.local) == ("filename", datetime(2024, 1, 5, 10, 20, 30))


def test_heic_is_small_heif_with_date(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    register_heif()
    with Image.open(root / sl.HEIC_PHOTO) as img:
        assert img.format == "HEIF"
        assert img.size == (512, 384)
    got = capture_date(root / sl.HEIC_PHOTO, is_video=False)
    assert (got.local, got.utc_offset_minutes) == (datetime(2024, 3, 15, 23, 30), 120)


@pytest.mark.skipif(not HAS_FFMPEG, reason="no ffmpeg/ffprobe on this machine")
def test_video_is_short_and_tagged(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    info = ffmpeg_tools.probe(root / sl.VIDEO)
    assert 0.5 <= float(info["format"]["duration"]) <= 2.0
    assert {s["codec_type"] for s in info["streams"]} == {"video", "audio"}
    assert info["format"]["tags"]["creation_time"].startswith("2023-07-01T05:30:00")
    got = capture_date(root / sl.VIDEO, is_video=True, home_zone="UTC")
    assert (got.tag, got.local, got.utc_offset_minutes) == ("quicktime_creation_time", datetime(2023, 7, 1, 5, 30), 0)


def test_corrupt_file_fails_to_decode(library: tuple[Path, list[Path]]) -> None:
    root, _ = library
    data = (root / sl.CORRUPT).read_bytes()
    assert data.startswith(b"\xff\xd8\xff")  # looks like a JPEG from the outside
    with pytest.raises(OSError), Image.open(io.BytesIO(data)) as img:
        img.load()
    assert capture_date(root / sl.CORRUPT, is_video=False).source == "file_mtime"


def test_rerun_is_idempotent(library: tuple[Path, list[Path]]) -> None:
    root, written = library
    before = _files(root)
    mtimes = {p: p.stat().st_mtime_ns for p in written}
    again = sl.write_sample_library(root)
    assert again == written
    assert _files(root) == before
    assert {p: p.stat().st_mtime_ns for p in again} == mtimes  # unchanged files are not rewritten


def test_content_is_deterministic(library: tuple[Path, list[Path]], tmp_path: Path) -> None:
    root, _ = library
    sl.write_sample_library(tmp_path)
    assert _files(tmp_path) == _files(root)


def test_rewrites_a_damaged_file(tmp_path: Path) -> None:
    target = tmp_path / "x" / "a.jpg"
    sl.make_photo(target, size=(64, 48), seed=3, taken=datetime(2020, 1, 1, 12), offset="+00:00")
    good = target.read_bytes()
    target.write_bytes(good[:100])
    sl.make_photo(target, size=(64, 48), seed=3, taken=datetime(2020, 1, 1, 12), offset="+00:00")
    assert target.read_bytes() == good
    assert [p.name for p in target.parent.iterdir()] == ["a.jpg"]


def test_make_photo_without_metadata_has_no_exif(tmp_path: Path) -> None:
    path = sl.make_photo(tmp_path / "plain.jpg", size=(64, 48), seed=1, make=None, model=None)
    with Image.open(path) as img:
        assert len(img.getexif()) == 0


def test_a_heic_can_carry_an_iphone_like_thumbnail() -> None:
    """The end-to-end benchmark's HEICs carry one, as an iPhone's do: deduplication fingerprints it instead of
    decoding the whole picture."""
    register_heif()
    plain, with_thumbnail = (Image.open(io.BytesIO(sl.photo_bytes(size=(1024, 768), fmt="HEIC", heif_thumbnail=t)))
                             for t in (None, 320))
    assert plain.info.get("thumbnails", []) == []
    assert len(with_thumbnail.info["thumbnails"]) == 1
    with_thumbnail.draft("RGB", (320, 240))
    assert with_thumbnail.size == (320, 240)


def test_a_heic_can_be_encoded_with_a_faster_preset() -> None:
    """The end-to-end benchmark encodes its thousands of 12 MP HEICs with x265's "ultrafast" preset: a HEIC all
    the same, with its date and its picture, and an unknown preset is refused rather than ignored."""
    register_heif()
    taken = datetime(2021, 5, 4, 10, 30)
    fast = sl.photo_bytes(size=(640, 480), seed=3, fmt="HEIC", taken=taken, heif_preset="ultrafast")
    with Image.open(io.BytesIO(fast)) as img:
        assert (img.format, img.size) == ("HEIF", (640, 480))
        assert img.getexif()[306] == "2021:05:04 10:30:00"
    with pytest.raises(Exception, match="Invalid parameter"):
        sl.photo_bytes(size=(64, 48), fmt="HEIC", heif_preset="no-such-preset")
