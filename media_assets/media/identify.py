"""Is this file a photo or a video we can handle, and which format is it really?

Decided by content (magic bytes), never by extension: phones and chat apps routinely save PNGs as .jpg or
HEICs as .jpeg, and a renamed text file must not slip through. Every image is decoded once (cheaply) and
every video is probed, so damaged files are caught here, with a sentence a human can act on, instead of
crashing a later phase.
"""

from __future__ import annotations

import functools
import io
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO

from PIL import Image, ImageFile

from media_assets.media.bmff import iter_boxes
from media_assets.media.ffmpeg_tools import ProbeError, ProbeUnavailable, ffprobe_path, probe

DEFAULT_MAX_PIXELS = 200_000_000
# Above this many pixels a PNG is checked structurally (every chunk's CRC, up to IEND) instead of being
# decoded, so one huge panorama cannot take gigabytes of memory.
FULL_DECODE_PIXELS = 64_000_000
_HEAD_BYTES = 4096


class MediaKind(str, Enum):
    PHOTO = "photo"
    VIDEO = "video"


@dataclass(frozen=True)
class Identified:
    """What a file really is. Sizes are as the decoder / ffprobe reports them: EXIF orientation and video
    rotation metadata are not applied, so a portrait phone video may read as 1920x1080."""

    kind: MediaKind
    format: str  # lower-case: jpeg, heic, png, dng, mp4, mov, ...
    mime: str
    width: int | None  # None for RAW photos, which are accepted without decoding
    height: int | None
    note: str | None = None  # a defect that was accepted (a JPEG missing only its end marker)


