"""Compression decisions on generated photos: when to re-encode, when to keep, what must survive."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from media_assets.media import sample_library as sample
from media_assets.media.compressed import KEPT, LOSSLESS, REENCODED, saving, too_little
from media_assets.media.jpeg_quality import estimate_quality
from media_assets.media.photo_compression import (
    LUMA_STRIP_ROWS,
    PhotoPolicy,
    _markers,
    compress_photo,
    copy_metadata_segments,
    decoded_luma,
    jpeg_layout,
    jpeg_luma,
    promising_qualities,
    quality_ladder,
)
from media_assets.media.ssim import ssim
from media_assets.phases.common import PhaseOutcome
from media_assets_tests.conftest import present

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="5"/></rdf:RDF></x:xmpmeta>')


def camera_jpeg(path: Path, quality: int, *, size: tuple[int, int] = (1200, 900), seed: int = 7) -> Path:
    """A camera-like JPEG with the metadata a phone writes: EXIF (dates, offset, GPS, orientation, camera),
    an ICC profile and XMP."""
    exif = sample.build_exif(taken=datetime(2023, 7, 1, 23, 30), offset="+09:00", gps=sample.TOKYO,
                             make="Google", model="Pixel 7", extra={sample.TAG_ORIENTATION: 6})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    sample.camera_like_image(size, seed).save(buffer, "JPEG", quality=quality, exif=exif.tobytes(),
                                              icc_profile=icc, xmp=XMP)
    path.write_bytes(buffer.getvalue())
    return path


def test_quality_is_estimated_from_the_quantisation_tables() -> None:
    image = sample.textured_image((64, 64), 1)
    for quality in (30, 50, 75, 80, 85, 90, 92, 95, 97):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        with Image.open(buffer) as img:
            assert estimate_quality(img.quantization) == quality
    assert estimate_quality({}) is None


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook definition, one window at a time."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(a.shape[0] - 6):
        for j in range(a.shape[1] - 6):
            x, y = a[i:i + 7, j:j + 7], b[i:i + 7, j:j + 7]
            cov = np.cov(x.ravel(), y.ravel())
            values.append(((2 * x.mean() * y.mean() + c1) * (2 * cov[0, 1] + c2))
                          / ((x.mean() ** 2 + y.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_textbook_definition() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (150, 41), dtype=np.uint8)  # more rows than a band: the bands must join up
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b) == pytest.approx(_reference_ssim(a, b), abs=1e-5)
    assert ssim(a, b) < 0.99


def _previous_ssim(first: np.ndarray, second: np.ndarray) -> float:
    """The implementation this project gated photos with until the faster one: the reference for equal numbers."""
    def sum7(values: np.ndarray, axis: int) -> np.ndarray:
        def cut(array: np.ndarray, start: int, stop: int | None) -> np.ndarray:
            return array[:, start:stop] if axis == 1 else array[start:stop]
        pairs = cut(values, 0, -1) + cut(values, 1, None)
        fours = cut(pairs, 0, -2) + cut(pairs, 2, None)
        return cut(fours, 0, -3) + cut(pairs, 4, -1) + cut(values, 6, None)

    def window_sums(values: np.ndarray) -> np.ndarray:
        return sum7(sum7(values, 1), 0)

    n, scale = np.float32(49), np.float32(49 * 48)
    x, y = first.astype(np.int32), second.astype(np.int32)
    sx, sy = window_sums(x), window_sums(y)
    cov = (n * window_sums(x * y) - sx * sy).astype(np.float32) / scale
    var_x = (n * window_sums(x * x) - sx * sx).astype(np.float32) / scale
    var_y = (n * window_sums(y * y) - sy * sy).astype(np.float32) / scale
    mx, my = sx.astype(np.float32) / n, sy.astype(np.float32) / n
    c1, c2 = np.float32((0.01 * 255) ** 2), np.float32((0.03 * 255) ** 2)
    values = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (var_x + var_y + c2))
    return float(np.mean(values, dtype=np.float64))


@pytest.mark.parametrize(("seed", "grain", "quality"), [(1, 1.0, 70), (2, 1.0, 85), (3, 1.6, 91), (4, 0.3, 60)])
def test_ssim_gives_the_previous_implementations_numbers(seed: int, grain: float, quality: int) -> None:
    """Same definition, same numbers (to far better than the 4 decimals a decision shows) on decoded photos."""
    buffer = io.BytesIO()
    sample.camera_like_image((1000, 700), seed, grain=grain).save(buffer, "JPEG", quality=97)
    original = jpeg_luma(buffer.getvalue())
    with Image.open(buffer) as img:
        again = io.BytesIO()
        img.save(again, "JPEG", quality=quality)
    encoded = jpeg_luma(again.getvalue())
    assert ssim(original, encoded) == pytest.approx(_previous_ssim(original, encoded), abs=1e-6)
    assert round(ssim(original, encoded), 4) == round(_previous_ssim(original, encoded), 4)


def test_sampled_tiles_pick_the_quality_the_whole_ladder_would_pick(tmp_path: Path) -> None:
    """A grainy q98 photo fails at q85: the tiles lead straight to the quality that passes, so it costs one
    full encode and SSIM instead of one per step, and the decision is the one trying every step gives."""
    buffer = io.BytesIO()
    picture = sample.camera_like_image((2400, 1800), 5)
    picture.save(buffer, "JPEG", quality=98)
    data = buffer.getvalue()
    source = tmp_path / "grainy.jpg"
    source.write_bytes(data)
    result = compress_photo(source, "jpeg", tmp_path / "1", PhotoPolicy())
    assert result.action == REENCODED and "to q85" not in result.decision, result.decision
    with Image.open(io.BytesIO(data)) as img:
        img.draft("YCbCr", img.size)
        img.load()
        reference = jpeg_luma(data)
        ladder = quality_ladder(85, 98, 5)
        promising, why = promising_qualities(img, len(data), 2, PhotoPolicy(), ladder)
        assert why == "" and promising[0] > 85
        assert f"to q{promising[0]}:" in result.decision
        passing = [step for step in ladder if ssim(reference, jpeg_luma(_save(img, step))) >= 0.98]
        assert passing[0] == promising[0]  # what trying every step in full would have chosen
        _, why = promising_qualities(img, len(data), 2, PhotoPolicy(min_saving_percent=95), ladder)
        assert "predicted from sampled tiles" in why  # no full encode when the tiles say it cannot pay


@pytest.mark.parametrize("mode", ["YCbCr", "L", "RGB"])
def test_the_luma_taken_strip_by_strip_is_the_whole_planes(mode: str) -> None:
    """Same numbers as the plane taken at once (a height that is no multiple of the strips included), so every
    SSIM score and the lossless check are unchanged."""
    picture = sample.camera_like_image((640, 2 * LUMA_STRIP_ROWS + 37), 3).convert(mode)
    whole = np.asarray(picture.getchannel(0) if mode == "YCbCr" else picture.convert("L"))
    assert np.array_equal(decoded_luma(picture), whole)


def test_taking_the_luma_holds_little_more_than_the_plane() -> None:
    """At 12 MP the plane taken at once briefly cost three planes (Pillow's chunks, their join, the array): the
    worker's peak while it held the decoded picture too."""
    picture = Image.new("L", (2000, 1500), 128)
    plane_bytes = picture.width * picture.height
    tracemalloc.start()
    try:
        decoded_luma(picture)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * plane_bytes


def _save(img: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality, optimize=True, subsampling=2)
    return buffer.getvalue()


def test_a_q95_photo_is_re_encoded_with_every_piece_of_metadata(tmp_path: Path) -> None:
    source = camera_jpeg(tmp_path / "IMG.jpg", 95)
    before = source.read_bytes()
    result = compress_photo(source, "jpeg", tmp_path / "out" / "1", PhotoPolicy())
    assert result.action == REENCODED, result.decision
    assert source.read_bytes() == before  # the original is only read
    assert result.output == tmp_path / "out" / "1.jpg" and result.output.stat().st_size == result.size_after
    assert result.size_after <= 0.9 * len(before)
    assert present(result.quality) >= 0.98
    assert result.quality == pytest.approx(ssim(jpeg_luma(before), jpeg_luma(result.output.read_bytes())))
    with Image.open(result.output) as out, Image.open(source) as original:
        assert estimate_quality(out.quantization) == 85
        exif, exif_ifd, gps = out.getexif(), out.getexif().get_ifd(sample.TAG_EXIF_IFD), out.getexif().get_ifd(
            sample.TAG_GPS_IFD)
        assert exif_ifd[sample.TAG_DATETIME_ORIGINAL] == "2023:07:01 23:30:00"
        assert exif_ifd[sample.TAG_OFFSET_TIME_ORIGINAL] == "+09:00"
        assert exif[sample.TAG_ORIENTATION] == 6 and exif[sample.TAG_MODEL] == "Pixel 7"
        assert gps == original.getexif().get_ifd(sample.TAG_GPS_IFD) and gps[1] == "N"
        assert out.info["icc_profile"] == original.info["icc_profile"]
        assert out.info["xmp"] == XMP
    assert not list((tmp_path / "out").glob(".partial-*"))


MOTION_VIDEO = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 64


@pytest.mark.parametrize("quality", [95, 80])  # one would be re-encoded, the other rewritten losslessly
def test_a_motion_photo_keeps_its_video(tmp_path: Path, quality: int) -> None:
    """Google and Samsung Motion Photos append the video after the JPEG's EOI: any rewrite would drop it."""
    photo = camera_jpeg(tmp_path / "PXL_20230701_233000.MP.jpg", quality)
    photo.write_bytes(photo.read_bytes() + MOTION_VIDEO)
    result = compress_photo(photo, "jpeg", tmp_path / "out" / "1", PhotoPolicy())
    assert result.action == KEPT and result.output is None
    assert f"{len(MOTION_VIDEO):,} bytes after it" in result.decision


def test_a_jpeg_with_mpf_images_is_kept_and_padding_alone_is_not_a_trailer(tmp_path: Path) -> None:
    image = sample.camera_like_image((1200, 900), 3)
    buffer = io.BytesIO()
    image.save(buffer, "MPO", quality=95, save_all=True, append_images=[image.resize((300, 225))])
    (tmp_path / "mpo.jpg").write_bytes(buffer.getvalue())
    assert compress_photo(tmp_path / "mpo.jpg", "jpeg", tmp_path / "1", PhotoPolicy()).action == KEPT
    padded = camera_jpeg(tmp_path / "padded.jpg", 95)
    padded.write_bytes(padded.read_bytes() + b"\x00" * 16)
    assert jpeg_layout(padded.read_bytes()).trailing == 0
    assert compress_photo(padded, "jpeg", tmp_path / "2", PhotoPolicy()).action == REENCODED


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"restart_marker_blocks": 2}])
def test_the_end_of_the_image_is_found_in_every_kind_of_scan(options: dict) -> None:
    buffer = io.BytesIO()
    sample.camera_like_image((640, 480), 5).save(buffer, "JPEG", quality=90, **options)
    data = buffer.getvalue()
    assert jpeg_layout(data).trailing == 0
    assert jpeg_layout(data + b"trailer!").trailing == 8
    with pytest.raises(ValueError, match="ends before its EOI"):
        jpeg_layout(data[:-100])  # truncated: never rewritten


