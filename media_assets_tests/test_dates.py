"""Every link of the capture-date chain, and that junk never wins over a later, sane source."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from media_assets.media import dates, ffmpeg_tools
from media_assets.media.dates import (
    CaptureDate,
    capture_date,
    date_from_exif_tags,
    date_from_filename,
    date_from_probe,
    parse_exif_datetime,
    parse_iso_datetime,
    parse_utc_offset,
)
from media_assets.media.sample_library import make_photo, make_video

SMALL = (64, 48)
NO_CAMERA = {"make": None, "model": None}
# 2022-02-03 04:05:06 UTC, a moment no test file otherwise carries.
MTIME = 1643861106.0

needs_ffmpeg = pytest.mark.skipif(
    ffmpeg_tools.ffmpeg_path() is None or ffmpeg_tools.ffprobe_path() is None,
    reason="no ffmpeg/ffprobe on this machine",
)


def _photo(path: Path, **kwargs) -> Path:
    make_photo(path, size=SMALL, seed=1, **kwargs)
    os.utime(path, (MTIME, MTIME))
    return path


def _mtime_date(ts: float = MTIME) -> datetime:
    return datetime.fromtimestamp(ts)


# --- EXIF ---------------------------------------------------------------------------------------------


def test_original_with_offset(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", taken=datetime(2022, 8, 9, 10, 11, 12), offset="-05:30")
    got = capture_date(p, is_video=False)
    assert got == CaptureDate(datetime(2022, 8, 9, 10, 11, 12), -330, "exif_original")


def test_late_evening_east_of_utc_stays_on_local_day(tmp_path: Path) -> None:
    p = _photo(tmp_path / "tokyo.jpg", taken=datetime(2024, 3, 15, 23, 30), offset="+09:00")
    got = capture_date(p, is_video=False)
    assert got.local == datetime(2024, 3, 15, 23, 30)
    assert got.local.tzinfo is None
    assert got.utc_offset_minutes == 540
    assert got.source == "exif_original"
    assert got.folder == "2024/03/15"


def test_original_without_offset_is_unknown_offset(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", taken=datetime(2021, 1, 2, 3, 4, 5))
    assert capture_date(p, is_video=False) == CaptureDate(datetime(2021, 1, 2, 3, 4, 5), None, "exif_original")


def test_digitized_when_no_original(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif={0x9004: "2020:02:29 12:00:01", 0x9012: "+01:00"})
    assert capture_date(p, is_video=False) == CaptureDate(datetime(2020, 2, 29, 12, 0, 1), 60, "exif_digitized")


def test_datetime_when_no_original_or_digitized(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif={0x0132: "2019:12:31 23:59:59", 0x9010: "+00:00"})
    assert capture_date(p, is_video=False) == CaptureDate(datetime(2019, 12, 31, 23, 59, 59), 0, "exif_datetime")


def test_junk_exif_values_are_skipped(tmp_path: Path) -> None:
    junk = {
        0x9003: "0000:00:00 00:00:00",
        0x9011: "+09:00",
        0x9004: "    :  :     :  :  ",
        0x0132: "2018:06:07 08:09:10",
        0x9010: "+02:00",
    }
    p = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif=junk)
    assert capture_date(p, is_video=False) == CaptureDate(datetime(2018, 6, 7, 8, 9, 10), 120, "exif_datetime")


def test_all_junk_exif_falls_to_filename_then_mtime(tmp_path: Path) -> None:
    junk = {0x9003: "0000:00:00 00:00:00", 0x9004: "", 0x0132: "2010:13:45 99:00:00"}
    named = _photo(tmp_path / "IMG_20231224_183015.jpg", **NO_CAMERA, extra_exif=junk)
    assert capture_date(named, is_video=False).source == "filename"
    unnamed = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif=junk)
    got = capture_date(unnamed, is_video=False)
    assert (got.local, got.source) == (_mtime_date(), "file_mtime")


def test_bad_offset_keeps_date_with_unknown_offset(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif={0x9003: "2017:04:05 06:07:08", 0x9011: "+99:00"})
    assert capture_date(p, is_video=False) == CaptureDate(datetime(2017, 4, 5, 6, 7, 8), None, "exif_original")


def test_offset_borrowed_from_other_field_for_same_time() -> None:
    tags = {0x9003: "2016:01:01 10:00:00", 0x0132: "2016:01:01 10:00:00", 0x9010: "-08:00"}
    assert date_from_exif_tags(tags) == CaptureDate(datetime(2016, 1, 1, 10), -480, "exif_original")
    # A different time (edited later) says nothing about the capture offset.
    tags[0x0132] = "2016:05:01 10:00:00"
    assert date_from_exif_tags(tags) == CaptureDate(datetime(2016, 1, 1, 10), None, "exif_original")


def test_subsec_and_odd_value_shapes() -> None:
    tags = {0x9003: b"2015:03:04 05:06:07\x00", 0x9291: "123", 0x9011: ("+05:45",)}
    got = date_from_exif_tags(tags)
    assert got == CaptureDate(datetime(2015, 3, 4, 5, 6, 7, 123000), 345, "exif_original")
    assert got.folder == "2015/03/04"


def test_heic_exif_date(tmp_path: Path) -> None:
    p = _photo(tmp_path / "IMG_0001.HEIC", fmt="HEIC", taken=datetime(2024, 3, 15, 23, 30), offset="+09:00")
    assert capture_date(p, is_video=False) == CaptureDate(datetime(2024, 3, 15, 23, 30), 540, "exif_original")


def test_png_with_exif_chunk(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.png", fmt="PNG", taken=datetime(2014, 7, 8, 9, 10, 11), offset="+03:00")
    assert capture_date(p, is_video=False) == CaptureDate(datetime(2014, 7, 8, 9, 10, 11), 180, "exif_original")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024:03:15 23:30:00", datetime(2024, 3, 15, 23, 30)),
        ("2024-03-15 23:30:00", datetime(2024, 3, 15, 23, 30)),
        ("2024:03:15 23:30", datetime(2024, 3, 15, 23, 30)),
        ("2024:03:15 23:30:00+09:00", datetime(2024, 3, 15, 23, 30)),
        ("0000:00:00 00:00:00", None),
        ("    :  :     :  :  ", None),
        ("", None),
        (None, None),
        ("2024:02:30 10:00:00", None),
        ("1970:01:01 00:00:00", None),
        ("1850:01:01 00:00:00", None),
        ("garbage", None),
    ],
)
def test_parse_exif_datetime(value: str | None, expected: datetime | None) -> None:
    assert parse_exif_datetime(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+09:00", 540),
        ("-05:30", -330),
        ("+0545", 345),
        ("Z", 0),
        ("+00:00", 0),
        ("+14:00", 840),
        ("+15:00", None),
        ("+09:60", None),
        ("   :  ", None),
        ("", None),
        (None, None),
        ("09:00", None),
    ],
)
def test_parse_utc_offset(value: str | None, expected: int | None) -> None:
    assert parse_utc_offset(value) == expected


# --- videos -------------------------------------------------------------------------------------------


def test_probe_apple_creationdate_beats_utc_creation_time() -> None:
    info = {
        "format": {"tags": {"creation_time": "2023-07-01T14:30:00.000000Z"}},
        "streams": [{"tags": {"com.apple.quicktime.creationdate": "2023-07-01T23:30:00+0900"}}],
    }
    assert date_from_probe(info) == CaptureDate(datetime(2023, 7, 1, 23, 30), 540, "quicktime_apple")


def test_probe_creation_time_from_stream_tags_and_junk_skipped() -> None:
    info = {
        "format": {"tags": {"creation_time": "1970-01-01T00:00:00.000000Z"}},
        "streams": [
            {"tags": {"creation_time": "1904-01-01T00:00:00Z", "com.apple.quicktime.creationdate": "junk"}},
            {"tags": {"creation_time": "2022-10-11T12:13:14.500000Z"}},
        ],
    }
    assert date_from_probe(info) == CaptureDate(datetime(2022, 10, 11, 12, 13, 14, 500000), 0, "quicktime_utc")
    assert date_from_probe({"format": {}, "streams": "odd"}) is None
    assert date_from_probe({}) is None


def test_parse_iso_datetime() -> None:
    assert parse_iso_datetime("2023-07-01T23:30:00+0900") == (datetime(2023, 7, 1, 23, 30), 540)
    assert parse_iso_datetime("2023-07-01T23:30:00-04:00") == (datetime(2023, 7, 1, 23, 30), -240)
    assert parse_iso_datetime("2023-07-01 23:30:00") == (datetime(2023, 7, 1, 23, 30), None)
    assert parse_iso_datetime("2023-07-01T23:30:00+9900") is None
    assert parse_iso_datetime("0000-00-00T00:00:00Z") is None


@needs_ffmpeg
def test_video_apple_quicktime_tag(tmp_path: Path) -> None:
    p = make_video(
        tmp_path / "IMG_0001.MOV",
        seconds=0.2,
        size=(64, 48),
        audio=False,
        creation_time=datetime(2023, 7, 1, 14, 30),
        apple_creationdate="2023-07-01T23:30:00+0900",
    )
    assert p is not None
    got = capture_date(p, is_video=True)
    assert got == CaptureDate(datetime(2023, 7, 1, 23, 30), 540, "quicktime_apple")
    assert got.folder == "2023/07/01"


@needs_ffmpeg
def test_video_utc_creation_time(tmp_path: Path) -> None:
    p = make_video(
        tmp_path / "VID_20991231_000000.mp4",
        seconds=0.2,
        size=(64, 48),
        audio=False,
        creation_time=datetime(2023, 7, 1, 5, 30),
    )
    assert p is not None
    assert capture_date(p, is_video=True) == CaptureDate(datetime(2023, 7, 1, 5, 30), 0, "quicktime_utc")


@needs_ffmpeg
def test_video_without_tags_falls_to_filename_then_mtime(tmp_path: Path) -> None:
    p = make_video(tmp_path / "VID_20231224_183015.mp4", seconds=0.2, size=(64, 48), audio=False)
    assert p is not None
    assert capture_date(p, is_video=True) == CaptureDate(datetime(2023, 12, 24, 18, 30, 15), None, "filename")
    got = capture_date(p, is_video=True, original_name="clip.mp4", file_mtime=MTIME)
    assert (got.local, got.source) == (_mtime_date(), "file_mtime")


def test_video_when_ffprobe_missing_or_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "VID_20231224_183015.mp4"
    p.write_bytes(b"not really a video")

    def missing(path: Path) -> dict:
        raise ffmpeg_tools.ProbeUnavailable("ffprobe not available")

    monkeypatch.setattr(ffmpeg_tools, "probe", missing)
    assert capture_date(p, is_video=True).source == "filename"

    def crashing(path: Path) -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr(ffmpeg_tools, "probe", crashing)
    assert capture_date(p, is_video=True).source == "filename"


@needs_ffmpeg
def test_garbage_video_with_real_ffprobe_falls_through(tmp_path: Path) -> None:
    p = tmp_path / "movie.mp4"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 200)
    os.utime(p, (MTIME, MTIME))
    assert capture_date(p, is_video=True).source == "file_mtime"


# --- file names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PXL_20231224_183015123.jpg", datetime(2023, 12, 24, 18, 30, 15, 123000)),
        ("PXL_20231224_183015123.MP.jpg", datetime(2023, 12, 24, 18, 30, 15, 123000)),
        ("IMG_20231224_183015.jpg", datetime(2023, 12, 24, 18, 30, 15)),
        ("IMG_20231224_183015_HDR.jpg", datetime(2023, 12, 24, 18, 30, 15)),
        ("VID_20231224_183015.mp4", datetime(2023, 12, 24, 18, 30, 15)),
        ("IMG-20231224-WA0001.jpg", datetime(2023, 12, 24)),
        ("VID-20231224-WA0012.mp4", datetime(2023, 12, 24)),
        ("20231224_183015.jpg", datetime(2023, 12, 24, 18, 30, 15)),
        ("2023-12-24 18.30.15.jpg", datetime(2023, 12, 24, 18, 30, 15)),
        ("2023-12-24 18.30.15-1.jpg", datetime(2023, 12, 24, 18, 30, 15)),
        ("Screenshot_2023-12-24-18-30-15.png", datetime(2023, 12, 24, 18, 30, 15)),
        ("Screenshot_2023-12-24-18-30-15_com.android.chrome.png", datetime(2023, 12, 24, 18, 30, 15)),
        ("Screenshot 2023-12-24 at 18.30.15.png", datetime(2023, 12, 24, 18, 30, 15)),
        ("Screenshot 2023-12-24 at 6.30.15\u202fPM.png", datetime(2023, 12, 24, 18, 30, 15)),
        ("Screenshot 2023-12-24 at 12.05.00 AM.png", datetime(2023, 12, 24, 0, 5)),
    ],
)
def test_filename_patterns(name: str, expected: datetime) -> None:
    assert date_from_filename(name) == CaptureDate(expected, None, "filename")


@pytest.mark.parametrize(
    "name",
    [
        "IMG_0001.jpg",
        "IMG_19851224_183015.jpg",  # before 1990
        "IMG_21011224_183015.jpg",  # after 2100
        "IMG_20231324_183015.jpg",  # month 13
        "IMG_20230230_183015.jpg",  # 30 February
        "IMG_20231224_253015.jpg",  # hour 25
        "IMG-20231232-WA0001.jpg",
        "Screenshot 2023-12-24 at 13.30.15 PM.png",
        "123456789012345.jpg",
        "",
    ],
)
def test_filename_junk_is_rejected(name: str) -> None:
    assert date_from_filename(name) is None


def test_filename_used_for_photo_without_exif(tmp_path: Path) -> None:
    p = _photo(tmp_path / "Screenshot_2024-01-05-10-20-30.png", fmt="PNG", **NO_CAMERA)
    assert capture_date(p, is_video=False) == CaptureDate(datetime(2024, 1, 5, 10, 20, 30), None, "filename")


def test_original_name_wins_over_staged_name(tmp_path: Path) -> None:
    p = _photo(tmp_path / "IMG_20000101_000000.jpg", **NO_CAMERA)
    got = capture_date(p, is_video=False, original_name="PXL_20231224_183015123.jpg")
    assert got.local == datetime(2023, 12, 24, 18, 30, 15, 123000)


# --- file mtime ---------------------------------------------------------------------------------------


def test_no_date_falls_to_file_mtime(tmp_path: Path) -> None:
    p = _photo(tmp_path / "holiday.jpg", **NO_CAMERA)
    got = capture_date(p, is_video=False)
    assert got.source == "file_mtime"
    assert got.local == _mtime_date()
    assert got.local.tzinfo is None
    expected_offset = datetime.fromtimestamp(MTIME).astimezone().utcoffset()
    assert expected_offset is not None
    assert got.utc_offset_minutes == int(expected_offset.total_seconds() // 60)


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="needs time.tzset (Unix)")
def test_file_mtime_uses_the_machines_zone_not_utc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _photo(tmp_path / "holiday.jpg", **NO_CAMERA)
    monkeypatch.setenv("TZ", "JST-9")  # POSIX form: needs no tzdata
    time.tzset()
    try:
        got = capture_date(p, is_video=False)
    finally:
        monkeypatch.undo()
        time.tzset()
    # MTIME is 04:05:06 UTC, i.e. 13:05:06 in Tokyo.
    assert (got.local, got.utc_offset_minutes) == (datetime(2022, 2, 3, 13, 5, 6), 540)


def test_explicit_file_mtime_overrides_stat(tmp_path: Path) -> None:
    p = _photo(tmp_path / "holiday.jpg", **NO_CAMERA)
    other = MTIME + 86400 * 30
    assert capture_date(p, is_video=False, file_mtime=other).local == _mtime_date(other)


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00garbage", b"hello" * 10])
def test_odd_files_never_raise(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "odd.jpg"
    p.write_bytes(content)
    os.utime(p, (MTIME, MTIME))
    for is_video in (False, True):
        got = capture_date(p, is_video=is_video)
        assert (got.local, got.source) == (_mtime_date(), "file_mtime")


def test_missing_file_does_not_raise(tmp_path: Path) -> None:
    got = capture_date(tmp_path / "gone.jpg", is_video=False)
    assert got.source == "file_mtime"
    assert capture_date(tmp_path / "gone.jpg", is_video=False, file_mtime=MTIME).local == _mtime_date()
    assert capture_date(tmp_path / "gone.jpg", is_video=False, file_mtime=1e30).source == "file_mtime"


def test_a_crashing_source_moves_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _photo(tmp_path / "IMG_20231224_183015.jpg", taken=datetime(2020, 1, 1), offset="+00:00")

    def boom(path: Path) -> CaptureDate | None:
        raise ValueError("parser bug")

    monkeypatch.setattr(dates, "_from_exif", boom)
    assert capture_date(p, is_video=False).source == "filename"
