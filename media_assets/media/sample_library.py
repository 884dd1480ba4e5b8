"""A small, realistic family photo library generated on the fly, for ``make run`` and the tests.

Real photos cannot ship with the repository, so we synthesise files that exercise the same paths a
real library does: camera JPEGs with EXIF dates, offsets and GPS, an iPhone HEIC, a phone video, a
screenshot without EXIF, an exact and a near duplicate, and a corrupt file. Images are textured, not
flat colours, so they compress like camera output and give perceptual hashes something to work on.

Everything is seeded, so the bytes are the same on every run; files whose bytes are already on disk
are left untouched, which makes :func:`write_sample_library` idempotent and keeps their mtimes.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

# EXIF tag ids used below.
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_ORIENTATION = 0x0112
TAG_SOFTWARE = 0x0131
TAG_DATETIME = 0x0132
TAG_EXIF_IFD = 0x8769
TAG_GPS_IFD = 0x8825
TAG_EXIF_VERSION = 0x9000
TAG_DATETIME_ORIGINAL = 0x9003
TAG_DATETIME_DIGITIZED = 0x9004
TAG_OFFSET_TIME = 0x9010
TAG_OFFSET_TIME_ORIGINAL = 0x9011
TAG_OFFSET_TIME_DIGITIZED = 0x9012

EXIF_DATE_FORMAT = "%Y:%m:%d %H:%M:%S"


# --- building blocks ---------------------------------------------------------------------------------


def textured_image(size: tuple[int, int], seed: int) -> Image.Image:
    """A seeded RGB picture with gradients, multi-scale texture, hard-edged shapes and sensor grain.

    Random noise at several scales compresses roughly like a camera photo, which matters for the
    compression phase, and the shapes give perceptual hashes stable structure.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    top = rng.uniform(60, 230, 3).astype(np.float32)
    bottom = rng.uniform(20, 200, 3).astype(np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.empty((h, w, 3), np.float32)
    img[:] = top * (1 - t) + bottom * t
    for cells, amp in ((3, 50.0), (12, 35.0), (48, 20.0), (192, 10.0)):
        rows = max(2, cells * h // max(w, 1))
        # Mostly luminance texture with a little colour, like real scenes.
        luma = rng.integers(0, 256, (rows, cells), dtype=np.uint8)
        chroma = rng.integers(0, 256, (rows, cells, 3), dtype=np.uint8)
        luma_up = np.asarray(Image.fromarray(luma).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        chroma_up = np.asarray(Image.fromarray(chroma).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        img += (luma_up[:, :, None] - 128) * (amp / 128) + (chroma_up - 128) * (amp / 400)
    base = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(base)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1 = x0 + int(rng.integers(max(1, w // 20), max(2, w // 4)))
        y1 = y0 + int(rng.integers(max(1, h // 20), max(2, h // 4)))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=fill)
    grain = rng.standard_normal((h, w, 3), dtype=np.float32) * 5
    return Image.fromarray(np.clip(np.asarray(base, np.float32) + grain, 0, 255).astype(np.uint8))


def _dms(value: float) -> tuple[float, float, float]:
    """Decimal degrees as EXIF degrees/minutes/seconds rationals."""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return float(degrees), float(minutes), seconds


def build_exif(
    *,
    taken: datetime | None = None,
    offset: str | None = None,
    gps: tuple[float, float] | None = None,
    make: str | None = None,
    model: str | None = None,
    extra: Mapping[int, Any] | None = None,
) -> Image.Exif:
    """EXIF as a camera writes it: the same time in DateTime, Original and Digitized, plus offsets.

    ``extra`` adds or overrides raw tags (tags below 0x8000 go to IFD0, the rest to the Exif IFD),
    which is how tests fake odd cameras that fill only some of the date fields or write junk.
    """
    exif = Image.Exif()
    exif_ifd = exif.get_ifd(TAG_EXIF_IFD)
    if make:
        exif[TAG_MAKE] = make
    if model:
        exif[TAG_MODEL] = model
    if make or model or taken or gps:
        exif[TAG_ORIENTATION] = 1
        exif_ifd[TAG_EXIF_VERSION] = b"0232"
    if taken is not None:
        stamp = taken.strftime(EXIF_DATE_FORMAT)
        exif[TAG_DATETIME] = stamp
        exif_ifd[TAG_DATETIME_ORIGINAL] = stamp
        exif_ifd[TAG_DATETIME_DIGITIZED] = stamp
        if offset is not None:
            exif_ifd[TAG_OFFSET_TIME] = offset
            exif_ifd[TAG_OFFSET_TIME_ORIGINAL] = offset
            exif_ifd[TAG_OFFSET_TIME_DIGITIZED] = offset
    if gps is not None:
        lat, lon = gps
        gps_ifd = exif.get_ifd(TAG_GPS_IFD)
        gps_ifd[0] = b"\x02\x02\x00\x00"  # GPSVersionID 2.2.0.0
        gps_ifd[1] = "N" if lat >= 0 else "S"
        gps_ifd[2] = _dms(lat)
        gps_ifd[3] = "E" if lon >= 0 else "W"
        gps_ifd[4] = _dms(lon)
    for tag, value in (extra or {}).items():
        if tag < 0x8000:
            exif[tag] = value
        else:
            exif_ifd[tag] = value
    return exif


def photo_bytes(
    *,
    size: tuple[int, int] = (1600, 1200),
    seed: int = 0,
    taken: datetime | None = None,
    offset: str | None = None,
    gps: tuple[float, float] | None = None,
    quality: int = 92,
    fmt: str = "JPEG",
    make: str | None = "Google",
    model: str | None = "Pixel 7",
    extra_exif: Mapping[int, Any] | None = None,
    image: Image.Image | None = None,
    heif_thumbnail: int | None = None,
    heif_preset: str | None = None,
) -> bytes:
    """Encoded bytes of a textured photo (or of ``image``) with the given EXIF; see :func:`make_photo`.
    ``heif_thumbnail``: a HEIC also carries a thumbnail this many pixels wide, as an iPhone's does (320).
    ``heif_preset``: x265's speed preset for a HEIC ("ultrafast" encodes a 12 MP photo ~9x faster than the
    default, which takes ~36 s of CPU; what a generated corpus of thousands needs)."""
    img = image if image is not None else textured_image(size, seed)
    has_exif = any(v is not None for v in (taken, gps, make, model)) or bool(extra_exif)
    exif = build_exif(taken=taken, offset=offset, gps=gps, make=make, model=model, extra=extra_exif)
    fmt = fmt.upper()
    if fmt == "HEIC":
        fmt = "HEIF"
    params: dict[str, Any] = {}
    if fmt in ("JPEG", "HEIF", "WEBP"):
        params["quality"] = quality
    if fmt == "HEIF":
        from media_assets.media.dates import register_heif

        register_heif()
        if heif_thumbnail:
            params["thumbnails"] = [heif_thumbnail]
        if heif_preset:
            params["enc_params"] = {"preset": heif_preset}
    if has_exif:
        params["exif"] = exif.tobytes()
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def make_photo(path: Path, **options: Any) -> Path:
    """Write a textured photo with camera-like EXIF to ``path``; ``options`` are :func:`photo_bytes`'s
    (``fmt``: JPEG, PNG or HEIC).

    ``taken`` is the naive local time written to all three EXIF date fields, ``offset`` (e.g.
    ``"+09:00"``) to the matching OffsetTime fields, ``gps`` is (latitude, longitude) in degrees.
    Pass ``make=None, model=None`` and no date/GPS for a file without any EXIF.
    """
    return write_bytes_if_changed(Path(path), photo_bytes(**options))


def screenshot_bytes(*, size: tuple[int, int] = (720, 1280), seed: int = 0) -> bytes:
    """A phone-screenshot-like PNG: flat UI blocks and text lines, no EXIF (as screenshots have)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = Image.new("RGB", size, (245, 245, 247))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w, h // 25), fill=(30, 30, 30))  # status bar
    draw.rectangle((0, h // 25, w, h // 10), fill=tuple(int(c) for c in rng.integers(0, 200, 3)))
    y = h // 10 + 20
    card = 0
    while y < h - 80:
        card += 1
        card_h = int(rng.integers(100, 220))
        draw.rounded_rectangle((20, y, w - 20, y + card_h), radius=16, fill=(255, 255, 255))
        if card % 2:  # a photo in the feed, as real screenshots often show
            thumb_w = (w - 40) // 3
            thumb = textured_image((thumb_w, card_h - 40), int(rng.integers(0, 2**31)))
            img.paste(thumb, (w - 40 - thumb_w, y + 20))
        for line in range(max(1, card_h // 30 - 1)):
            length = int(rng.integers(w // 5, w // 2))
            ly = y + 20 + line * 28
            draw.rectangle((40, ly, 40 + length, ly + 12), fill=(90, 90, 100))
        y += card_h + 20
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def resized_copy_bytes(source: bytes, *, scale: float = 0.5, quality: int = 85) -> bytes:
    """A scaled, re-encoded JPEG of ``source`` keeping its EXIF: a near duplicate (other bytes)."""
    with Image.open(io.BytesIO(source)) as img:
        exif = img.getexif()
        new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        small = img.convert("RGB").resize(new_size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def corrupt_jpeg_bytes(*, seed: int = 0) -> bytes:
    """A JPEG whose headers are valid but whose image data is cut short and followed by garbage.

    Such files come from interrupted copies and must be reported, not crash a phase.
    """
    whole = photo_bytes(size=(640, 480), seed=seed, taken=None, make=None, model=None)
    rng = np.random.default_rng(seed)
    garbage = rng.integers(0, 255, 512, dtype=np.uint8).tobytes()  # 255 excluded: no stray markers
    return whole[: len(whole) // 4] + garbage


def make_video(
    path: Path,
    *,
    seconds: float = 1.0,
    size: tuple[int, int] = (320, 240),
    creation_time: datetime | None = None,
    apple_creationdate: str | None = None,
    audio: bool = True,
    ffmpeg: str | None = None,
    location: str | None = None,
) -> Path | None:
    """Write a short H.264 test video with ffmpeg; None when no ffmpeg binary is available.

    ``creation_time`` becomes the container's (UTC) creation_time; a naive value is taken as UTC.
    ``apple_creationdate`` (e.g. ``"2023-07-01T23:30:00+0900"``) is written as iPhones do, as the
    ``com.apple.quicktime.creationdate`` key. ``location`` (ISO 6709, ``"+35.6895+139.6917/"``) is the GPS position
    as Android cameras write it. Output is bit-exact, so reruns produce the same bytes.
    """
    if ffmpeg is None:
        from media_assets.media.ffmpeg_tools import ffmpeg_path

        ffmpeg = ffmpeg_path()
    if not ffmpeg:
        return None
    path = Path(path)
    container = "mov" if path.suffix.lower() == ".mov" else "mp4"
    duration = f"{seconds:g}"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate=15:duration={duration}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "64k", "-shortest"]
    cmd += ["-map_metadata", "-1", "-flags", "+bitexact", "-fflags", "+bitexact"]
    if creation_time is not None:
        if creation_time.tzinfo is not None:
            creation_time = creation_time.astimezone(timezone.utc).replace(tzinfo=None)
        cmd += ["-metadata", f"creation_time={creation_time.strftime('%Y-%m-%dT%H:%M:%S')}Z"]
    if location is not None:
        cmd += ["-metadata", f"location={location}"]
    if apple_creationdate is not None:
        cmd += ["-movflags", "use_metadata_tags"]
        cmd += ["-metadata", f"com.apple.quicktime.creationdate={apple_creationdate}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        subprocess.run([*cmd, "-f", container, str(tmp)], check=True, capture_output=True, timeout=120)
        return write_bytes_if_changed(path, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_if_changed(path: Path, data: bytes) -> Path:
    """Write atomically, skipping the write when the file already holds exactly these bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return path
    except OSError:
        pass
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


# --- the sample library -----------------------------------------------------------------------------

TOKYO = (35.658581, 139.745433)
KYOTO = (34.967146, 135.772695)
LISBON = (38.691584, -9.215977)
PARIS = (48.858370, 2.294481)

# Relative paths of what write_sample_library writes, so tests and docs can refer to them.
HOLIDAY_NIGHT = "2023/holiday/IMG_20230701_233000.jpg"
HOLIDAY_DAY = "2023/holiday/IMG_20230702_101512.jpg"
GARDEN = "2023/garden/DSC_0420.JPG"
SCREENSHOT = "2024/Screenshots/Screenshot_2024-01-05-10-20-30.png"
EXACT_DUPLICATE = "backup/old-phone/IMG_20230701_233000 (1).jpg"
NEAR_DUPLICATE = "2023/holiday/shared/IMG_20230702_101512-small.jpg"
HEIC_PHOTO = "2024/iphone/IMG_4821.HEIC"
VIDEO = "2023/holiday/VID_20230701_143000.mp4"
CORRUPT = "broken.jpg"


def write_sample_library(target: Path) -> list[Path]:
    """Write the sample library under ``target`` and return the paths written (existing ones kept).

    Contents: three camera JPEGs with EXIF date, offset, make/model and GPS; a PNG screenshot without
    EXIF; a byte-identical copy of one JPEG elsewhere; a 50% re-encoded copy of another (near
    duplicate); an iPhone-style HEIC; a 1 s MP4 with a UTC creation_time (skipped when there is no
    ffmpeg); and a truncated, corrupt JPEG.
    """
    target = Path(target)
    written: list[Path] = []

    def put(rel: str, data: bytes) -> bytes:
        written.append(write_bytes_if_changed(target / rel, data))
        return data

    night = put(
        HOLIDAY_NIGHT,
        photo_bytes(
            seed=11,
            taken=datetime(2023, 7, 1, 23, 30, 0),
            offset="+09:00",
            gps=TOKYO,
            make="Google",
            model="Pixel 7",
        ),
    )
    day = put(
        HOLIDAY_DAY,
        photo_bytes(
            size=(1200, 1600),
            seed=12,
            taken=datetime(2023, 7, 2, 10, 15, 12),
            offset="+09:00",
            gps=KYOTO,
            make="Google",
            model="Pixel 7",
        ),
    )
    put(
        GARDEN,
        photo_bytes(
            size=(1500, 1000),
            seed=13,
            taken=datetime(2023, 5, 20, 16, 45, 10),
            offset="+01:00",
            gps=LISBON,
            make="NIKON CORPORATION",
            model="NIKON D750",
        ),
    )
    put(SCREENSHOT, screenshot_bytes(seed=14))
    put(EXACT_DUPLICATE, night)
    put(NEAR_DUPLICATE, resized_copy_bytes(day, scale=0.5))
    put(
        HEIC_PHOTO,
        photo_bytes(
            size=(512, 384),
            seed=15,
            taken=datetime(2024, 3, 15, 23, 30, 0),
            offset="+02:00",
            gps=PARIS,
            quality=80,
            fmt="HEIC",
            make="Apple",
            model="iPhone 15",
        ),
    )
    try:
        video = make_video(target / VIDEO, seconds=1.0, creation_time=datetime(2023, 7, 1, 5, 30, 0))
    except (OSError, subprocess.SubprocessError) as exc:  # a broken ffmpeg should not cost the photos
        log.warning("sample video skipped: %s", exc)
        video = None
    if video is not None:
        written.append(video)
    put(CORRUPT, corrupt_jpeg_bytes(seed=16))
    return written


def camera_like_image(size: tuple[int, int], seed: int, *, grain: float = 1.0) -> Image.Image:
    """A photo as a phone camera delivers it: the textured scene rendered soft (demosaicing and noise reduction
    leave little pixel-level detail) plus a light sensor grain. Used to measure JPEG re-encoding, where
    :func:`textured_image`'s strong full-resolution grain is a worst case no camera produces."""
    w, h = size
    soft = textured_image((max(1, w // 3), max(1, h // 3)), seed).resize(size, Image.Resampling.BICUBIC)
    rng = np.random.default_rng(seed + 1)
    noisy = np.asarray(soft, np.float32) + rng.standard_normal((h, w, 1), dtype=np.float32) * grain
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def make_camera_clip(
    path: Path,
    *,
    seconds: float = 2.0,
    size: tuple[int, int] = (1920, 1080),
    rate: int = 30,
    bitrate: str = "17M",
    codec: str = "libx264",
    rotation: int | None = None,
    creation_time: str | None = "2023-07-01T05:30:00Z",
    audio: bool = True,
    tags: Mapping[str, str] | None = None,
) -> Path | None:
    """A phone-like clip: moving test pattern with temporal sensor grain, encoded at a camera's high, constant
    bit rate (phones encode in real time, so ~17 Mbit/s at 1080p30), with AAC audio, an optional display
    rotation, creation time and extra container tags (e.g. Apple's QuickTime keys). None without ffmpeg."""
    from media_assets.media.ffmpeg_tools import ffmpeg_path

    ffmpeg = ffmpeg_path()
    if not ffmpeg:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = f"{seconds:g}"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={rate}:duration={duration}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}"]
    cmd += ["-vf", "noise=alls=12:allf=t", "-c:v", codec, "-b:v", bitrate, "-preset", "ultrafast",
            "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "96k", "-shortest"]
    if creation_time:
        cmd += ["-metadata", f"creation_time={creation_time}"]
    if tags:
        cmd += ["-movflags", "use_metadata_tags"]
        for key, value in tags.items():
            cmd += ["-metadata", f"{key}={value}"]
    plain = path.with_name(f".plain-{path.name}")
    container = "mov" if path.suffix.lower() == ".mov" else "mp4"
    subprocess.run([*cmd, "-f", container, str(plain)], check=True, capture_output=True, timeout=300)
    if rotation is None:
        os.replace(plain, path)
        return path
    # The display matrix is an input option in ffmpeg 6: re-mux with it, streams copied.
    try:
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                        "-display_rotation", str(rotation), "-i", str(plain), "-c", "copy", "-map_metadata", "0",
                        *(["-movflags", "use_metadata_tags"] if tags else []), "-f", container, str(path)],
                       check=True, capture_output=True, timeout=300)
    finally:
        plain.unlink(missing_ok=True)
    return path