def _after_segment(data: bytes, marker: int, insert: bytes) -> bytes:
    """`data` with `insert` placed right after its first segment with `marker` (SOS: after that scan)."""
    segment = next((start, end) for found, start, end in _markers(data) if found == marker)
    return data[:segment[1]] + insert + data[segment[1]:]


@pytest.mark.parametrize("quality", [95, 80])  # one would be re-encoded, the other rewritten losslessly
def test_a_jpeg_whose_segments_cannot_all_be_parsed_is_never_rewritten(tmp_path: Path, quality: int) -> None:
    """Stray bytes between two segments: decoders skip them with a warning, so the picture decodes, but the
    walk that finds what follows the image cannot go on, and a camera's preview after the EOI would be lost."""
    preview = io.BytesIO()
    sample.camera_like_image((160, 120), 9).save(preview, "JPEG", quality=90)
    source = camera_jpeg(tmp_path / "DSC01234.JPG", quality)
    source.write_bytes(_after_segment(source.read_bytes(), 0xE0, b"\x00stray") + preview.getvalue())
    jpeg_luma(source.read_bytes())  # the picture itself decodes
    result = compress_photo(source, "jpeg", tmp_path / "out" / "1", PhotoPolicy())
    assert result.action == KEPT and result.output is None, result.decision
    assert "cannot parse every segment" in result.decision


