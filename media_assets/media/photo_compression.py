"""Smaller photos that nobody can tell apart from the originals, or the original bytes with the reason.

- JPEG: re-encoded (optimised Huffman tables, the source's chroma subsampling) only when its quantisation tables
  say it was saved clearly above the target quality, and the result is kept only when it is at least
  `min_saving_percent` smaller *and* its luma SSIM against the original is at least `min_ssim`. Otherwise a
  lossless optimisation (mozjpeg's jpegtran: same DCT coefficients, better Huffman coding, progressive) is
  kept when it saves bytes, with the decoded pixels checked equal. Every APPn/COM segment of the original
  (EXIF with GPS, dates, offsets and orientation, ICC profile, XMP, IPTC, comments) is carried over byte for
  byte, so no metadata is re-interpreted, and a metadata gate refuses any rewrite whose metadata segments are not
  the original's, byte for byte and in order (EXIF with its MakerNotes, ICC, XMP, IPTC, MPF, comments). JPEGs
  carrying anything after their image (a Motion Photo's video, MPF gain maps, depth maps or stereo pairs, vendor
  trailers), JPEGs whose segments cannot all be parsed up to the EOI (what follows cannot be known) and CMYK JPEGs
  are never re-encoded or rewritten: in doubt, the original bytes are kept.
- PNG: the image data is re-deflated at the highest zlib level, chunk by chunk, so pixels, bit depth (16-bit
  too), palette, transparency and every metadata chunk stay exactly as they were. Animated PNGs are kept.
- HEIC stays HEIC (already efficient, and encoding it takes tens of seconds). Optionally a JPEG derivative
  with the HEIC's EXIF, XMP and ICC profile is made for destinations that accept only JPEG.
- Anything else (GIF, WebP, TIFF, RAW, ...) is kept as it is. Images above `max_pixels` are refused before
  decoding (decompression bombs) with the reason.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mozjpeg_lossless_optimization
import numpy as np
from PIL import Image, JpegImagePlugin

from media_assets.media.compressed import (
    DERIVATIVE,
    LOSSLESS,
    REENCODED,
    Compressed,
    kept,
    publish,
    saving,
    too_little,
)
from media_assets.media.jpeg_quality import estimate_quality
from media_assets.media.ssim import ssim

#: A lossless rewrite is worth changing the bytes only when it saves at least this much.
LOSSLESS_MIN_SAVING_PERCENT = 1.0
#: Decoding more pixels than this is refused: a 64 MP RGB image is ~200 MB in memory per worker.
DEFAULT_MAX_PIXELS = 64_000_000
#: Step between the qualities tried when the target fails the SSIM gate.
QUALITY_STEP = 3
#: Quality of a HEIC's JPEG derivative: high, because it replaces the HEIC at that destination.
DERIVATIVE_QUALITY = 92


@dataclass(frozen=True)
class PhotoPolicy:
    """The photo settings (COMPRESSION_* in settings.env)."""

    jpeg_quality: int = 85
    #: "Clearly above the target": the source's estimated quality must be at least target + margin.
    quality_margin: int = 5
    min_saving_percent: float = 10.0
    min_ssim: float = 0.98
    max_megapixels: float = 0.0  # 0: no resolution cap
    heic_jpeg_derivative: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS


def compress_photo(source: Path, media_format: str, target_stem: Path, policy: PhotoPolicy) -> Compressed:
    """Decide for one photo; an accepted output is written to `target_stem` + the format's extension."""
    data = source.read_bytes()
    fmt = (media_format or "").lower()
    if fmt == "jpeg":
        return _jpeg(data, target_stem.with_suffix(".jpg"), policy)
    if fmt == "png":
        return _png(data, target_stem.with_suffix(".png"), policy)
    if fmt in ("heic", "heif"):
        if policy.heic_jpeg_derivative:
            return _heic_derivative(data, target_stem.with_suffix(".jpg"), policy)
        return kept(len(data), "HEIC stays HEIC (already efficient; encoding HEIC is far too slow)")
    return kept(len(data), f"no lossless optimiser for {fmt or 'this format'}: kept as it is")


