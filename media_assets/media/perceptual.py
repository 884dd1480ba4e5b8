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
for them only exact duplicates are found. An animation or a multi-page scan is signed by several of its frames
(a video by two), since two of them may open on the same frame and differ after it. The signature also records
each frame's colourfulness: a black-and-white edit has its original's detail, but is not the same picture; and a
video's number of audio streams: footage with sound and the same footage without it are two files to keep.

Even the reduced decode of a 12 MP JPEG costs ~35 ms: libjpeg must still entropy-decode every coefficient. Camera
and phone JPEGs carry a ~160x120 EXIF thumbnail that decodes in well under a millisecond, and its pHash is 0-2
bits from the reduced decode's (measured on the benchmark corpus), so such a file's pHash is taken from it and
its signature is left to be computed from the real pixels only when the pHash finds a candidate (rare). A
thumbnail can be stale (an editor that crops but keeps the old EXIF): it then only costs a missed candidate,
never a false duplicate, because the confirmation always compares signatures of the real pixels.
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
from PIL import ExifTags, Image, ImageFilter, ImageOps

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
#: Colourfulness (see `colourfulness`) of a black-and-white picture at most (a greyscale JPEG: ~0.5), and of a
#: picture in colour at least; between the two nothing is judged, so a pale photo still meets its copies.
BLACK_AND_WHITE_AT_MOST = 3.0
COLOUR_AT_LEAST = 10.0
_COLOUR_TAG = b"COLR"
_AUDIO_TAG = b"AUDI"
#: Frames a video is fingerprinted by, as fractions of its duration.
VIDEO_FRAMES = (0.25, 0.5)
FFMPEG_TIMEOUT_S = 60.0

APPLE_MAKERNOTE = b"Apple iOS\x00"
_APPLE_BURST_UUID = 0x000B
_APPLE_CONTENT_IDENTIFIER = 0x0011
_EXIF_IFD = 0x8769
_MAKERNOTE = 0x927C
_QUICKTIME_CONTENT_ID = "com.apple.quicktime.content.identifier"
_GPS_IFD = 0x8825
_ORIENTATION = 0x0112
_THUMBNAIL_OFFSET, _THUMBNAIL_LENGTH = 0x0201, 0x0202  # JPEGInterchangeFormat(Length), from the TIFF header
#: An EXIF thumbnail smaller than this (short side) is too coarse for a pHash; the picture is decoded instead.
THUMBNAIL_MIN_SIDE = 64
#: A thumbnail whose aspect ratio differs more than this from the picture's is letterboxed or stale: not used.
THUMBNAIL_ASPECT_TOLERANCE = 0.03


@dataclass(frozen=True)
class Fingerprint:
    """What deduplication needs to know about one file, computed in a worker process."""

    phash: int | None = None  # signed 64-bit, as stored in the catalog's bigint
    #: See encode_signature. None beside a pHash: taken from the EXIF thumbnail, the signature is computed from
    #: the real pixels (pixel_signature) only if a candidate needs confirming.
    similarity: bytes | None = None
    content_identifier: str | None = None
    burst_id: str | None = None
    metadata_tags: int = 0  # how much EXIF the file carries: the "richest metadata" tie-break
    #: What the file holds beyond its picture (a Motion Photo's video, MPF gain/depth maps, HEIC auxiliary
    #: images), in words; such a file is the keeper over a plain copy of the same picture.
    extras: str | None = None
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


#: Formats whose `draft` hands over an embedded thumbnail (made by the camera) instead of the real pixels.
THUMBNAIL_DRAFT_FORMATS = frozenset({"HEIF", "AVIF"})


#: Formats whose further frames are more pictures (an animation's frames, a scan's pages), not another view of
#: the first one (an MPO's gain or depth map, a HEIC's auxiliary images).
FRAMES_FORMATS = frozenset({"GIF", "PNG", "WEBP", "TIFF"})
#: Frames of an animation or pages of a multi-page file a signature covers, evenly spread, first and last
#: included: two GIFs or scans that open on the same frame are different files when what follows differs.
IMAGE_FRAMES = 8


def reduced_frames(path: Path, *, real_pixels: bool = False) -> list[Image.Image]:
    """The picture at a small size, decoded as cheaply as its format allows, upright (EXIF orientation); for an
    animation or a multi-page file, up to IMAGE_FRAMES of its frames. `real_pixels` never takes an embedded
    thumbnail (which may be stale), at the cost of a full HEIC decode."""
    _register_heif()
    with Image.open(path) as img:
        return frames_of(img, real_pixels=real_pixels)