def test_a_rewrite_that_would_lose_metadata_is_refused(tmp_path: Path) -> None:
    """A comment between the scans of a progressive JPEG is not carried by the re-encode (which copies the
    segments before the first scan): the metadata gate refuses it, and jpegtran, which carries it, is kept."""
    buffer = io.BytesIO()
    sample.camera_like_image((1200, 900), 4).save(buffer, "JPEG", quality=95, progressive=True, xmp=XMP)
    source = tmp_path / "IMG.jpg"
    source.write_bytes(_after_segment(buffer.getvalue(), 0xDA, b"\xff\xfe\x00\x09caption"))
    result = compress_photo(source, "jpeg", tmp_path / "out" / "1", PhotoPolicy())
    assert "re-encode of a ~q95 source would lose metadata (comment)" in result.decision
    assert result.action != REENCODED
    if result.output is not None:
        assert jpeg_layout(result.output.read_bytes()).metadata == jpeg_layout(source.read_bytes()).metadata


def test_a_q80_photo_is_not_re_encoded(tmp_path: Path) -> None:
    source = camera_jpeg(tmp_path / "IMG.jpg", 80)
    result = compress_photo(source, "jpeg", tmp_path / "1", PhotoPolicy())
    assert "already at or below target q85" in result.decision
    assert result.action in (KEPT, LOSSLESS)
    if result.output is not None:  # lossless: the same pixels, the same metadata
        assert np.array_equal(jpeg_luma(result.output.read_bytes()), jpeg_luma(source.read_bytes()))
        with Image.open(result.output) as out:
            assert out.info["xmp"] == XMP and out.getexif()[sample.TAG_ORIENTATION] == 6


