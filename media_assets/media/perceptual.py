"""Perceptual fingerprints from reduced decodes: a 64-bit pHash to find candidates, a small detail signature to
confirm them, and Apple's pairing identifiers.

Full decodes are what make naive near-duplicate detection slow (a 12 MP JPEG takes ~80 ms, a HEIC ~1 s), so
nothing here decodes a full image: JPEG is scaled in the DCT domain (`Image.draft`), HEIC gives its embedded
thumbnail (pillow-heif's `draft`), other images are reduced as they load where the decoder can, and videos give
small frames through ffmpeg.

Why a second check: a pHash radius alone cannot tell a resized copy from the next frame of a burst or another
shot of the same scene (their pHashes are as close as a copy's). The signature is the image's fine detail
(grayscale at 64x48, minus its own blur, normalised): a copy keeps it (correlation >= 0.99 after resizing to
25 %, re-encoding at q70 or going through a 320 px HEIC thumbnail) while a shift of half a percent of the
frame already drops it to ~0.9. Images with too little detail to tell (flat scenes) are never confirmed:
for them only exact duplicates are found.
"""

from __future__ import annotations

import functools
import io
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageFilter, ImageOps

from media_assets.media.ffmpeg_tools import ProbeError, ffmpeg_path, probe

SIGNATURE_SIZE = (64, 48)
_SIGNATURE_PIXELS = SIGNATURE_SIZE[0] * SIGNATURE_SIZE[1]
#: Decode at least this big before reducing, so the signature is never taken from an upscaled image.
_DECODE_AT_LEAST = (SIGNATURE_SIZE[0] * 4, SIGNATURE_SIZE[1] * 4)
#: int8 units per standard deviation in a stored signature.
_SIGNATURE_SCALE = 32
#: Below this detail (std of the high-pass image, grey levels) a picture is too flat to confirm anything: two
#: shots of one flat scene differ only in grain that every reduced copy loses (measured: flat scenes 4.4-4.8,
#: textured photos 11-14 and their copies alike; at 2.0, 12 MP shots of one flat scene were merged).
MIN_DETAIL = 6.0
#: Correlation of two signatures above which two pictures are the same picture.
CONFIRM_CORRELATION = 0.96
#: Frames a video is fingerprinted by, as fractions of its duration.
VIDEO_FRAMES = (0.25, 0.5)
FFMPEG_TIMEOUT_S = 60.0

APPLE_MAKERNOTE = b"Apple iOS\x00"
_APPLE_BURST_UUID = 0x000B
_APPLE_CONTENT_IDENTIFIER = 0x0011
_EXIF_IFD = 0x8769
_MAKERNOTE = 0x927C
_QUICKTIME_CONTENT_ID = "com.apple.quicktime.content.identifier"


@dataclass(frozen=True)
class Fingerprint:
    """What deduplication needs to know about one file, computed in a worker process."""

    phash: int | None = None  # signed 64-bit, as stored in the catalog's bigint
    similarity: bytes | None = None  # see encode_signature
    content_identifier: str | None = None
    burst_id: str | None = None
    metadata_tags: int = 0  # how much EXIF the file carries: the "richest metadata" tie-break
    error: str | None = None  # why no pHash could be taken (the file still takes part in exact dedup)


def to_signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def phash64(image: Image.Image) -> int:
    """imagehash's 64-bit pHash as a signed integer (bit order: imagehash's flattened 8x8 array)."""
    bits = imagehash.phash(image).hash.flatten()
    return to_signed(int("".join("1" if b else "0" for b in bits), 2))


@functools.cache
def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=True)


def reduced_image(path: Path) -> Image.Image:
    """The picture at a small size, decoded as cheaply as its format allows, upright (EXIF orientation)."""
    _register_heif()
    with Image.open(path) as img:
        target = _DECODE_AT_LEAST if img.width >= img.height else _DECODE_AT_LEAST[::-1]
        # JPEG: DCT scaling by up to 1/8; HEIF: the smallest embedded thumbnail at least this big.
        img.draft("RGB", target)
        img.load()
        if min(img.size) > 2 * max(target):
            img.thumbnail((2 * max(target), 2 * max(target)), Image.Resampling.BOX, reducing_gap=None)
        return ImageOps.exif_transpose(img.convert("RGB"))


def detail_signature(image: Image.Image) -> tuple[np.ndarray, float]:
    """The high-pass grayscale picture at SIGNATURE_SIZE, normalised, and its detail level (grey levels)."""
    small = image.convert("L").resize(SIGNATURE_SIZE, Image.Resampling.BOX)
    pixels = np.asarray(small, np.float32)
    high = pixels - np.asarray(small.filter(ImageFilter.BoxBlur(2)), np.float32)
    detail = float(high.std())
    return (high - high.mean()) / (detail + 1e-6), detail


def encode_signature(frames: list[tuple[np.ndarray, float]]) -> bytes:
    """Per frame: detail (float32, big-endian) then the normalised pixels as int8; ~3 KB for a photo."""
    out = bytearray()
    for values, detail in frames:
        out += struct.pack(">f", detail)
        out += np.clip(np.rint(values * _SIGNATURE_SCALE), -127, 127).astype(np.int8).tobytes()
    return bytes(out)