def frames_of(img: Image.Image, *, real_pixels: bool = False) -> list[Image.Image]:
    """`reduced_frames` of an open picture. Its pixels may be loaded already (a PNG loads them to find an EXIF
    chunk stored after them): they are then reduced, not decoded again."""
    count = getattr(img, "n_frames", 1) if img.format in FRAMES_FORMATS else 1
    if count == 1:
        target = _DECODE_AT_LEAST if img.width >= img.height else _DECODE_AT_LEAST[::-1]
        # JPEG: DCT scaling by up to 1/8 (real pixels); HEIF: the smallest embedded thumbnail this big.
        if not (real_pixels and img.format in THUMBNAIL_DRAFT_FORMATS):
            img.draft("RGB", target)
        img.load()
        return [_reduced(img)]
    frames = []
    for index in sorted({round(k * (count - 1) / (IMAGE_FRAMES - 1)) for k in range(IMAGE_FRAMES)}):
        img.seek(index)
        frames.append(_reduced(img.copy()))
    return frames


def _reduced(img: Image.Image) -> Image.Image:
    """A loaded picture (reduced in place) at no more than twice the signature's decode size, upright, RGB."""
    target = _DECODE_AT_LEAST if img.width >= img.height else _DECODE_AT_LEAST[::-1]
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


def colourfulness(image: Image.Image) -> float:
    """Hasler and Suesstrunk's colourfulness of an RGB picture: 0 for grey, ~15-100 for photos in colour."""
    rgb = np.asarray(image.convert("RGB").resize(SIGNATURE_SIZE, Image.Resampling.BOX), np.float32)
    red_green = rgb[..., 0] - rgb[..., 1]
    yellow_blue = (rgb[..., 0] + rgb[..., 1]) / 2 - rgb[..., 2]
    spread = float(np.hypot(red_green.std(), yellow_blue.std()))
    return spread + 0.3 * float(np.hypot(red_green.mean(), yellow_blue.mean()))


def signature(frames: list[Image.Image], audio_streams: int | None = None) -> bytes:
    """The detail signature of a picture's frames (one for a photo), with each frame's colourfulness and, for a
    video, its number of audio streams."""
    return encode_signature([detail_signature(frame) for frame in frames], [colourfulness(f) for f in frames],
                            audio_streams)


def encode_signature(frames: list[tuple[np.ndarray, float]], colours: list[float] | None = None,
                     audio_streams: int | None = None) -> bytes:
    """Per frame: detail (float32, big-endian) then the normalised pixels as int8 (~3 KB for a photo); then
    COLR and each frame's colourfulness (float32); then, for a video, AUDI and its audio streams (uint32).
    Signatures stored before either was added lack it."""
    out = bytearray()
    for values, detail in frames:
        out += struct.pack(">f", detail)
        out += np.clip(np.rint(values * _SIGNATURE_SCALE), -127, 127).astype(np.int8).tobytes()
    if colours:
        out += _COLOUR_TAG + struct.pack(f">{len(colours)}f", *colours)
    if audio_streams is not None:
        out += _AUDIO_TAG + struct.pack(">I", audio_streams)
    return bytes(out)


@dataclass(frozen=True)
class _Trailer:
    """What a signature records besides its frames' detail."""

    colours: list[float]  # per frame; none in a signature stored before colour was recorded
    audio_streams: int | None  # a video's; None for a photo, or a signature stored before audio was recorded


def _split(data: bytes) -> tuple[bytes, _Trailer]:
    """A signature's frames, and its trailer (COLR, then AUDI; either may be missing)."""
    frame = 4 + _SIGNATURE_PIXELS
    size = len(data) % frame
    frames, trailer = data[:len(data) - size], data[len(data) - size:]
    colours: list[float] = []
    audio_streams: int | None = None
    count = len(frames) // frame
    end = len(_COLOUR_TAG) + 4 * count  # one float32 per frame
    if trailer.startswith(_COLOUR_TAG) and len(trailer) >= end:
        colours = list(struct.unpack(f">{count}f", trailer[len(_COLOUR_TAG):end]))
        trailer = trailer[end:]
    if trailer.startswith(_AUDIO_TAG) and len(trailer) == len(_AUDIO_TAG) + 4:
        (audio_streams,) = struct.unpack(">I", trailer[len(_AUDIO_TAG):])
        trailer = b""
    if trailer:
        return data, _Trailer([], None)  # not a trailer this module writes: decode_signature rejects it
    return frames, _Trailer(colours, audio_streams)