def test_an_output_that_fails_the_quality_gate_is_not_kept(tmp_path: Path) -> None:
    source = camera_jpeg(tmp_path / "IMG.jpg", 95)
    result = compress_photo(source, "jpeg", tmp_path / "1", PhotoPolicy(min_ssim=0.9999))
    assert "failed the quality gate: SSIM" in result.decision
    assert result.action != REENCODED
    if result.output is not None:
        assert result.action == LOSSLESS and result.quality == 1.0
        assert np.array_equal(jpeg_luma(result.output.read_bytes()), jpeg_luma(source.read_bytes()))


def test_a_grainy_photo_that_fails_at_the_target_is_tried_at_higher_qualities(tmp_path: Path) -> None:
    assert quality_ladder(85, 97, 5) == [85, 88, 91] and quality_ladder(85, 90, 5) == [85]
    buffer = io.BytesIO()
    sample.camera_like_image((800, 600), 5, grain=1.2).save(buffer, "JPEG", quality=98)
    source = tmp_path / "grainy.jpg"
    source.write_bytes(buffer.getvalue())
    result = compress_photo(source, "jpeg", tmp_path / "1", PhotoPolicy())
    assert result.action == REENCODED and present(result.quality) >= 0.98, result.decision
    assert "to q85" not in result.decision and present(result.size_after) <= 0.9 * len(buffer.getvalue())


def test_an_output_not_small_enough_is_not_kept(tmp_path: Path) -> None:
    source = camera_jpeg(tmp_path / "IMG.jpg", 95)
    result = compress_photo(source, "jpeg", tmp_path / "1", PhotoPolicy(min_saving_percent=95))
    assert "saved only" in result.decision and result.action != REENCODED


