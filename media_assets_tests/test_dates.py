"""Every link of the capture-date chain, and that junk never wins over a later, sane source."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from media_assets.media import dates, ffmpeg_tools
from media_assets.media.dates import (
    ORDER,
    CaptureDate,
    FoundDate,
    KnownDate,
    capture_date,
    date_from_filename,
    date_from_metadata,
    date_from_probe,
    parse_exif_datetime,
    parse_iso_datetime,
    parse_utc_offset,
    takeout_date,
)
from media_assets.media.sample_library import make_photo, make_video, textured_image
from media_assets_tests.metadata_writer import write_tags, write_xmp_sidecar

SMALL = (64, 48)
NO_CAMERA = {"make": None, "model": None}
# 2022-02-03 04:05:06 UTC, a moment no test file otherwise carries.
MTIME = 1643861106.0

needs_ffmpeg = pytest.mark.skipif(
    ffmpeg_tools.ffmpeg_path() is None or ffmpeg_tools.ffprobe_path() is None,
    reason="no ffmpeg/ffprobe on this machine",
)


def _photo(path: Path, **kwargs: Any) -> Path:
    make_photo(path, size=SMALL, seed=1, **kwargs)
    os.utime(path, (MTIME, MTIME))
    return path


def _mtime_date(ts: float = MTIME) -> datetime:
    return datetime.fromtimestamp(ts)


def _meta(local: datetime, offset: int | None, tag: str) -> CaptureDate:
    return CaptureDate(local, offset, "metadata", tag)


# --- EXIF ---------------------------------------------------------------------------------------------


def test_original_with_offset(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", taken=datetime(2022, 8, 9, 10, 11, 12), offset="-05:30")
    got = capture_date(p, is_video=False)
    assert got == _meta(datetime(2022, 8, 9, 10, 11, 12), -330, "exif_datetimeoriginal")


def test_late_evening_east_of_utc_stays_on_local_day(tmp_path: Path) -> None:
    p = _photo(tmp_path / "tokyo.jpg", taken=datetime(2024, 3, 15, 23, 30), offset="+09:00")
    got = capture_date(p, is_video=False)
    assert got.local == datetime(2024, 3, 15, 23, 30)
    assert got.local.tzinfo is None
    assert got.utc_offset_minutes == 540
    assert got.tag == "exif_datetimeoriginal"
    assert got.folder == "2024/03/15"


def test_original_without_offset_is_unknown_offset(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", taken=datetime(2021, 1, 2, 3, 4, 5))
    assert capture_date(p, is_video=False) == _meta(datetime(2021, 1, 2, 3, 4, 5), None, "exif_datetimeoriginal")


def test_digitized_when_no_original(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif={0x9004: "2020:02:29 12:00:01", 0x9012: "+01:00"})
    assert capture_date(p, is_video=False) == _meta(datetime(2020, 2, 29, 12, 0, 1), 60, "exif_createdate")


def test_modify_date_only_when_nothing_better(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif={0x0132: "2019:12:31 23:59:59", 0x9010: "+00:00"})
    got = capture_date(p, is_video=False)
    assert got == CaptureDate(datetime(2019, 12, 31, 23, 59, 59), 0, "edit_time", "exif_modifydate")


def test_junk_exif_values_are_skipped(tmp_path: Path) -> None:
    junk = {
        0x9003: "0000:00:00 00:00:00",
        0x9011: "+09:00",
        0x9004: "    :  :     :  :  ",
        0x0132: "2018:06:07 08:09:10",
        0x9010: "+02:00",
    }
    p = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif=junk)
    got = capture_date(p, is_video=False)
    assert got == CaptureDate(datetime(2018, 6, 7, 8, 9, 10), 120, "edit_time", "exif_modifydate")


def test_all_junk_exif_falls_to_filename_then_mtime(tmp_path: Path) -> None:
    junk = {0x9003: "0000:00:00 00:00:00", 0x9004: "", 0x0132: "2010:13:45 99:00:00"}
    named = _photo(tmp_path / "IMG_20231224_183015.jpg", **NO_CAMERA, extra_exif=junk)
    assert capture_date(named, is_video=False).source == "filename"
    unnamed = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif=junk)
    got = capture_date(unnamed, is_video=False)
    assert (got.local, got.source) == (_mtime_date(), "file_mtime")


def test_bad_offset_keeps_date_with_unknown_offset(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", **NO_CAMERA, extra_exif={0x9003: "2017:04:05 06:07:08", 0x9011: "+99:00"})
    assert capture_date(p, is_video=False) == _meta(datetime(2017, 4, 5, 6, 7, 8), None, "exif_datetimeoriginal")


def test_offset_borrowed_from_other_field_for_same_time() -> None:
    tags = {"Exif.Photo.DateTimeOriginal": "2016:01:01 10:00:00", "Exif.Image.DateTime": "2016:01:01 10:00:00",
            "Exif.Photo.OffsetTime": "-08:00"}
    assert date_from_metadata(tags) == FoundDate("exif_datetimeoriginal", datetime(2016, 1, 1, 10), -480)
    # A different time (edited later) says nothing about the capture offset.
    tags["Exif.Image.DateTime"] = "2016:05:01 10:00:00"
    assert date_from_metadata(tags) == FoundDate("exif_datetimeoriginal", datetime(2016, 1, 1, 10), None)


def test_subsec_and_odd_value_shapes() -> None:
    tags = {"Exif.Photo.DateTimeOriginal": "2015:03:04 05:06:07\x00", "Exif.Photo.SubSecTimeOriginal": "123",
            "Exif.Photo.OffsetTimeOriginal": "+05:45"}
    got = date_from_metadata(tags)
    assert got == FoundDate("exif_datetimeoriginal", datetime(2015, 3, 4, 5, 6, 7, 123000), 345)


def test_heic_exif_date(tmp_path: Path) -> None:
    p = _photo(tmp_path / "IMG_0001.HEIC", fmt="HEIC", taken=datetime(2024, 3, 15, 23, 30), offset="+09:00")
    assert capture_date(p, is_video=False) == _meta(datetime(2024, 3, 15, 23, 30), 540, "exif_datetimeoriginal")


def test_png_with_exif_chunk(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.png", fmt="PNG", taken=datetime(2014, 7, 8, 9, 10, 11), offset="+03:00")
    assert capture_date(p, is_video=False) == _meta(datetime(2014, 7, 8, 9, 10, 11), 180, "exif_datetimeoriginal")


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
    assert date_from_probe(info) == FoundDate("apple_creationdate", datetime(2023, 7, 1, 23, 30), 540)


def test_probe_creation_time_from_stream_tags_and_junk_skipped() -> None:
    info = {
        "format": {"tags": {"creation_time": "1970-01-01T00:00:00.000000Z"}},
        "streams": [
            {"tags": {"creation_time": "1904-01-01T00:00:00Z", "com.apple.quicktime.creationdate": "junk"}},
            {"tags": {"creation_time": "2022-10-11T12:13:14.500000Z"}},
        ],
    }
    assert date_from_probe(info) == FoundDate("quicktime_creation_time", datetime(2022, 10, 11, 12, 13, 14, 500000),
                                              0, is_utc=True)
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
    got = capture_date(p, is_video=True, home_zone="America/New_York")
    assert got == _meta(datetime(2023, 7, 1, 23, 30), 540, "apple_creationdate")
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
    got = capture_date(p, is_video=True, home_zone="UTC")
    assert got == CaptureDate(datetime(2023, 7, 1, 5, 30), 0, "metadata", "quicktime_creation_time", "UTC",
                              "home_timezone")


@needs_ffmpeg
def test_video_without_tags_falls_to_filename_then_mtime(tmp_path: Path) -> None:
    p = make_video(tmp_path / "VID_20231224_183015.mp4", seconds=0.2, size=(64, 48), audio=False)
    assert p is not None
    assert capture_date(p, is_video=True) == CaptureDate(datetime(2023, 12, 24, 18, 30, 15), None, "filename",
                                                         "filename")
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
    assert date_from_filename(name) == CaptureDate(expected, None, "filename", "filename")


@pytest.mark.parametrize(
    "name",
    [
        "IMG_0001.jpg",
        "IMG_19851224_183015.jpg",  # before 1990
        "IMG_21011224_183015.jpg",  # after 2100
        "IMG_20991224_183015.jpg",  # after tomorrow
        "DSC_19283746.jpg",  # a serial number
        "IMG_1234567890123.jpg",  # a counter / epoch in milliseconds
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
    assert capture_date(p, is_video=False) == CaptureDate(datetime(2024, 1, 5, 10, 20, 30), None, "filename",
                                                          "filename")


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
    monkeypatch.setenv("TZ", "Asia/Tokyo")
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

    def boom(values: object) -> FoundDate | None:
        raise ValueError("parser bug")

    monkeypatch.setattr(dates, "date_from_metadata", boom)
    assert capture_date(p, is_video=False).source == "filename"


# --- the order of trust (issue 14) --------------------------------------------------------------------------

#: One distinct moment per tag, written with exiv2, most trusted first.
EVERY_TAG: tuple[tuple[str, dict[str, str], datetime], ...] = (
    ("exif_datetimeoriginal", {"Exif.Photo.DateTimeOriginal": "2001:01:01 01:01:01"}, datetime(2001, 1, 1, 1, 1, 1)),
    ("xmp_exif_datetimeoriginal", {"Xmp.exif.DateTimeOriginal": "2002-02-02T02:02:02"}, datetime(2002, 2, 2, 2, 2, 2)),
    ("xmp_photoshop_datecreated", {"Xmp.photoshop.DateCreated": "2003-03-03T03:03:03"}, datetime(2003, 3, 3, 3, 3, 3)),
    ("iptc_datecreated", {"Iptc.Application2.DateCreated": "2004-04-04", "Iptc.Application2.TimeCreated": "04:04:04"},
     datetime(2004, 4, 4, 4, 4, 4)),
    ("exif_createdate", {"Exif.Photo.DateTimeDigitized": "2005:05:05 05:05:05"}, datetime(2005, 5, 5, 5, 5, 5)),
    ("xmp_createdate", {"Xmp.xmp.CreateDate": "2006-06-06T06:06:06"}, datetime(2006, 6, 6, 6, 6, 6)),
    ("filename", {}, datetime(2007, 7, 7, 7, 7, 7)),
    ("exif_modifydate", {"Exif.Image.DateTime": "2008:08:08 08:08:08"}, datetime(2008, 8, 8, 8, 8, 8)),
    ("xmp_modifydate", {"Xmp.xmp.ModifyDate": "2009-09-09T09:09:09"}, datetime(2009, 9, 9, 9, 9, 9)),
    ("xmp_metadatadate", {"Xmp.xmp.MetadataDate": "2010-10-10T10:10:10"}, datetime(2010, 10, 10, 10, 10, 10)),
)


def _write_every_tag(path: Path, skip: int) -> Path:
    make_photo(path, size=SMALL, seed=1, **NO_CAMERA)
    os.utime(path, (MTIME, MTIME))
    values: dict[str, str] = {}
    for _, tags, _ in EVERY_TAG[skip:]:
        values.update(tags)
    return write_tags(path, exif={k: v for k, v in values.items() if k.startswith("Exif.")},
                      xmp={k: v for k, v in values.items() if k.startswith("Xmp.")},
                      iptc={k: v for k, v in values.items() if k.startswith("Iptc.")})


@pytest.mark.parametrize("skip", range(len(EVERY_TAG)))
def test_order_of_trust_first_found_wins(tmp_path: Path, skip: int) -> None:
    """Each tag wins once every tag above it is gone; edit times rank below the file name."""
    tag, _, expected = EVERY_TAG[skip]
    named = "2007-07-07 07_07_07.jpg" if skip <= 6 else "holiday.jpg"
    got = capture_date(_write_every_tag(tmp_path / "photo.jpg", skip), is_video=False, original_name=named)
    assert (got.tag, got.local) == (tag, expected)
    assert list(ORDER).index(tag) >= skip


def test_edit_times_rank_below_the_file_name(tmp_path: Path) -> None:
    p = _write_every_tag(tmp_path / "2016-05-07(2).jpg", skip=7)
    got = capture_date(p, is_video=False)
    assert (got.source, got.tag, got.local) == ("filename", "filename", datetime(2016, 5, 7))


def test_xmp_date_with_offset_and_iptc_time_with_offset(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", **NO_CAMERA)
    write_tags(p, xmp={"Xmp.photoshop.DateCreated": "2019-05-06T23:30:00+09:00"})
    assert capture_date(p, is_video=False) == _meta(datetime(2019, 5, 6, 23, 30), 540, "xmp_photoshop_datecreated")
    q = _photo(tmp_path / "b.jpg", **NO_CAMERA)
    write_tags(q, iptc={"Iptc.Application2.DateCreated": "2018-01-02",
                        "Iptc.Application2.TimeCreated": "10:11:12-05:00"})
    assert capture_date(q, is_video=False) == _meta(datetime(2018, 1, 2, 10, 11, 12), -300, "iptc_datecreated")


def test_heic_xmp_read_through_bmff(tmp_path: Path) -> None:
    """libexiv2 cannot write HEIC: the XMP packet goes in through pillow-heif."""
    dates.register_heif()
    p = tmp_path / "IMG_0002.HEIC"
    packet = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
              ' exif:DateTimeOriginal="2021-08-09T10:11:12+02:00"/></rdf:RDF></x:xmpmeta>')
    textured_image(SMALL, 1).save(p, format="HEIF", xmp=packet.encode())
    assert capture_date(p, is_video=False) == _meta(datetime(2021, 8, 9, 10, 11, 12), 120, "xmp_exif_datetimeoriginal")


# --- time zones ---------------------------------------------------------------------------------------------


def test_datetimeoriginal_without_offset_stays_as_written_even_with_gps(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", taken=datetime(2024, 3, 15, 7, 0), gps=(35.68, 139.69))
    got = capture_date(p, is_video=False, home_zone="America/Los_Angeles")
    assert (got.local, got.time_zone, got.time_zone_source) == (datetime(2024, 3, 15, 7, 0), None, None)


def test_gps_time_becomes_local_time_at_the_gps_position(tmp_path: Path) -> None:
    p = _photo(tmp_path / "a.jpg", gps=(35.68, 139.69), **NO_CAMERA)
    write_tags(p, exif={"Exif.GPSInfo.GPSDateStamp": "2024:03:14", "Exif.GPSInfo.GPSTimeStamp": "22/1 0/1 0/1"})
    got = capture_date(p, is_video=False, home_zone="Europe/Berlin")
    assert got == CaptureDate(datetime(2024, 3, 15, 7, 0), 540, "metadata", "gps_datetime", "Asia/Tokyo", "gps")


@needs_ffmpeg
def test_android_video_shot_at_seven_in_tokyo_is_filed_under_that_day(tmp_path: Path) -> None:
    """creation_time is UTC (22:00 the previous day); the GPS position in the file says Tokyo."""
    p = make_video(tmp_path / "VID_clip.mp4", seconds=0.2, size=(64, 48), audio=False,
                   creation_time=datetime(2024, 3, 14, 22, 0), location="+35.6895+139.6917/")
    assert p is not None
    got = capture_date(p, is_video=True, home_zone="Europe/Berlin")
    assert got == CaptureDate(datetime(2024, 3, 15, 7, 0), 540, "metadata", "quicktime_creation_time",
                              "Asia/Tokyo", "gps")
    assert got.folder == "2024/03/15"


@needs_ffmpeg
def test_utc_video_without_position_is_read_in_the_home_zone(tmp_path: Path) -> None:
    p = make_video(tmp_path / "clip.mp4", seconds=0.2, size=(64, 48), audio=False,
                   creation_time=datetime(2024, 3, 14, 22, 0))
    assert p is not None
    got = capture_date(p, is_video=True, home_zone="Asia/Tokyo")
    assert (got.local, got.utc_offset_minutes, got.time_zone, got.time_zone_source) == (
        datetime(2024, 3, 15, 7, 0), 540, "Asia/Tokyo", "home_timezone")


# --- XMP sidecars -------------------------------------------------------------------------------------------

LIGHTROOM = {"xmp:CreateDate": "2021-08-14T18:30:05.12+02:00", "exif:DateTimeOriginal": "2021-08-14T18:30:05.12+02:00",
             "photoshop:DateCreated": "2021-08-14T18:30:05.12+02:00", "xmp:ModifyDate": "2023-01-02T03:04:05+01:00"}


@pytest.mark.parametrize(("tags", "expected"), [
    (LIGHTROOM, ("sidecar_xmp_exif_datetimeoriginal", datetime(2021, 8, 14, 18, 30, 5, 120000), 120)),
    ({"exif:DateTimeOriginal": "2021:08:14 18:30:05"},  # darktable writes EXIF's own form
     ("sidecar_xmp_exif_datetimeoriginal", datetime(2021, 8, 14, 18, 30, 5), None)),
    ({"photoshop:DateCreated": "2021-08-14", "xmp:CreateDate": "2021-08-14T18:30:05"},
     ("sidecar_xmp_photoshop_datecreated", datetime(2021, 8, 14), None)),
    ({"xmp:CreateDate": "2021-08-14T18:30:05-04:00"},
     ("sidecar_xmp_createdate", datetime(2021, 8, 14, 18, 30, 5), -240)),
])
def test_an_xmp_sidecar_dates_a_photo_without_dates_of_its_own(tmp_path: Path, tags: dict[str, str],
                                                               expected: tuple[str, datetime, int | None]) -> None:
    photo = _photo(tmp_path / "7-IMG_1234.jpg", **NO_CAMERA)
    sidecar = write_xmp_sidecar(tmp_path / "7-IMG_1234.XMP", tags)
    got = capture_date(photo, is_video=False, original_name="IMG_20200101_101010.jpg", xmp_sidecars=[sidecar])
    assert (got.tag, got.local, got.utc_offset_minutes, got.source) == (*expected, "metadata")
    assert got.tag in ORDER and ORDER.index(got.tag) < ORDER.index("filename")


def test_a_photos_own_date_wins_over_its_xmp_sidecar(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "IMG_1234.jpg", taken=datetime(2019, 5, 6, 7, 8, 9))
    sidecar = write_xmp_sidecar(tmp_path / "IMG_1234.jpg.xmp", LIGHTROOM)
    got = capture_date(photo, is_video=False, xmp_sidecars=[sidecar])
    assert (got.tag, got.local) == ("exif_datetimeoriginal", datetime(2019, 5, 6, 7, 8, 9))


def test_an_xmp_sidecar_with_only_edit_times_or_junk_dates_nothing(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "IMG_1234.jpg", **NO_CAMERA)
    edited = write_xmp_sidecar(tmp_path / "edited.xmp", {"xmp:ModifyDate": "2023-01-02T03:04:05"})
    junk = write_xmp_sidecar(tmp_path / "junk.xmp", {"exif:DateTimeOriginal": "0000:00:00 00:00:00"})
    broken = tmp_path / "broken.xmp"
    broken.write_text("<x:xmpmeta")
    got = capture_date(photo, is_video=False, original_name="IMG_20200101_101010.jpg",
                       xmp_sidecars=[edited, junk, broken])
    assert (got.tag, got.local) == ("filename", datetime(2020, 1, 1, 10, 10, 10))


# --- dates the source knows ---------------------------------------------------------------------------------


def test_takeout_json_beside_the_file(tmp_path: Path) -> None:
    sidecar = tmp_path / "photo.jpg.json"
    sidecar.write_text('{"title": "photo.jpg", "photoTakenTime": {"timestamp": "1710453600", "formatted": "x"}}')
    known = takeout_date(sidecar)
    assert known is not None and known.tag == "takeout_json"
    p = _photo(tmp_path / "photo.jpg", **NO_CAMERA)
    got = capture_date(p, is_video=False, known_dates=[known], home_zone="Asia/Tokyo")
    # 1710453600 is 2024-03-14 22:00 UTC.
    assert got == CaptureDate(datetime(2024, 3, 15, 7, 0), 540, "source", "takeout_json", "Asia/Tokyo",
                              "home_timezone")
    assert takeout_date(tmp_path / "missing.json") is None
    (tmp_path / "other.json").write_text('{"not": "takeout"}')
    assert takeout_date(tmp_path / "other.json") is None


def test_source_date_ranks_below_file_name_and_above_edit_times(tmp_path: Path) -> None:
    icloud = KnownDate("icloud_asset_date", datetime(2020, 6, 1, 12, 0, tzinfo=timezone.utc))
    edited = _write_every_tag(tmp_path / "a.jpg", skip=7)
    assert capture_date(edited, is_video=False, known_dates=[icloud], home_zone="UTC").tag == "icloud_asset_date"
    named = capture_date(edited, is_video=False, known_dates=[icloud], original_name="IMG_20190101_101112.jpg")
    assert named.tag == "filename"
    assert capture_date(edited, is_video=False).tag == "exif_modifydate"


# --- file names (issue 14's shapes) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("telegram_2021-03-14_08-15-00.jpg", datetime(2021, 3, 14, 8, 15)),
        ("2016-05-07(2).jpg", datetime(2016, 5, 7)),
        ("2019-06-01 18_20_30.jpg", datetime(2019, 6, 1, 18, 20, 30)),
        ("PXL_20230101_101112345.jpg", datetime(2023, 1, 1, 10, 11, 12, 345000)),
        ("IMG_20230101_101112.jpg", datetime(2023, 1, 1, 10, 11, 12)),
        ("IMG-20230101-WA0001.jpg", datetime(2023, 1, 1)),
        ("signal-2023-01-01-101112.jpg", datetime(2023, 1, 1, 10, 11, 12)),
        ("Screenshot_2022-03-15-10-11-12.png", datetime(2022, 3, 15, 10, 11, 12)),
        ("Screenshot 2019-05-21 at 10.45.52.png", datetime(2019, 5, 21, 10, 45, 52)),
        ("VID_20230101_101112.mp4", datetime(2023, 1, 1, 10, 11, 12)),
        ("MVIMG_20230101_101112.jpg", datetime(2023, 1, 1, 10, 11, 12)),
        ("2019.06.01 18.20.30.jpg", datetime(2019, 6, 1, 18, 20, 30)),
        ("2019_06_01_18_20_30.jpg", datetime(2019, 6, 1, 18, 20, 30)),
        ("WhatsApp Image 2023-01-01 at 10.11.12.jpeg", datetime(2023, 1, 1, 10, 11, 12)),
        ("IMG_20230101.jpg", datetime(2023, 1, 1)),
        ("holiday 2016_05_07 beach.jpg", datetime(2016, 5, 7)),
    ],
)
def test_filename_shapes(name: str, expected: datetime) -> None:
    assert date_from_filename(name) == CaptureDate(expected, None, "filename", "filename")


@pytest.mark.parametrize("name", ["IMG_0001(2).jpg", "DSC_0042-1.jpg", "photo_123456.jpg", "20161301.jpg",
                                  "IMG_20161301_101112.jpg"])
def test_counters_are_never_dates(name: str) -> None:
    assert date_from_filename(name) is None


def test_home_timezone_setting(tmp_path: Path) -> None:
    from media_assets.media.timezones import machine_zone_name
    from media_assets.settings import SettingsError, load_settings
    from media_assets_tests.conftest import write_settings

    assert load_settings(write_settings(tmp_path, HOME_TIMEZONE="Asia/Tokyo"), {}).dates.home_timezone == "Asia/Tokyo"
    assert load_settings(write_settings(tmp_path), {}).dates.home_timezone == machine_zone_name()
    with pytest.raises(SettingsError, match="HOME_TIMEZONE"):
        load_settings(write_settings(tmp_path, HOME_TIMEZONE="Mars/Olympus"), {})