def _too_large(img: Image.Image, policy: PhotoPolicy) -> str | None:
    width, height = img.size
    if width * height > policy.max_pixels:
        return (f"image has {width}x{height} pixels, above the {policy.max_pixels / 1e6:g} MP compression limit "
                "(decompression-bomb guard)")
    return None


def _open(data: bytes) -> Image.Image:
    """Open from memory without Pillow's own bomb check: `_too_large` is the limit, checked before decoding."""
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return Image.open(io.BytesIO(data))
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def jpeg_luma(data: bytes) -> np.ndarray:
    """The full-resolution luma of a JPEG, straight from the decoder (no colour conversion)."""
    with _open(data) as img:
        img.draft("L", img.size)
        img.load()
        return decoded_luma(img)


#: Rows of a picture turned into an array at a time by `decoded_luma` (4 MB of a 4000 px wide YCbCr picture).
LUMA_STRIP_ROWS = 256


def decoded_luma(img: Image.Image) -> np.ndarray:
    """The luma of a loaded picture: for L and YCbCr the decoder's own Y plane (the same numbers as `jpeg_luma`).

    Filled strip by strip: numpy takes a Pillow image through `tobytes`, which gathers the plane in chunks and
    joins them, so the whole plane at once briefly costs three planes (36 MB at 12 MP, the worker's peak)."""
    plane = np.empty((img.height, img.width), np.uint8)
    for top in range(0, img.height, LUMA_STRIP_ROWS):
        strip = img.crop((0, top, img.width, min(top + LUMA_STRIP_ROWS, img.height)))
        if strip.mode != "L":
            strip = strip.getchannel(0) if strip.mode == "YCbCr" else strip.convert("L")
        plane[top:top + strip.height] = np.asarray(strip)
    return plane


# --- JPEG -----------------------------------------------------------------------------------------------


def _jpeg(data: bytes, target: Path, policy: PhotoPolicy) -> Compressed:
    size = len(data)
    try:
        layout = jpeg_layout(data)
    except ValueError as error:
        return kept(size, f"cannot parse every segment of the JPEG ({error}), so it is never rewritten")
    with _open(data) as img:
        if reason := _too_large(img, policy):
            return kept(size, reason)
        if layout.trailing or img.format == "MPO" or getattr(img, "n_frames", 1) > 1:
            return kept(size, f"JPEG carries more than its image ({layout.trailing:,} bytes after it: a Motion "
                              "Photo's video, a gain map, a depth map or a stereo pair)")
        quality = estimate_quality(img.quantization or {})
        sampling = JpegImagePlugin.get_sampling(img)
        cap = policy.max_megapixels and img.width * img.height > policy.max_megapixels * 1e6
        if img.mode not in ("RGB", "L"):
            why = f"{img.mode} JPEG is never re-encoded"
        elif quality is None:
            why = "no quantisation tables to estimate the quality from"
        elif quality < policy.jpeg_quality + policy.quality_margin and not cap:
            why = (f"source ~q{quality} is already at or below target q{policy.jpeg_quality}"
                   if quality <= policy.jpeg_quality else
                   f"source ~q{quality} is not clearly above target q{policy.jpeg_quality}")
        else:
            why = ""
        try:
            # One decode for everything: YCbCr planes as stored (no colour conversion either way) when the
            # picture is re-encoded, the luma alone for the lossless check. Every byte is decoded, so a
            # truncated or broken file stops here.
            img.draft("L" if why else "YCbCr", img.size)
            img.load()
        except (OSError, SyntaxError, ValueError) as error:
            return kept(size, f"cannot decode the JPEG ({error})")
        if not why:
            result = _reencode(data, layout, img, quality or 0, sampling, target, policy)
            if isinstance(result, Compressed):
                return result
            why = result
        original = decoded_luma(img)
    return _jpeg_lossless(data, layout, original, target, why)