class UnsupportedMedia(Exception):
    """The file is not a photo or video we can handle; `.reason` is one sentence for a human."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Sniffed:
    kind: MediaKind
    format: str
    mime: str
    decoder: str | None = None  # Pillow plugin for photos; None = accept without decoding (RAW)


def identify(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Identified:
    """Identify `path` by content and check it decodes (photos) or probes (videos).

    Raises UnsupportedMedia for anything we would not want in the library (with the reason), and lets
    OSError through when the file itself cannot be read (missing, permissions): that is a storage problem
    to retry, not bad media.
    """
    if max_pixels <= 0:
        raise ValueError("max_pixels must be positive")
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise UnsupportedMedia("empty file (0 bytes)")
    with path.open("rb") as stream:
        head = stream.read(_HEAD_BYTES)
        sniffed = _sniff(head, path, stream)
    if sniffed.kind is MediaKind.VIDEO:
        return _check_video(path, sniffed)
    if sniffed.decoder is None:
        return Identified(MediaKind.PHOTO, sniffed.format, sniffed.mime, None, None)
    return _check_image(path, sniffed, max_pixels)


#: Files that describe a photo beside them (Apple's edits, an editor's XMP, Google Takeout's JSON).
SIDECAR_EXTENSIONS = frozenset({".aae", ".xmp", ".json"})

#: File extensions that fit each format; the first is the one a misnamed file is given.
_EXTENSIONS = {
    "jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"), "heic": (".heic", ".heif", ".hif"), "heif": (".heif", ".heic", ".hif"),
    "avif": (".avif",), "png": (".png",), "gif": (".gif",), "webp": (".webp",), "tiff": (".tif", ".tiff"),
    "bmp": (".bmp", ".dib"), "dng": (".dng",),
    # One ISO-BMFF family: phones name the same kind of movie .mp4, .mov or .3gp, and players take any of them.
    "mp4": (".mp4", ".m4v", ".mov", ".3gp", ".3g2"), "mov": (".mov", ".qt", ".mp4", ".m4v"),
    "m4v": (".m4v", ".mp4", ".mov"), "3gp": (".3gp", ".mp4", ".3g2"), "3g2": (".3g2", ".3gp", ".mp4"),
    "mts": (".mts", ".m2ts", ".ts"), "m2ts": (".m2ts", ".mts", ".ts"), "mkv": (".mkv",), "webm": (".webm", ".mkv"),
    "avi": (".avi",), "mpg": (".mpg", ".mpeg", ".mpe", ".vob"), "flv": (".flv",), "wmv": (".wmv", ".asf"),
}


def true_extension(name: str, media_format: str) -> str | None:
    """The extension a file named `name` holding `media_format` bytes should have, when its own does not fit
    (HEIC bytes named .JPG); None when it fits or the format has no fixed extension (RAW, named by extension)."""
    fitting = _EXTENSIONS.get(media_format)
    if not fitting:
        return None
    dot = name.rfind(".")
    return None if dot > 0 and name[dot:].lower() in fitting else fitting[0]


def content_format(path: Path) -> str | None:
    """The format of `path`'s bytes (jpeg, heic, mp4, ...) from its first bytes alone, without decoding or
    probing; None when they are no media we know."""
    with Path(path).open("rb") as stream:
        try:
            return sniff_stream(stream, Path(path).name)[1]
        except UnsupportedMedia:
            return None


def sniff_stream(stream: IO[bytes], name: str) -> tuple[MediaKind, str]:
    """(kind, format) from a stream's first bytes alone, so a file that is no photo or video is refused
    before it is copied (UnsupportedMedia). `name` only tells TIFF-based RAW flavours apart. The stream must
    be seekable; it is left at its start."""
    try:
        sniffed = _sniff(stream.read(_HEAD_BYTES), Path(name), stream)
    finally:
        stream.seek(0)
    return sniffed.kind, sniffed.format


# --- sniffing -------------------------------------------------------------------------------------------

# ISO-BMFF brands (the `ftyp` box) that mean a still image (HEIF family) rather than a movie.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = _HEIC_BRANDS | _AVIF_BRANDS | {b"mif1", b"msf1", b"mif2"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
# Top-level atoms an old QuickTime file (without `ftyp`) may start with.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}

_RAW_MIME = {
    "dng": "image/x-adobe-dng",
    "cr2": "image/x-canon-cr2",
    "cr3": "image/x-canon-cr3",
    "nef": "image/x-nikon-nef",
    "nrw": "image/x-nikon-nrw",
    "arw": "image/x-sony-arw",
    "srf": "image/x-sony-srf",
    "sr2": "image/x-sony-sr2",
    "orf": "image/x-olympus-orf",
    "rw2": "image/x-panasonic-rw2",
    "rwl": "image/x-leica-rwl",
    "raf": "image/x-fuji-raf",
    "pef": "image/x-pentax-pef",
    "srw": "image/x-samsung-srw",
    "x3f": "image/x-sigma-x3f",
    "3fr": "image/x-hasselblad-3fr",
    "iiq": "image/x-phaseone-iiq",
    "erf": "image/x-epson-erf",
    "kdc": "image/x-kodak-kdc",
    "dcr": "image/x-kodak-dcr",
    "mrw": "image/x-minolta-mrw",
    "mef": "image/x-mamiya-mef",
    "mos": "image/x-leaf-mos",
    "raw": "image/x-panasonic-raw",
}
# RAWs that are plain TIFF containers: recognised by TIFF magic plus the extension.
_TIFF_RAW_EXTENSIONS = set(_RAW_MIME) - {"cr3", "x3f", "mrw", "raf"}
_DNG_VERSION_TAG = 50706

_VIDEO_MIME = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "m4v": "video/x-m4v",
    "3gp": "video/3gpp",
    "3g2": "video/3gpp2",
    "avi": "video/x-msvideo",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "mts": "video/mp2t",
    "m2ts": "video/mp2t",
    "mpg": "video/mpeg",
    "flv": "video/x-flv",
    "wmv": "video/x-ms-wmv",
}
#: Every format name identification gives (`Identified.media_format`): what ICLOUD_UPLOAD_FORMATS may name.
MEDIA_FORMATS = frozenset(_EXTENSIONS) | frozenset(_RAW_MIME) | frozenset(_VIDEO_MIME)
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def _photo(fmt: str, mime: str, decoder: str) -> _Sniffed:
    return _Sniffed(MediaKind.PHOTO, fmt, mime, decoder)


def _raw(fmt: str) -> _Sniffed:
    return _Sniffed(MediaKind.PHOTO, fmt, _RAW_MIME.get(fmt, "image/x-raw"))


def _video(fmt: str) -> _Sniffed:
    return _Sniffed(MediaKind.VIDEO, fmt, _VIDEO_MIME[fmt])


def _sniff(head: bytes, path: Path, stream: IO[bytes]) -> _Sniffed:
    """Classify by magic bytes; the extension only names RAW flavours that are plain TIFF inside."""
    ext = path.suffix.lower().lstrip(".")
    if head.startswith(b"\xff\xd8\xff"):
        return _photo("jpeg", "image/jpeg", "JPEG")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _photo("png", "image/png", "PNG")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _photo("gif", "image/gif", "GIF")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _photo("webp", "image/webp", "WEBP")
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX"):
        return _video("avi")
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return _raw("raf")
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return _raw("orf")
    if head.startswith(b"IIU\x00"):
        return _raw("rw2")
    if head.startswith(b"FOVb"):
        return _raw("x3f")
    if head.startswith(b"\x00MRM"):
        return _raw("mrw")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        if head[8:10] == b"CR" and head[:2] == b"II":
            return _raw("cr2")
        if ext in _TIFF_RAW_EXTENSIONS:
            return _raw(ext)
        if _tiff_has_tag(stream, head, _DNG_VERSION_TAG):
            return _raw("dng")
        return _photo("tiff", "image/tiff", "TIFF")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return _video("webm" if b"webm" in head[:64] else "mkv")
    if head.startswith(b"FLV\x01"):
        return _video("flv")
    if head.startswith(_ASF_GUID):
        return _video("wmv")
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return _video("mpg")
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return _video("mts")
    if len(head) > 388 and head[4] == head[196] == head[388] == 0x47:
        return _video("m2ts")
    if _is_quicktime_without_ftyp(head):
        return _video("mov")
    if head.startswith(b"BM") and len(head) >= 18 and struct.unpack("<I", head[14:18])[0] in _BMP_HEADERS:
        return _photo("bmp", "image/bmp", "BMP")
    unsupported = _unsupported_format(head, ext)
    if unsupported:
        raise UnsupportedMedia(f"unsupported image format: {unsupported}")
    if f".{ext}" in SIDECAR_EXTENSIONS:
        raise UnsupportedMedia(f"not a photo or video: a sidecar (.{ext}) whose photo is not beside it")
    raise UnsupportedMedia(f"not a photo or video: {_describe_other(head)}")


_BMP_HEADERS = {12, 16, 40, 52, 56, 64, 108, 124}


def _is_quicktime_without_ftyp(head: bytes) -> bool:
    """Old cameras wrote .mov files that start straight with an atom; 0/1 are valid "special" box sizes."""
    if len(head) < 8 or head[4:8] not in _QUICKTIME_ATOMS:
        return False
    size = struct.unpack(">I", head[:4])[0]
    return size in (0, 1) or size >= 8


def _sniff_ftyp(head: bytes) -> _Sniffed:
    """ISO-BMFF: the same box format carries HEIC photos, CR3 RAWs, MP4/MOV/3GP movies and M4A audio."""
    box_size = struct.unpack(">I", head[:4])[0]
    end = min(box_size, len(head)) if box_size >= 16 else 16
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
    brands = {major} | compatible
    if major == b"crx ":
        return _raw("cr3")
    if major in _HEIF_BRANDS:
        return _sniff_heif(brands)
    if major in _AUDIO_BRANDS:
        raise UnsupportedMedia(
            f"not a photo or video: looks like an audio file ({major.decode('latin-1').strip()})"
        )
    if major == b"qt  ":
        return _video("mov")
    if major.startswith(b"M4V"):
        return _video("m4v")
    if major.startswith(b"3g2"):
        return _video("3g2")
    if major.startswith((b"3gp", b"3gg", b"3ge", b"3gs")):
        return _video("3gp")
    if brands & _HEIF_BRANDS and not brands & _MOVIE_BRANDS:
        return _sniff_heif(brands)  # unusual major brand, but only image brands besides it
    # isom, mp41, mp42, avc1, iso2..iso9, dash, XAVC, ... anything else: let ffprobe decide.
    return _video("mp4")


_MOVIE_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"qt  ", b"M4V "}


def _sniff_heif(brands: set[bytes]) -> _Sniffed:
    if brands & _HEIC_BRANDS:
        return _photo("heic", "image/heic", "HEIF")
    if brands & _AVIF_BRANDS:
        return _photo("avif", "image/avif", "AVIF")
    return _photo("heif", "image/heif", "HEIF")


def _tiff_has_tag(stream: IO[bytes], head: bytes, tag: int) -> bool:
    """Whether IFD0 of a classic TIFF holds `tag` (DNGVersion marks a DNG whatever its name)."""
    if head[2:4] not in (b"*\x00", b"\x00*"):
        return False  # BigTIFF: not a DNG
    order = "<" if head[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack(order + "I", head[4:8])
        stream.seek(offset)
        raw_count = stream.read(2)
        if len(raw_count) < 2:
            return False
        (count,) = struct.unpack(order + "H", raw_count)
        entries = stream.read(12 * min(count, 4096))
    except (OSError, struct.error, OverflowError, ValueError):
        return False
    return any(struct.unpack_from(order + "H", entries, i)[0] == tag for i in range(0, len(entries) - 11, 12))


_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def _unsupported_format(head: bytes, ext: str) -> str | None:
    """The name of an image format we recognise but do not take, so the reason says what the file is."""
    if head.startswith(b"8BPS"):
        return "PSD (Photoshop document)"
    if head.startswith(_JP2_SIGNATURE) or head.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG 2000"
    if head.startswith(b"\xc5\xd0\xd3\xc6") or (head.startswith(b"%!PS-Adobe") and b"EPSF" in head[:40]):
        return "EPS (Encapsulated PostScript)"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JPEG XL"
    # Only reached for files nothing else matched: these looser checks choose the reason's words, never a format.
    if len(head) >= 22 and head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") and head[4:6] != b"\x00\x00" \
            and head[9] == 0:
        return "ICO (Windows icon)"
    if len(head) >= 128 and head[0] == 0x0A and head[1] in (0, 2, 3, 4, 5) and head[2] in (0, 1) \
            and head[3] in (1, 2, 4, 8):
        return "PCX"
    if ext in ("tga", "icb", "vda", "vst") and len(head) >= 18 and head[1] in (0, 1) \
            and head[2] in (1, 2, 3, 9, 10, 11):
        return "TGA (Truevision Targa)"
    return None


def _describe_other(head: bytes) -> str:
    """A hint at what a rejected file is, so whoever reads the reason knows what they are looking at."""
    if head.startswith(b"%PDF"):
        return "looks like a PDF document"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "looks like a ZIP archive (or an office document)"
    if head.startswith((b"ID3", b"fLaC", b"OggS")) or (head.startswith(b"RIFF") and head[8:12] == b"WAVE"):
        return "looks like an audio file"
    if _looks_like_text(head):
        return "looks like plain text"
    return "unrecognised file type"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # only tolerate a multi-byte character cut off by the read
            return False
        text = head[: exc.start].decode("utf-8")
    controls = sum(1 for ch in text if ch < " " and ch not in "\t\n\r\f\v\x1b")
    return controls <= len(text) // 50


# --- photos ---------------------------------------------------------------------------------------------


@functools.cache
def _register_heif_opener() -> None:
    """Teach Pillow HEIC/HEIF once per process; imported lazily so importing this module stays cheap."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def _open_header(stream: IO[bytes], path: Path, decoder: str) -> ImageFile.ImageFile:
    """Parse only the image header with the plugin our sniffing chose.

    Goes through Pillow's plugin registry instead of `Image.open` because `Image.open` enforces Pillow's own
    global decompression-bomb limit (about 179 MP by default) before we see the size; here `max_pixels`
    is the one limit, and it is checked before anything is decoded.
    """
    if decoder == "HEIF":
        _register_heif_opener()
    if decoder not in Image.OPEN:
        Image.init()
    entry = Image.OPEN.get(decoder)
    if entry is None:
        raise UnsupportedMedia(f"cannot check {decoder} images: this Pillow has no {decoder} support")
    factory, _accept = entry
    stream.seek(0)
    return factory(stream, os.fspath(path))