def decode_signature(data: bytes) -> list[tuple[np.ndarray, float]]:
    data, _trailer = _split(data)
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


def black_and_white_against_colour(a: bytes, b: bytes) -> bool:
    """Whether a frame of one signature is black and white where the other's is in colour: a black-and-white
    edit keeps every detail of its original, but it is another picture. Unknown colour never differs."""
    for one, other in zip(_split(a)[1].colours, _split(b)[1].colours, strict=False):
        low, high = sorted((one, other))
        if low <= BLACK_AND_WHITE_AT_MOST and high >= COLOUR_AT_LEAST:
            return True
    return False


def different_sound(a: bytes, b: bytes) -> bool:
    """Whether two videos' signatures record different numbers of audio streams: the same footage with sound
    (or with more tracks) holds more than without. Unknown (a signature stored before it was recorded) never
    differs."""
    one, other = _split(a)[1].audio_streams, _split(b)[1].audio_streams
    return one is not None and other is not None and one != other


def same_picture(a: bytes | None, b: bytes | None) -> bool:
    """The confirmation step: both signatures present, detailed enough, all frames correlated, not one in
    black and white beside one in colour, and not two videos with different audio streams."""
    if a is None or b is None:
        return False
    correlation = signature_correlation(a, b)
    return (correlation is not None and correlation >= CONFIRM_CORRELATION
            and not black_and_white_against_colour(a, b) and not different_sound(a, b))


# --- files ----------------------------------------------------------------------------------------------


def photo_fingerprint(path: Path) -> Fingerprint:
    """pHash (from the EXIF thumbnail when there is a usable one, else with the signature from a reduced
    decode) and Apple identifiers of a photo; errors become `Fingerprint.error`."""
    try:
        _register_heif()
        with Image.open(path) as img:
            content_identifier, burst_id, tags = _photo_metadata(img)
            thumbnail = exif_thumbnail(img)
            image_format = img.format
            extras = beyond_the_picture(path, img)
            if thumbnail is not None:
                return Fingerprint(phash=phash64(thumbnail), content_identifier=content_identifier,
                                   burst_id=burst_id, metadata_tags=tags, extras=extras)
            # The same open picture: reading a PNG's EXIF decoded its pixels already (Pillow looks for an eXIf
            # chunk after the image data), and opening the file again decoded them twice.
            frames = frames_of(img)
    except Exception as error:  # any decoder failure: this file simply gets no near-duplicate check
        return Fingerprint(error=f"{type(error).__name__}: {error}")
    if image_format in THUMBNAIL_DRAFT_FORMATS:  # the pHash came from an embedded thumbnail: sign real pixels later
        return Fingerprint(phash=phash64(frames[0]), content_identifier=content_identifier, burst_id=burst_id,
                           metadata_tags=tags, extras=extras)
    return Fingerprint(phash=phash64(frames[0]), similarity=signature(frames),
                       content_identifier=content_identifier, burst_id=burst_id, metadata_tags=tags, extras=extras)


def beyond_the_picture(path: Path, img: Image.Image) -> str | None:
    """What a photo holds besides its picture, in words, or None: data after a JPEG's end marker (a Motion
    Photo's MP4, MPF gain or depth maps), or a HEIC's depth and auxiliary images (HDR gain maps)."""
    if img.format in ("JPEG", "MPO"):
        if img.format == "MPO" or "mp" in img.info:
            return "MPF images (gain map, depth map or second view)"
        with Path(path).open("rb") as stream:  # the common case, ending at its end marker, reads 64 bytes
            stream.seek(max(0, stream.seek(0, 2) - 64))
            if stream.read().rstrip(b"\x00").endswith(b"\xff\xd9"):
                return None
        from media_assets.media.photo_compression import jpeg_layout

        try:
            trailing = jpeg_layout(Path(path).read_bytes()).trailing
        except ValueError:
            return "segments that cannot all be walked (kept whole, in doubt)"
        return f"{trailing:,} bytes after the picture (a Motion Photo's video)" if trailing else None
    if img.format in THUMBNAIL_DRAFT_FORMATS:
        auxiliary = [*img.info.get("aux", {})] + ["depth map"] * len(img.info.get("depth_images") or [])
        return f"auxiliary images ({', '.join(auxiliary)})" if auxiliary else None
    return None