def _encode(picture: Image.Image, quality: int, sampling: int) -> bytes:
    """Baseline with optimised Huffman tables, the source's chroma subsampling. Progressive would save about 1%
    more at 12 MP but cost 2.5x the encode (0.18 s instead of 0.07 s) and 3x the gate's luma decode."""
    options = {"subsampling": sampling} if sampling >= 0 and picture.mode != "L" else {}
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=quality, optimize=True, **options)
    return buffer.getvalue()


def _reencode(data: bytes, layout: JpegLayout, img: Image.Image, quality: int, sampling: int, target: Path,
              policy: PhotoPolicy) -> Compressed | str:
    """The re-encoded JPEG when it passes both gates, else the reason it did not.

    The picture's luma is taken for each SSIM, after the encode, not held through it: beside the decoded picture
    (48 MB at 12 MP) and libjpeg's whole-image coefficients for the optimised Huffman tables (36 MB), it would be
    12 MB more at the worker's peak, and taking it again costs about 10 ms."""
    picture: Image.Image = img
    if policy.max_megapixels and img.width * img.height > policy.max_megapixels * 1e6:
        scale = (policy.max_megapixels * 1e6 / (img.width * img.height)) ** 0.5
        new_size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
        picture = img.resize(new_size, Image.Resampling.LANCZOS)
    ladder, why = promising_qualities(picture, len(data), sampling, policy,
                                      quality_ladder(policy.jpeg_quality, quality, policy.quality_margin))
    for step in ladder:
        encoded = copy_metadata_segments(data, _encode(picture, step, sampling))
        saved = saving(len(data), len(encoded))
        what = f"q{step} re-encode of a ~q{quality} source"
        if saved < policy.min_saving_percent:
            return why or f"{what} {too_little(saved)} (< {policy.min_saving_percent:g}% saved)"
        if lost := lost_metadata(layout, encoded):
            return f"{what} would lose metadata ({lost})"
        score = ssim(decoded_luma(picture), jpeg_luma(encoded))
        if score < policy.min_ssim:
            why = f"{what} failed the quality gate: SSIM {score:.4f} < {policy.min_ssim:g}"
            continue  # a higher quality may still pass and save plenty
        resized = f", resized to {picture.width}x{picture.height}" if picture is not img else ""
        return publish(encoded, target, action=REENCODED, size_before=len(data), quality=score,
                       decision=f"re-encoded from ~q{quality} to q{step}{resized}: "
                                f"{saved:.1f}% smaller, SSIM {score:.4f}")
    return why


#: Sampled tiles: a 4x4 grid of 256x256 pixels (MCU-aligned, so their pixels encode exactly as in the whole
#: picture), used only on pictures of at least SAMPLE_MIN_PIXELS (below that the whole picture is cheap enough).
SAMPLE_TILE = 256
SAMPLE_GRID = 4
SAMPLE_MIN_PIXELS = 4_000_000
#: A quality is encoded in full when its tiles' SSIM is at least the floor minus this (the tiles' mean came within
#: 0.00015 of the whole picture's on the generated 5-12 MP photos; the full SSIM still decides).
SAMPLE_SSIM_SLACK = 0.0005
#: A re-encode is skipped when the tiles predict a saving this many points below the minimum.
SAMPLE_SAVING_SLACK = 3.0


