"""Re-encode a video only when it pays, and accept the result only when it is provably the same video.

Policy: phone cameras record H.264 at 15-25 Mbit/s for 1080p (0.25+ bits per pixel) because they must encode
in real time; x264 at CRF 23 gives about half of that with no visible difference. Codecs that are already
efficient (HEVC, AV1, VP9) and streams already below `min_bits_per_pixel` are kept, as are Live Photo videos
(re-encoding could break the still/movie link), containers other than MP4/MOV, and anything but 8-bit 4:2:0.

The transcode keeps audio, subtitles and data streams as they are (copied), the rotation (no auto-rotate: the
display matrix is carried over) and the container metadata (creation time, Apple's QuickTime keys); what ffmpeg
does not carry (XMP in its `uuid` box or `XMP_` atom, unknown `udta` atoms, Apple's `mdta` keys as they were) is
copied into the output byte for byte afterwards (media/mp4_metadata.py). An output is accepted only when it
probes, lasts as long as the source (within 0.1 s), has the same streams, the same container and stream tags and
rotation, every metadata box of the source byte for byte, and is at least `min_saving_percent` smaller;
otherwise the original flows on with the reason. Its luma SSIM against the source is the file's quality score in
the catalog, as for photos, and can be made a gate too (`min_ssim`). The encoder measures it on every frame while
it encodes (x264's and x265's `ssim` option: its reconstruction is exactly what a decoder makes of the output),
which costs next to nothing; decoding both files again for ffmpeg's ssim filter (every `SSIM_FRAME_STEP`-th frame,
the same 8x8-window definition) cost a fifth of a transcode and is only the fallback when the encoder says nothing.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg

from media_assets.media.compressed import TRANSCODED, Compressed, kept, saving, too_little
from media_assets.media.ffmpeg_tools import ProbeError, ffmpeg_path, probe
from media_assets.media.hashing import sha256_file
from media_assets.media.mp4_metadata import CannotCarry, MetadataBoxes, carry_metadata, lost_boxes, metadata_boxes
from media_assets.storage import TEMP_PREFIX, move_file

ENCODERS = {"h264": "libx264", "hevc": "libx265"}
EFFICIENT_CODECS = frozenset({"hevc", "av1", "vp9"})
#: Source container -> muxer of the output (same container, same extension).
CONTAINERS = {"mp4": "mp4", "m4v": "mp4", "mov": "mov"}
REENCODED_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p"})
DURATION_TOLERANCE_S = 0.1
LIVE_PHOTO_KEY = "com.apple.quicktime.content.identifier"
#: Tags the muxer writes itself; every other container tag must survive.
_MUXER_TAGS = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands"})
#: Stream tags the muxer or the encoder writes itself; every other stream tag must survive.
_STREAM_MUXER_TAGS = frozenset({"encoder", "vendor_id"})
#: Every so many frames are compared for the quality score: decoding both files is most of its cost.
SSIM_FRAME_STEP = 5
_SSIM_LINE = re.compile(rb"SSIM Y:([0-9.]+)")
#: What x264 and x265 print at the end of an encode with their `ssim` option on.
_ENCODER_SSIM_LINE = re.compile(rb"SSIM Mean Y: ?([0-9.]+)")
#: The option that has each encoder measure SSIM.
_ENCODER_SSIM_OPTION: dict[str, dict[str, object]] = {"h264": {"ssim": 1}, "hevc": {"x265-params": "ssim=1"}}
#: Frames x264 looks ahead for its rate control and B-frame decisions. Each frame it holds costs about 6 MB at
#: 1080p (planes, half-pel planes, lowres copies); preset veryfast's default of 10 made ffmpeg peak at 207 MB on a
#: 1080p clip, 3 (x264 never goes below the B-frame count, 3) at 160 MB, the output 3% smaller and its SSIM
#: 0.004 lower (0.9634 instead of 0.9679). Slower presets look ahead up to 60 frames (~400 MB), so it is bounded
#: for every preset.
X264_LOOKAHEAD_FRAMES = 3


@dataclass(frozen=True)
class VideoPolicy:
    """The video settings (COMPRESSION_VIDEO_* in settings.env)."""

    codec: str = "h264"
    crf: int = 23
    preset: str = "veryfast"
    #: H.264 (and older codecs) at or above this many bits per pixel per frame are re-encoded.
    min_bits_per_pixel: float = 0.10
    min_saving_percent: float = 10.0
    #: The least luma SSIM an accepted transcode keeps against its source. Off (0) by default: removing a clip's
    #: sensor grain lowers SSIM without any visible loss (0.87-0.97 at CRF 23 here).
    min_ssim: float = 0.0
    #: ffmpeg's threads for one file (0: its own choice, a thread per core); the phase gives each worker its share.
    threads: int = 0


def _video_streams(info: dict) -> list[dict]:
    return [s for s in info.get("streams", [])
            if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]


def _stream_kinds(info: dict) -> list[str]:
    return sorted(str(s.get("codec_type")) for s in info.get("streams", []))


def _duration(info: dict) -> float | None:
    try:
        return float(info.get("format", {}).get("duration"))
    except (TypeError, ValueError):
        return None


def bits_per_pixel(stream: dict, info: dict) -> float | None:
    """Bits per pixel per frame of a video stream (its bit rate, else the whole file's)."""
    try:
        rate = float(stream.get("bit_rate") or info.get("format", {}).get("bit_rate"))
        fps = float(Fraction(stream.get("avg_frame_rate") or stream.get("r_frame_rate") or "0/1"))
        pixels = int(stream["width"]) * int(stream["height"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return rate / (pixels * fps) if pixels and fps else None


def _reason_to_keep(info: dict, media_format: str, paired: bool, policy: VideoPolicy) -> str | None:
    tags = {k.lower() for k in info.get("format", {}).get("tags", {})}
    if paired or LIVE_PHOTO_KEY in tags:
        return "Live Photo video left untouched so the pair still links"
    videos = _video_streams(info)
    if not videos:
        return "no video stream"
    if len(videos) > 1:
        return f"{len(videos)} video streams"
    if media_format not in CONTAINERS:
        return f"{media_format or 'this'} container is not re-encoded"
    stream = videos[0]
    codec = stream.get("codec_name") or "unknown"
    if codec in EFFICIENT_CODECS:
        return f"{codec.upper()} is already efficient"
    if stream.get("pix_fmt") not in REENCODED_PIXEL_FORMATS:
        return f"pixel format {stream.get('pix_fmt')} is kept (only 8-bit 4:2:0 is re-encoded)"
    if _duration(info) is None:
        return "the source has no duration to check an output against"
    bpp = bits_per_pixel(stream, info)
    if bpp is None:
        return "unknown bit rate"
    if bpp < policy.min_bits_per_pixel:
        return f"{codec} at {bpp:.3f} bits per pixel is already lean (< {policy.min_bits_per_pixel:g})"
    return None


def transcode_command(source: Path, output: Path, muxer: str, policy: VideoPolicy, *, apple_tags: bool) -> list[str]:
    """The ffmpeg command line (built with ffmpeg-python)."""
    # The decoder gets the encoder's threads too: left to itself it starts a frame thread per core, each holding
    # frames (about 20 MB at 1080p), and decoding gives the same pixels whatever its threads.
    threads = {"threads": policy.threads} if policy.threads else {}
    stream = ffmpeg.input(f"file:{source}", noautorotate=None, **threads)
    options: dict[str, object] = {
        "c": "copy", "c:v:0": ENCODERS[policy.codec], "crf": policy.crf, "preset": policy.preset,
        "map_metadata": 0, "f": muxer,
    }
    if policy.codec == "hevc":
        options["tag:v:0"] = "hvc1"  # what Apple players expect for HEVC in MP4/MOV
    if apple_tags:
        options["movflags"] = "use_metadata_tags"  # keep com.apple.quicktime.* keys
    options.update(threads)
    options.update(_ENCODER_SSIM_OPTION[policy.codec])
    if policy.codec == "h264":
        options["rc-lookahead"] = X264_LOOKAHEAD_FRAMES
    out = ffmpeg.output(stream["v:0"], stream["a?"], stream["s?"], stream["d?"], f"file:{output}", **options)
    # Info level for the encoder's SSIM line at the end; -nostats keeps the progress lines out.
    return out.global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "info").overwrite_output().compile(
        cmd=ffmpeg_path() or "ffmpeg")


def _rotation(stream: dict) -> object:
    return next((d.get("rotation") for d in stream.get("side_data_list", []) if "rotation" in d), None)


def _lost_stream_metadata(source_info: dict, info: dict) -> list[str]:
    """What the output's streams lost of the source's: a tag (language, dates, titles...) or the rotation."""
    def by_kind(streams: list[dict]) -> list[dict]:
        return sorted(streams, key=lambda s: str(s.get("codec_type")))

    lost = []
    for before, after in zip(by_kind(source_info.get("streams", [])), by_kind(info.get("streams", [])), strict=False):
        kind = before.get("codec_type")
        tags, kept_tags = before.get("tags", {}), after.get("tags", {})
        lost += [f"{kind} {key}" for key, value in tags.items()
                 if key not in _STREAM_MUXER_TAGS and kept_tags.get(key) != value]
        if _rotation(before) != _rotation(after):
            lost.append(f"{kind} rotation")
    return lost


def _check(source_info: dict, boxes: MetadataBoxes, output: Path, size_before: int, policy: VideoPolicy
           ) -> tuple[str | None, int]:
    """Why the output must not replace the source (None: accepted), and its size."""
    try:
        info = probe(output)
    except ProbeError as error:
        return f"the output does not probe ({error.reason})", 0
    expected, got = _duration(source_info), _duration(info)
    if got is None or expected is None or abs(got - expected) > DURATION_TOLERANCE_S:
        return f"the output lasts {got} s instead of {expected} s", 0
    if _stream_kinds(info) != _stream_kinds(source_info):
        return f"the output has streams {_stream_kinds(info)} instead of {_stream_kinds(source_info)}", 0
    source_tags = source_info.get("format", {}).get("tags", {})
    output_tags = info.get("format", {}).get("tags", {})
    lost = sorted(k for k, v in source_tags.items() if k not in _MUXER_TAGS and output_tags.get(k) != v)
    lost += _lost_stream_metadata(source_info, info)
    if missing := lost_boxes(boxes, output):
        lost.append(missing)
    if lost:
        return f"the output would lose metadata ({', '.join(lost)})", 0
    size = output.stat().st_size
    saved = saving(size_before, size)
    if saved < policy.min_saving_percent:
        return f"the transcode {too_little(saved)} (< {policy.min_saving_percent:g}% saved)", size
    return None, size


def frame_ssim(source: Path, output: Path, timeout: float, threads: int = 0) -> float | None:
    """Mean luma SSIM of the output's video against the source's on every SSIM_FRAME_STEP-th frame; None when ffmpeg
    cannot tell (then the transcode is not accepted). Both are decoded the same way (rotation included)."""
    def sampled(path: Path) -> ffmpeg.nodes.FilterableStream:
        decoded = ffmpeg.input(f"file:{path}", **({"threads": threads} if threads else {}))["v:0"]
        return decoded.filter("framestep", SSIM_FRAME_STEP).filter("setpts", "PTS-STARTPTS")

    command = (ffmpeg.filter([sampled(output), sampled(source)], "ssim").output("-", f="null")
               .global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
                            *(("-filter_threads", str(threads)) if threads else ()))
               .compile(cmd=ffmpeg_path() or "ffmpeg"))
    try:
        done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    found = _SSIM_LINE.findall(done.stderr) if done.returncode == 0 else []
    return float(found[-1]) if found else None


def compress_video(source: Path, media_format: str, target_stem: Path, policy: VideoPolicy, *,
                   paired: bool = False) -> Compressed:
    """Decide for one video; an accepted output is renamed to `target_stem` + the source's extension."""
    size = source.stat().st_size
    fmt = (media_format or "").lower()
    if ffmpeg_path() is None:
        return kept(size, "no ffmpeg available")
    try:
        info = probe(source)
    except ProbeError as error:
        return kept(size, f"cannot probe the video ({error.reason})")
    if reason := _reason_to_keep(info, fmt, paired, policy):
        return kept(size, reason)
    try:
        boxes = metadata_boxes(source)
    except ValueError as error:
        return kept(size, f"the source's boxes cannot all be walked ({error}), so its metadata could not be carried")
    target = target_stem.with_suffix(source.suffix.lower() or f".{fmt}")
    temp = target.parent / f"{TEMP_PREFIX}{target.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    apple_tags = any(k.lower().startswith("com.apple.") for k in info.get("format", {}).get("tags", {}))
    command = transcode_command(source, temp, CONTAINERS[fmt], policy, apple_tags=apple_tags)
    duration = _duration(info) or 0.0
    try:
        done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, check=False,
                              timeout=max(120.0, duration * 30))
        if done.returncode != 0:
            message = " ".join(done.stderr.decode("utf-8", "replace").split())[-200:]
            return kept(size, f"ffmpeg failed ({message or f'exit code {done.returncode}'})")
        carry_metadata(boxes, temp)
        reason, after = _check(info, boxes, temp, size, policy)
        if reason:
            return kept(size, reason)
        measured = _ENCODER_SSIM_LINE.findall(done.stderr)
        quality = (float(measured[-1]) if measured else
                   frame_ssim(source, temp, timeout=max(120.0, duration * 30), threads=policy.threads))
        if quality is None:
            return kept(size, "the output's quality could not be measured (ffmpeg's ssim failed)")
        if quality < policy.min_ssim:
            return kept(size, f"the output's SSIM {quality:.4f} is under {policy.min_ssim:g}")
        move_file(temp, target)
    except subprocess.TimeoutExpired:
        return kept(size, "ffmpeg took too long")
    except CannotCarry as error:
        return kept(size, f"the source's metadata cannot be carried into the output: {error.reason}")
    finally:
        temp.unlink(missing_ok=True)
    stream = _video_streams(info)[0]
    saved = saving(size, after)
    return Compressed(action=TRANSCODED, size_before=size, output=target, size_after=after,
                      output_hash=sha256_file(target), quality=quality,
                      decision=f"transcoded {stream.get('codec_name')} to {policy.codec} CRF {policy.crf} "
                               f"({policy.preset}): {saved:.1f}% smaller, SSIM {quality:.4f}")