def _check_image(path: Path, sniffed: _Sniffed, max_pixels: int) -> Identified:
    assert sniffed.decoder is not None
    label = sniffed.format.upper()
    if sniffed.decoder in ("HEIF", "AVIF"):
        _check_bmff_extents(path, label)
    try:
        return _decode_image(path, sniffed, max_pixels)
    except UnsupportedMedia as refused:
        if sniffed.decoder != "JPEG" or not refused.reason.startswith("truncated") or not _jpeg_lacks_only_eoi(path):
            raise
    with Image.open(path) as img:
        width, height = img.size
    return Identified(MediaKind.PHOTO, sniffed.format, sniffed.mime, width, height,
                      note="JPEG without its end marker (EOI); every scan decodes, accepted as it is")


def _decode_image(path: Path, sniffed: _Sniffed, max_pixels: int) -> Identified:
    assert sniffed.decoder is not None
    label = sniffed.format.upper()
    declared: tuple[int, int] | None = None
    with path.open("rb") as stream:
        try:
            img = _open_header(stream, path, sniffed.decoder)
            try:
                declared = width, height = img.size
                if width <= 0 or height <= 0:
                    raise UnsupportedMedia(f"corrupt {label}: image claims {width}x{height} pixels")
                if width * height > max_pixels:
                    raise UnsupportedMedia(
                        f"image claims {width}x{height} pixels, above the {max_pixels / 1e6:g} MP limit"
                    )
                if sniffed.decoder == "JPEG":
                    # Decode at 1/8 scale: every byte of entropy-coded data is still read (so truncation
                    # and broken data are caught) at a fraction of the memory and time.
                    img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    img.load()
                elif sniffed.decoder == "PNG" and width * height > FULL_DECODE_PIXELS:
                    img.verify()
                else:
                    img.load()  # first frame only for animations: enough to prove the file decodes
            finally:
                img.close()
        except UnsupportedMedia:
            raise
        except Image.DecompressionBombError as exc:
            claimed = f"{declared[0]}x{declared[1]} pixels" if declared else "too many pixels"
            raise UnsupportedMedia(
                f"image claims {claimed}, above Pillow's decompression-bomb limit"
            ) from exc
        except MemoryError as exc:
            raise UnsupportedMedia(f"{label} too large to decode in memory") from exc
        except Exception as exc:  # any decoder failure on bad input is a reason, never a crash
            raise UnsupportedMedia(_decoder_reason(label, exc)) from exc
    assert declared is not None
    return Identified(MediaKind.PHOTO, sniffed.format, sniffed.mime, declared[0], declared[1])