def sample_tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Boxes of the sampled tiles, spread evenly over the picture; empty for pictures too small to sample."""
    if width * height < SAMPLE_MIN_PIXELS or min(width, height) < SAMPLE_TILE * SAMPLE_GRID:
        return []
    def starts(extent: int) -> list[int]:
        return [(extent - SAMPLE_TILE) * i // (SAMPLE_GRID - 1) // 16 * 16 for i in range(SAMPLE_GRID)]
    return [(left, top, left + SAMPLE_TILE, top + SAMPLE_TILE) for top in starts(height) for left in starts(width)]


def promising_qualities(picture: Image.Image, size: int, sampling: int, policy: PhotoPolicy, ladder: list[int]
                        ) -> tuple[list[int], str]:
    """The part of `ladder` worth a full encode, and why nothing is when it is empty.

    Each quality is first tried on sampled tiles (about 8% of a 12 MP picture): their SSIM predicts the whole
    picture's, and their size per pixel (headers left out) its size. The ladder starts at the first quality whose
    tiles pass the SSIM floor; a quality whose predicted saving is clearly too small ends it (higher ones save
    less). A 12 MP q98 photo then costs one full encode and SSIM instead of three."""
    tiles = sample_tiles(picture.width, picture.height)
    if not tiles:
        return ladder, ""
    pixels = picture.width * picture.height / (len(tiles) * SAMPLE_TILE * SAMPLE_TILE)
    crops = [picture.crop(box) for box in tiles]
    references = [decoded_luma(crop) for crop in crops]
    score = 0.0
    for index, step in enumerate(ladder):
        scores, scan_bytes = [], 0
        for crop, reference in zip(crops, references, strict=True):
            encoded = _encode(crop, step, sampling)
            scan_bytes += len(encoded) - _segments(encoded)[1]
            scores.append(ssim(reference, jpeg_luma(encoded)))
        predicted = saving(size, int(scan_bytes * pixels))
        if predicted < policy.min_saving_percent - SAMPLE_SAVING_SLACK:
            return [], (f"q{step} re-encode would save about {predicted:.0f}% (predicted from sampled tiles, "
                        f"< {policy.min_saving_percent:g}%)")
        score = float(np.mean(scores))
        if score >= policy.min_ssim - SAMPLE_SSIM_SLACK:
            return ladder[index:], ""
    return [], (f"sampled tiles fail the quality gate up to q{ladder[-1]} (SSIM {score:.4f} < "
                f"{policy.min_ssim:g})")


def quality_ladder(target: int, source: int, margin: int) -> list[int]:
    """Qualities to try, lowest first: the target, then steps of QUALITY_STEP while still clearly below the
    source. A grainy q97 photo whose q85 version fails the SSIM gate often passes at q88-91 and still loses
    half its bytes; each step costs one encode and one SSIM."""
    return [target, *range(target + QUALITY_STEP, source - margin + 1, QUALITY_STEP)]


def _jpeg_lossless(data: bytes, layout: JpegLayout, original: np.ndarray, target: Path, why: str) -> Compressed:
    try:
        optimised = mozjpeg_lossless_optimization.optimize(data, mozjpeg_lossless_optimization.COPY_MARKERS.ALL)
    except ValueError as error:
        return kept(len(data), f"{why}; lossless optimisation failed ({error})")
    saved = saving(len(data), len(optimised))
    if saved < LOSSLESS_MIN_SAVING_PERCENT:
        return kept(len(data), f"{why}; lossless optimisation {too_little(saved)}")
    if lost := lost_metadata(layout, optimised):
        return kept(len(data), f"{why}; lossless optimisation would lose metadata ({lost})")
    if not np.array_equal(original, jpeg_luma(optimised)):
        return kept(len(data), f"{why}; lossless optimisation changed pixels")
    return publish(optimised, target, action=LOSSLESS, size_before=len(data), quality=1.0,
                   decision=f"optimised losslessly: {saved:.1f}% smaller ({why})")


#: In a scan's entropy-coded data, 0xFF is followed by 0x00 (a stuffed byte), a restart marker or more 0xFF fill;
#: anything else is the next marker.
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_EOI = 0xD9


def _markers(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of every segment of a JPEG's primary image in order, up to and including EOI; a
    scan's entropy-coded data counts into its SOS segment. ValueError when the stream breaks off."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    pos = 2
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == _EOI or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            yield marker, pos, pos + 2
            if marker == _EOI:
                return
            pos += 2
            continue
        if pos + 4 > len(data):
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if marker == 0xDA:
            found = _MARKER_AFTER_SCAN.search(data, end)
            if found is None:
                break
            end = found.start()
        yield marker, pos, end
        pos = end
    raise ValueError("the JPEG ends before its EOI marker")


@dataclass(frozen=True)
class JpegLayout:
    """What a rewrite must not lose, found by walking every segment of a JPEG's primary image."""

    #: Every metadata segment (see `_is_metadata`), byte for byte, in file order, before and between scans.
    metadata: tuple[bytes, ...]
    #: Bytes after the EOI (a Motion Photo's video, MPF images, a vendor trailer); 0x00/0xFF padding not counted.
    trailing: int