def decode_signature(data: bytes) -> list[tuple[np.ndarray, float]]:
    frame = 4 + _SIGNATURE_PIXELS
    if not data or len(data) % frame:
        raise ValueError("not a detail signature")
    frames = []
    for start in range(0, len(data), frame):
        (detail,) = struct.unpack(">f", data[start:start + 4])
        values = np.frombuffer(data, np.int8, _SIGNATURE_PIXELS, start + 4).astype(np.float32) / _SIGNATURE_SCALE
        frames.append(((values - values.mean()) / (values.std() + 1e-6), detail))
    return frames


def signature_correlation(a: bytes, b: bytes) -> float | None:
    """The lowest per-frame correlation of two signatures; None when they cannot be compared (a flat frame,
    a different number of frames): "cannot tell" must never count as "the same"."""
    first, second = decode_signature(a), decode_signature(b)
    if len(first) != len(second):
        return None
    lowest = 1.0
    for (x, detail_x), (y, detail_y) in zip(first, second, strict=True):
        if min(detail_x, detail_y) < MIN_DETAIL:
            return None
        lowest = min(lowest, float(np.mean(x * y)))
    return lowest


def same_picture(a: bytes | None, b: bytes | None) -> bool:
    """The confirmation step: both signatures present, detailed enough, and all frames correlated."""
    if a is None or b is None:
        return False
    correlation = signature_correlation(a, b)
    return correlation is not None and correlation >= CONFIRM_CORRELATION


# --- files ----------------------------------------------------------------------------------------------


def photo_fingerprint(path: Path) -> Fingerprint:
    """pHash, signature and Apple identifiers of a photo; errors become `Fingerprint.error`."""
    try:
        image = reduced_image(path)
        content_identifier, burst_id, tags = _photo_metadata(path)
    except Exception as error:  # any decoder failure: this file simply gets no near-duplicate check
        return Fingerprint(error=f"{type(error).__name__}: {error}")
    return Fingerprint(phash=phash64(image), similarity=encode_signature([detail_signature(image)]),
                       content_identifier=content_identifier, burst_id=burst_id, metadata_tags=tags)


def video_fingerprint(path: Path) -> Fingerprint:
    """pHash of the middle frame and signatures of VIDEO_FRAMES, plus Apple's content identifier."""
    try:
        info = probe(path)
        duration = float((info.get("format") or {}).get("duration") or 0)
        frames = [video_frame(path, duration * share) for share in VIDEO_FRAMES]
    except (ProbeError, OSError, ValueError, subprocess.SubprocessError) as error:
        return Fingerprint(error=f"{type(error).__name__}: {error}")
    tags = (info.get("format") or {}).get("tags") or {}
    return Fingerprint(phash=phash64(frames[-1]), similarity=encode_signature([detail_signature(f) for f in frames]),
                       content_identifier=tags.get(_QUICKTIME_CONTENT_ID), metadata_tags=len(tags))


def video_frame(path: Path, seconds: float) -> Image.Image:
    """One frame, scaled down by ffmpeg itself, read from a pipe (no temporary files)."""
    exe = ffmpeg_path()
    if exe is None:
        raise OSError("ffmpeg not available")
    width = 2 * _DECODE_AT_LEAST[0]
    result = subprocess.run(
        [exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-ss", f"{seconds:.3f}", "-i", str(path),
         "-frames:v", "1", "-vf", f"scale={width}:-2", "-f", "image2pipe", "-vcodec", "ppm", "-"],
        capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=True)
    if not result.stdout:
        raise ValueError(f"no frame at {seconds:.1f} s")
    with Image.open(io.BytesIO(result.stdout)) as frame:
        return frame.convert("RGB")


def fingerprint(path: Path, media_type: str | None) -> Fingerprint:
    if media_type == "video":
        return video_fingerprint(path)
    return photo_fingerprint(path)


def _photo_metadata(path: Path) -> tuple[str | None, str | None, int]:
    """(ContentIdentifier, BurstUUID, number of EXIF tags) from the EXIF of a photo."""
    with Image.open(path) as img:
        exif = img.getexif()
        exif_ifd = exif.get_ifd(_EXIF_IFD)
        note = exif_ifd.get(_MAKERNOTE)
        tags = len(exif) + len(exif_ifd) + len(exif.get_ifd(0x8825))
    apple = apple_makernote(note) if isinstance(note, bytes) else {}
    return apple.get(_APPLE_CONTENT_IDENTIFIER), apple.get(_APPLE_BURST_UUID), tags


def apple_makernote(note: bytes) -> dict[int, str]:
    """The text entries of an Apple MakerNote ("Apple iOS" header, big-endian IFD whose offsets count from
    the start of the note). Anything malformed gives an empty dict: these keys only ever prevent merges."""
    if not note.startswith(APPLE_MAKERNOTE) or note[12:14] != b"MM":
        return {}
    entries: dict[int, str] = {}
    try:
        (count,) = struct.unpack_from(">H", note, 14)
        for i in range(min(count, 256)):
            tag, kind, length, value = struct.unpack_from(">HHI4s", note, 16 + 12 * i)
            if kind != 2:  # ASCII
                continue
            raw = value[:length] if length <= 4 else note[(offset := struct.unpack(">I", value)[0]):offset + length]
            text = raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()
            if text:
                entries[tag] = text
    except struct.error:
        return entries
    return entries