def pixel_signature(path: Path) -> bytes | None:
    """The detail signature of a photo's real pixels (never its EXIF thumbnail's), for confirming a candidate
    whose pHash came from that thumbnail; None when it cannot be decoded (then it is never confirmed)."""
    try:
        return signature(reduced_frames(path, real_pixels=True))
    except Exception:  # any decoder failure: "cannot tell" is never "the same"
        return None


def exif_thumbnail(img: Image.Image) -> Image.Image | None:
    """The upright JPEG thumbnail of the EXIF (IFD1) of an open JPEG, if it is big enough and framed like the
    picture itself; None otherwise (no EXIF, no thumbnail, letterboxed, undecodable)."""
    raw = img.info.get("exif") if img.format in ("JPEG", "MPO") else None
    if not raw:
        return None
    exif = img.getexif()
    ifd1 = exif.get_ifd(ExifTags.IFD.IFD1)
    offset, length = ifd1.get(_THUMBNAIL_OFFSET), ifd1.get(_THUMBNAIL_LENGTH)
    tiff = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw  # the offsets count from the TIFF header
    if not isinstance(offset, int) or not isinstance(length, int) or not 0 < offset < offset + length <= len(tiff):
        return None
    try:
        with Image.open(io.BytesIO(tiff[offset:offset + length])) as thumb:
            if thumb.format != "JPEG":
                return None
            thumb.load()
            small = thumb.convert("RGB")
    except Exception:  # a broken thumbnail: the picture is decoded instead
        return None
    (w, h), (tw, th) = img.size, small.size
    if min(tw, th) < THUMBNAIL_MIN_SIDE or abs(w * th - tw * h) > THUMBNAIL_ASPECT_TOLERANCE * max(w * th, tw * h):
        return None
    # The thumbnail is stored like the picture, unrotated: give it the picture's orientation, then turn it.
    small.getexif()[_ORIENTATION] = exif.get(_ORIENTATION, 1)
    return ImageOps.exif_transpose(small)


def video_fingerprint(path: Path) -> Fingerprint:
    """pHash of the middle frame and signatures of VIDEO_FRAMES with the number of audio streams (from the same
    ffprobe call), plus Apple's content identifier."""
    try:
        info = probe(path)
        duration = float((info.get("format") or {}).get("duration") or 0)
        frames = [video_frame(path, duration * share) for share in VIDEO_FRAMES]
    except (ProbeError, OSError, ValueError, subprocess.SubprocessError) as error:
        return Fingerprint(error=f"{type(error).__name__}: {error}")
    tags = (info.get("format") or {}).get("tags") or {}
    audio_streams = sum(1 for stream in info.get("streams") or [] if stream.get("codec_type") == "audio")
    return Fingerprint(phash=phash64(frames[-1]), similarity=signature(frames, audio_streams),
                       content_identifier=tags.get(_QUICKTIME_CONTENT_ID), metadata_tags=len(tags))


def video_frame(path: Path, seconds: float) -> Image.Image:
    """One frame, scaled down by ffmpeg itself, read from a pipe (no temporary files). One decoding thread:
    the pool already runs a worker per core, and the decoder's frame threads held a frame and a context each
    (ffmpeg took 46 MB for a 720p clip, 61 MB at 1080p; 35 and 43 with one thread, and no slower for one frame):
    two of them side by side were the deduplication's peak."""
    exe = ffmpeg_path()
    if exe is None:
        raise OSError("ffmpeg not available")
    width = 2 * _DECODE_AT_LEAST[0]
    result = subprocess.run(
        [exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-threads", "1", "-ss", f"{seconds:.3f}",
         "-i", str(path),
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


def _photo_metadata(img: Image.Image) -> tuple[str | None, str | None, int]:
    """(ContentIdentifier, BurstUUID, number of EXIF tags) from the EXIF of an open photo."""
    exif = img.getexif()
    exif_ifd = exif.get_ifd(_EXIF_IFD)
    note = exif_ifd.get(_MAKERNOTE)
    tags = len(exif) + len(exif_ifd) + len(exif.get_ifd(_GPS_IFD))
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