def jpeg_layout(data: bytes) -> JpegLayout:
    """The layout of a JPEG; ValueError when any segment cannot be parsed up to the EOI. Such a file is never
    rewritten: what cannot be walked cannot be shown to survive (a trailer behind an unreadable segment, an
    embedded preview that MakerNotes point at)."""
    metadata: list[bytes] = []
    end = 0
    for marker, start, end in _markers(data):
        if _is_metadata(marker):
            metadata.append(data[start:end])
    rest = data[end:]
    return JpegLayout(metadata=tuple(metadata), trailing=len(rest) if rest.strip(b"\x00\xff") else 0)


def _segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The marker segments of a JPEG before its first scan, and where the scan (SOS) starts."""
    segments: list[tuple[int, bytes]] = []
    for marker, start, end in _markers(data):
        if marker == 0xDA:
            return segments, start
        segments.append((marker, data[start:end]))
    raise ValueError("no image data (SOS) found")


def _is_metadata(marker: int) -> bool:
    """APP0-APP15 and COM, except APP14 (Adobe), which describes the colour transform of *this* encoding."""
    return (0xE0 <= marker <= 0xEF and marker != 0xEE) or marker == 0xFE


def copy_metadata_segments(original: bytes, encoded: bytes) -> bytes:
    """`encoded` with its own metadata segments replaced by the original's, byte for byte, in their order."""
    kept_segments, _ = _segments(original)
    new_segments, scan = _segments(encoded)
    head = [s for m, s in kept_segments if _is_metadata(m)] + [s for m, s in new_segments if not _is_metadata(m)]
    return b"\xff\xd8" + b"".join(head) + encoded[scan:]


_SEGMENT_NAMES = ((0xE1, b"Exif\x00", "EXIF (with its MakerNotes)"), (0xE1, b"http://ns.adobe.com/xap/", "XMP"),
                  (0xE1, b"http://ns.adobe.com/xmp/extension/", "extended XMP"), (0xE2, b"ICC_PROFILE", "ICC profile"),
                  (0xE2, b"MPF", "MPF"), (0xED, b"Photoshop 3.0", "IPTC"), (0xFE, b"", "comment"))


def _segment_name(segment: bytes) -> str:
    marker, payload = segment[1], segment[4:]
    for known, prefix, name in _SEGMENT_NAMES:
        if marker == known and payload.startswith(prefix):
            return name
    return f"APP{marker - 0xE0}"


def lost_metadata(layout: JpegLayout, output: bytes) -> str | None:
    """The metadata gate: None when `output` carries every metadata segment of the original byte for byte and
    in order, else which kinds it would lose or change (ICC, XMP, IPTC, EXIF with MakerNotes, MPF, ...)."""
    try:
        carried = jpeg_layout(output).metadata
    except ValueError as error:
        return f"its segments cannot be parsed ({error})"
    if carried == layout.metadata:
        return None
    missing = [segment for segment in layout.metadata if segment not in carried]
    return ", ".join(sorted({_segment_name(segment) for segment in missing})) or "the order of its segments"