#: Bytes the missing-EOI check appends before the end marker: no 0xFF, so they can only be read as scan data.
_FILLER = b"\x55" * 4096


def _jpeg_lacks_only_eoi(path: Path) -> bool:
    """Whether a JPEG that ends without its end marker still holds all of its scan data.

    Decoded twice with an end marker added: once right after the data, once after filler bytes. When the scans
    are complete the decoder skips the filler as junk between markers and both pictures are the same; when the
    file was cut inside scan data the filler is decoded as picture and the two differ (a decoder fills what is
    missing with flat grey, which is why a cut file must never be "repaired" by adding the marker)."""
    data = path.read_bytes()
    if data.endswith(b"\xff\xd9"):
        return False
    data = data.removesuffix(b"\xff")  # the first byte of the marker is there
    try:
        pictures = []
        for tail in (b"\xff\xd9", _FILLER + b"\xff\xd9"):
            with Image.open(io.BytesIO(data + tail)) as img:  # full scale: a reduced decode skips late AC scans
                pictures.append(img.convert("RGB").tobytes())
    except Exception:  # still undecodable: it was more than the marker
        return False
    return pictures[0] == pictures[1]


def _check_bmff_extents(path: Path, label: str) -> None:
    """A HEIF/AVIF whose items (image tiles, thumbnails, EXIF) point past the end of the file is truncated: a
    decoder may still show it, with the missing tiles flat grey. Reads only the box headers and `iloc`."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        try:
            ends = list(_bmff_item_ends(stream, size))
        except (struct.error, ValueError) as error:
            raise UnsupportedMedia(f"corrupt {label}: {error}") from error
    past = [(what, end) for what, end in ends if end > size]
    if past:
        what, end = past[0]
        raise UnsupportedMedia(f"truncated {label}: {what} ends at byte {end:,} but the file has {size:,} bytes "
                               f"({len(past)} part(s) cut off)")


def _bmff_item_ends(stream: IO[bytes], size: int) -> Iterator[tuple[str, int]]:
    """(what, end offset) of every top-level box and every file-stored extent of `meta/iloc`."""
    for box in iter_boxes(stream, 0, size):
        if box.kind == b"meta":
            first_child = box.start + box.header + 4  # FullBox: version and flags
            yield from _iloc_ends(stream, box.end, first_child)
        yield f"box '{box.kind.decode('latin-1')}'", box.end


def _iloc_ends(stream: IO[bytes], meta_end: int, first_child: int) -> Iterator[tuple[str, int]]:
    for box in iter_boxes(stream, first_child, meta_end):
        if box.kind == b"iloc":
            stream.seek(box.start + box.header)
            yield from _parse_iloc(stream.read(box.end - box.start - box.header))
            return


def _parse_iloc(body: bytes) -> Iterator[tuple[str, int]]:
    """ISO/IEC 14496-12 ItemLocationBox: ("item N's data", end) of each extent stored in the file (method 0)."""
    version = body[0]
    sizes, more = body[4], body[5]
    offset_size, length_size, base_size = sizes >> 4, sizes & 15, more >> 4
    index_size = more & 15 if version in (1, 2) else 0
    at = 6
    count_format = ">H" if version < 2 else ">I"
    (items,) = struct.unpack_from(count_format, body, at)
    at += struct.calcsize(count_format)

    def number(width: int) -> int:
        nonlocal at
        value = int.from_bytes(body[at:at + width], "big") if width else 0
        if at + width > len(body):
            raise ValueError("iloc box ends inside an item")
        at += width
        return value

    for _ in range(items):
        item_id = number(2 if version < 2 else 4)
        method = number(2) & 15 if version in (1, 2) else 0
        number(2)  # data_reference_index
        base = number(base_size)
        for _ in range(number(2)):
            number(index_size)
            offset, length = number(offset_size), number(length_size)
            if method == 0 and length:  # 1: inside idat, 2: another item; length 0: to the end of the file
                yield f"item {item_id}'s data", base + offset + length


_PARENTHESISED_TAIL = re.compile(r"\s*\([^()]*\)\s*$")


def _decoder_reason(label: str, exc: BaseException) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    message = _PARENTHESISED_TAIL.sub("", message) or message  # "(35 bytes not processed)" is noise
    if len(message) > 160:
        message = message[:157] + "..."
    lowered = message.lower()
    if "truncated" in lowered or "end of file" in lowered or "premature end" in lowered:
        return f"truncated {label}: {message}"
    return f"corrupt {label}: {message}"


# --- videos ---------------------------------------------------------------------------------------------


def _check_video(path: Path, sniffed: _Sniffed) -> Identified:
    if ffprobe_path() is None:
        raise UnsupportedMedia("cannot check video: ffprobe not available")
    try:
        info = probe(path)
    except ProbeUnavailable as exc:
        raise UnsupportedMedia(f"cannot check video: {exc.reason}") from exc
    except ProbeError as exc:
        raise UnsupportedMedia(f"corrupt video: {exc.reason}") from exc
    streams = [s for s in info.get("streams") or [] if isinstance(s, dict)]
    if not streams:
        raise UnsupportedMedia("corrupt video: ffprobe found no streams")
    # Cover art in an audio file shows up as a one-frame "video" stream; it does not make a video.
    pictures = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    if not pictures:
        raise UnsupportedMedia("video has no video stream")
    dimensions = ((_as_int(s.get("width")), _as_int(s.get("height"))) for s in pictures)
    sizes = [(w, h) for w, h in dimensions if w and h]
    if not sizes:
        raise UnsupportedMedia("corrupt video: the video stream has no picture size")
    width, height = max(sizes, key=lambda wh: wh[0] * wh[1])
    if sniffed.format in _BMFF_MOVIES and (cut := _cut_movie_box(path)):
        raise UnsupportedMedia(f"truncated video: {cut}")
    return Identified(MediaKind.VIDEO, sniffed.format, sniffed.mime, width, height)


#: Movies stored as ISO-BMFF boxes, and the top-level boxes of theirs that must be whole: the index and the media.
_BMFF_MOVIES = frozenset({"mp4", "mov", "m4v", "3gp", "3g2"})
_WHOLE_MOVIE_BOXES = frozenset({b"moov", b"mdat"})


def _cut_movie_box(path: Path) -> str | None:
    """Which of the movie's `moov` / `mdat` boxes ends past the end of the file, if one does. ffprobe reads a movie
    whose index comes first (faststart) from that index alone, so a download cut inside its media data would pass.
    Bytes after the boxes that are no boxes (a vendor's trailer) end the walk: only those two boxes are judged."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        try:
            for box in iter_boxes(stream, 0, size):
                if box.kind in _WHOLE_MOVIE_BOXES and box.end > size:
                    return (f"box '{box.kind.decode('latin-1')}' ends at byte {box.end:,} but the file has "
                            f"{size:,} bytes")
        except (struct.error, ValueError):
            return None
    return None


def _as_int(value: object) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0
    return max(number, 0)