def test_a_truncated_jpeg_is_kept_with_the_reason(tmp_path: Path) -> None:
    whole = camera_jpeg(tmp_path / "whole.jpg", 95).read_bytes()
    source = tmp_path / "cut.jpg"
    source.write_bytes(whole[: len(whole) // 2])
    result = compress_photo(source, "jpeg", tmp_path / "1", PhotoPolicy())
    assert result.action == KEPT and "cannot parse every segment" in result.decision and result.output is None


def test_a_cmyk_jpeg_is_never_re_encoded(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    sample.camera_like_image((400, 300), 2).convert("CMYK").save(buffer, "JPEG", quality=97)
    source = tmp_path / "cmyk.jpg"
    source.write_bytes(buffer.getvalue())
    result = compress_photo(source, "jpeg", tmp_path / "1", PhotoPolicy())
    assert "CMYK JPEG is never re-encoded" in result.decision
    if result.output is not None:
        with Image.open(result.output) as out, Image.open(source) as original:
            assert out.mode == "CMYK" and np.array_equal(np.asarray(out), np.asarray(original))


def test_a_16_bit_png_keeps_its_16_bits_and_every_chunk(tmp_path: Path) -> None:
    ramp = (np.arange(300 * 200, dtype=np.uint32).reshape(200, 300) * 7 % 65536).astype(np.uint16)
    image = Image.fromarray(ramp).convert("I;16")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1, pnginfo=_text("Comment", "kept"))
    source = tmp_path / "deep.png"
    source.write_bytes(buffer.getvalue())
    result = compress_photo(source, "png", tmp_path / "1", PhotoPolicy())
    assert result.action == LOSSLESS, result.decision
    output = present(result.output)
    data = output.read_bytes()
    assert data[24] == 16  # IHDR bit depth
    with Image.open(output) as out, Image.open(source) as original:
        assert out.mode == original.mode and np.array_equal(np.asarray(out), np.asarray(original))
        assert out.text["Comment"] == "kept"


def _text(key: str, value: str) -> PngInfo:
    info = PngInfo()
    info.add_text(key, value)
    return info


def test_a_palette_png_with_transparency_stays_the_same_picture(tmp_path: Path) -> None:
    image = sample.textured_image((200, 120), 4).quantize(64)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=3, compress_level=0)
    source = tmp_path / "palette.png"
    source.write_bytes(buffer.getvalue())
    result = compress_photo(source, "png", tmp_path / "1", PhotoPolicy())
    assert result.action == LOSSLESS and present(result.size_after) < len(buffer.getvalue())
    with Image.open(present(result.output)) as out, Image.open(source) as original:
        assert out.mode == "P" and out.info["transparency"] == 3
        assert np.array_equal(np.asarray(out.convert("RGBA")), np.asarray(original.convert("RGBA")))


def test_a_png_whose_data_does_not_match_its_header_is_kept(tmp_path: Path) -> None:
    data = bytearray(sample.screenshot_bytes(size=(64, 64)))
    struct.pack_into(">II", data, 16, 1, 1)  # a 1x1 header over 64x64 of data: how deflate bombs look
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    source = tmp_path / "odd.png"
    source.write_bytes(bytes(data))
    result = compress_photo(source, "png", tmp_path / "1", PhotoPolicy())
    assert result.action == KEPT and "cannot read the PNG" in result.decision


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    source = camera_jpeg(tmp_path / "IMG.jpg", 95, size=(400, 300))
    result = compress_photo(source, "jpeg", tmp_path / "1", PhotoPolicy(max_pixels=100_000))
    assert result.action == KEPT and "decompression-bomb guard" in result.decision


def test_heic_stays_heic_unless_a_jpeg_derivative_is_wanted(tmp_path: Path) -> None:
    source = tmp_path / "IMG.HEIC"
    sample.make_photo(source, size=(320, 240), fmt="HEIC", quality=80, taken=datetime(2024, 3, 15, 23, 30),
                      offset="+02:00", gps=sample.PARIS, make="Apple", model="iPhone 15")
    before = source.read_bytes()
    result = compress_photo(source, "heic", tmp_path / "1", PhotoPolicy())
    assert result.action == KEPT and "HEIC stays HEIC" in result.decision and result.output is None

    derived = compress_photo(source, "heic", tmp_path / "2", PhotoPolicy(heic_jpeg_derivative=True))
    assert derived.output == tmp_path / "2.jpg" and present(derived.quality) > 0.95
    assert source.read_bytes() == before
    with Image.open(derived.output) as out:
        assert out.format == "JPEG"
        assert out.getexif().get_ifd(sample.TAG_EXIF_IFD)[sample.TAG_DATETIME_ORIGINAL] == "2024:03:15 23:30:00"
        assert out.getexif().get_ifd(sample.TAG_GPS_IFD)[1] == "N"


def test_metadata_segments_are_carried_over_in_order() -> None:
    original = io.BytesIO()
    sample.textured_image((32, 32), 1).save(original, "JPEG", quality=95, comment=b"hello", xmp=XMP,
                                            exif=sample.build_exif(make="X").tobytes())
    plain = io.BytesIO()
    sample.textured_image((32, 32), 2).save(plain, "JPEG", quality=80)
    merged = copy_metadata_segments(original.getvalue(), plain.getvalue())
    with Image.open(io.BytesIO(merged)) as img:
        img.load()
        assert img.info["comment"] == b"hello" and img.info["xmp"] == XMP
        assert img.getexif()[sample.TAG_MAKE] == "X"
        assert estimate_quality(img.quantization) == 80


def test_an_output_that_grew_is_said_to_have_grown() -> None:
    """"saved only -15.0%" read as a typo to the people watching; an output larger than its source grew."""
    assert too_little(saving(1000, 1150)) == "grew by 15.0%"
    assert too_little(saving(1000, 996)) == "saved only 0.4%"


def test_a_phase_that_only_reads_bytes_says_how_many_without_an_arrow_to_zero() -> None:
    assert "1,514,505 bytes" in PhaseOutcome("verification", files=6, bytes_in=1_514_505).summary()
    assert "-> 0 bytes" not in PhaseOutcome("verification", files=6, bytes_in=1_514_505).summary()
    assert "2,000 -> 1,500 bytes" in PhaseOutcome("compression", files=2, bytes_in=2000, bytes_out=1500).summary()