# --- PNG ------------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, CRCs checked."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG")
    chunks: list[tuple[bytes, bytes]] = []
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if len(payload) != length or zlib.crc32(kind + payload) != crc:
            raise ValueError(f"damaged {kind.decode('latin-1')} chunk")
        chunks.append((kind, payload))
        pos += 12 + length
        if kind == b"IEND":
            return chunks
    raise ValueError("truncated: no IEND chunk")


def _deflate(raw: bytes, strategy: int) -> bytes:
    """zlib at its highest level; Z_FILTERED often wins on PNG's filtered rows, the default on flat images."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 15, 9, strategy)
    return deflater.compress(raw) + deflater.flush()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", len(payload), kind) + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(data: bytes, target: Path, policy: PhotoPolicy) -> Compressed:
    size = len(data)
    try:
        chunks = _png_chunks(data)
        kinds = [kind for kind, _ in chunks]
        if b"acTL" in kinds:
            return kept(size, "animated PNG kept as it is")
        width, height = struct.unpack(">II", chunks[0][1][:8])
        if width * height > policy.max_pixels:
            return kept(size, f"image has {width}x{height} pixels, above the {policy.max_pixels / 1e6:g} MP "
                              "compression limit (decompression-bomb guard)")
        # Bounded inflate: a tiny IDAT that claims gigabytes cannot take the memory with it.
        stride = width * 8 + 1  # 16-bit RGBA, the widest row a PNG can have
        inflater = zlib.decompressobj()
        raw = inflater.decompress(b"".join(p for k, p in chunks if k == b"IDAT"), stride * height)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("image data does not match its header")
        packed = min((_deflate(raw, strategy) for strategy in (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED)), key=len)
    except (ValueError, struct.error, zlib.error, IndexError) as error:
        return kept(size, f"cannot read the PNG ({error})")
    first_idat = kinds.index(b"IDAT")
    rebuilt = b"".join([
        _PNG_SIGNATURE,
        *(_chunk(k, p) for k, p in chunks[:first_idat]),
        _chunk(b"IDAT", packed),
        *(_chunk(k, p) for k, p in chunks[first_idat:] if k != b"IDAT"),
    ])
    saved = saving(size, len(rebuilt))
    if saved < LOSSLESS_MIN_SAVING_PERCENT:
        return kept(size, f"PNG lossless optimisation {too_little(saved)}")
    return publish(rebuilt, target, action=LOSSLESS, size_before=size, quality=1.0,
                   decision=f"optimised losslessly: {saved:.1f}% smaller (image data re-deflated)")


# --- HEIC -----------------------------------------------------------------------------------------------


def _heic_derivative(data: bytes, target: Path, policy: PhotoPolicy) -> Compressed:
    """A JPEG of the HEIC for JPEG-only destinations, with its EXIF, XMP and ICC profile carried over.

    pillow-heif applies the HEIC's rotation to the pixels and resets the EXIF orientation to 1 to match."""
    from media_assets.media.dates import register_heif

    register_heif()
    size = len(data)
    try:
        with _open(data) as img:
            if reason := _too_large(img, policy):
                return kept(size, reason)
            picture = img.convert("RGB")
            info = dict(img.info)
    except (OSError, SyntaxError, ValueError, RuntimeError) as error:
        return kept(size, f"cannot decode the HEIC ({error})")
    metadata = {key: info[key] for key in ("exif", "xmp", "icc_profile") if info.get(key)}
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=DERIVATIVE_QUALITY, optimize=True, progressive=True, **metadata)
    encoded = buffer.getvalue()
    score = ssim(decoded_luma(picture), jpeg_luma(encoded))
    return publish(encoded, target, action=DERIVATIVE, size_before=size, quality=score,
                   decision=f"JPEG derivative of the HEIC at q{DERIVATIVE_QUALITY} for JPEG-only destinations: "
                            f"SSIM {score:.4f}")
