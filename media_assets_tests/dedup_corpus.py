"""A generated library for measuring deduplication: true copies and look-alikes that must stay apart.

Shared by the accuracy tests (small pictures) and `benchmarks/dedup.py` (12 MP). For every original photo
(a camera-like textured JPEG with EXIF and a 160x120 EXIF thumbnail) it writes the copies a family library
accumulates: resized to 50 % and 25 %, re-compressed at quality 70, converted to PNG and to HEIC (with the
320 px thumbnail phones embed); the q70 and 50 % copies keep the original's EXIF and thumbnail, the 25 % one
has no EXIF, like a messenger's. Beside them, pictures that are similar but *not* copies: burst-like frames
(the camera moves ~1 % between frames, a subject moves, fresh sensor grain), a re-cropped edit of an original
that kept the original's EXIF and so its now stale thumbnail, and several shots of one flat scene (camera
shots, with thumbnails). Each file's `group` names the picture it shows: two files are true duplicates exactly
when their groups are equal.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from media_assets.media.sample_library import build_exif, textured_image, write_bytes_if_changed

COPY_KINDS = ("resized50", "resized25", "q70", "png", "heic")


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    group: str  # the picture shown; equal groups = true duplicates
    kind: str  # original, one of COPY_KINDS, burst, crop, flat


def _jpeg(image: Image.Image, quality: int, exif: Image.Exif | bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    raw = exif.tobytes() if isinstance(exif, Image.Exif) else exif
    image.save(buffer, format="JPEG", quality=quality, **({"exif": raw} if raw else {}))
    return buffer.getvalue()


def exif_with_thumbnail(exif: Image.Exif, thumbnail_of: Image.Image, size: tuple[int, int] = (160, 120)) -> bytes:
    """EXIF bytes (APP1 payload) with a JPEG thumbnail in IFD1, as cameras write them (Pillow writes no IFD1):
    IFD0's next-IFD pointer is set to an IFD1 appended at the end, followed by the thumbnail's bytes."""
    small = io.BytesIO()
    thumb = thumbnail_of.copy()
    thumb.thumbnail(size, Image.Resampling.BOX)
    thumb.save(small, format="JPEG", quality=80)
    data = small.getvalue()
    tiff = bytearray(exif.tobytes()[6:])
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, ifd0)
    tiff += b"\x00" * (len(tiff) % 2)
    ifd1 = len(tiff)
    struct.pack_into(order + "I", tiff, ifd0 + 2 + 12 * count, ifd1)
    entries = [(0x0103, 3, 1, struct.pack(order + "HH", 6, 0)),  # Compression: JPEG
               (0x0201, 4, 1, struct.pack(order + "I", ifd1 + 2 + 12 * 3 + 4)),  # where the thumbnail starts
               (0x0202, 4, 1, struct.pack(order + "I", len(data)))]
    tiff += struct.pack(order + "H", len(entries))
    for tag, kind, n, value in entries:
        tiff += struct.pack(order + "HHI", tag, kind, n) + value
    tiff += struct.pack(order + "I", 0) + data
    return b"Exif\x00\x00" + bytes(tiff)


def heic_bytes(image: Image.Image, exif: Image.Exif | None = None) -> bytes:
    """HEIC as a phone writes it, with an embedded 320 px thumbnail (quality 50 keeps encoding bearable)."""
    from media_assets.media.dates import register_heif

    register_heif()
    buffer = io.BytesIO()
    params = {"exif": exif.tobytes()} if exif else {}
    image.save(buffer, format="HEIF", quality=50, thumbnails=[320], **params)
    return buffer.getvalue()


def _grain(image: Image.Image, rng: np.random.Generator, amount: float = 4.0) -> Image.Image:
    pixels = np.asarray(image, np.float32)
    noise = rng.standard_normal(pixels.shape[:2] + (1,), dtype=np.float32) * amount
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def copies_of(original: Image.Image, exif: Image.Exif, kinds: tuple[str, ...] = COPY_KINDS,
              camera_exif: bytes | None = None) -> dict[str, bytes]:
    """The encoded copies of one photo, by kind; the JPEG copies keep `camera_exif` (with its thumbnail) when
    given, as most editors do, except the 25 % one (a messenger's copy carries no EXIF)."""
    kept = camera_exif or exif
    w, h = original.size
    made: dict[str, bytes] = {}
    for kind in kinds:
        if kind == "resized50":
            made[kind] = _jpeg(original.resize((w // 2, h // 2), Image.Resampling.LANCZOS), 85, kept)
        elif kind == "resized25":
            made[kind] = _jpeg(original.resize((w // 4, h // 4), Image.Resampling.LANCZOS), 85)
        elif kind == "q70":
            made[kind] = _jpeg(original, 70, kept)
        elif kind == "png":
            buffer = io.BytesIO()
            original.save(buffer, format="PNG", compress_level=1)
            made[kind] = buffer.getvalue()
        elif kind == "heic":
            made[kind] = heic_bytes(original, exif)
        else:
            raise ValueError(kind)
    return made


def burst_frames(size: tuple[int, int], seed: int, frames: int = 3) -> list[Image.Image]:
    """Frames of one burst: the camera drifts ~1 % of the width per frame and a subject moves across."""
    w, h = size
    margin = max(8, w // 25)
    scene = textured_image((w + 2 * margin, h + 2 * margin), seed)
    rng = np.random.default_rng(seed + 1_000_000)
    shots = []
    for k in range(frames):
        dx, dy = margin + k * max(2, w // 100), margin + k * max(1, h // 150)
        frame = scene.crop((dx - margin // 2, dy - margin // 2, dx - margin // 2 + w, dy - margin // 2 + h)).copy()
        draw = ImageDraw.Draw(frame)
        x = w // 4 + k * w // 20
        draw.ellipse((x, h // 3, x + w // 8, h // 3 + h // 6), fill=(200, 60, 40))
        shots.append(_grain(frame, rng))
    return shots


def flat_shots(size: tuple[int, int], seed: int, shots: int = 3) -> list[Image.Image]:
    """Shots of one flat scene (a sky, a wall): only broad shading, each with its own grain and framing."""
    w, h = size
    scene = textured_image((16, 12), seed).resize((w + 40, h + 30), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(seed + 2_000_000)
    return [_grain(scene.crop((k * 7, k * 5, k * 7 + w, k * 5 + h)), rng, 3.0) for k in range(shots)]


def write_corpus(folder: Path, *, size: tuple[int, int], originals: int, bursts: int, flats: int,
                 copy_kinds: tuple[str, ...] = COPY_KINDS, seed: int = 0) -> list[CorpusFile]:
    """Write the corpus under `folder` and describe it. Pictures whose files are all there already are not
    generated again (12 MP corpora take minutes), so a folder is a cache as long as the arguments stay."""
    folder = Path(folder)
    files: list[CorpusFile] = []
    start = datetime(2023, 6, 1, 9, 0, 0)

    def add(entries: list[tuple[str, str, str]], make: Callable[[], list[bytes]]) -> None:
        """(name, group, kind) of the files of one picture, and how to encode them if any is missing."""
        paths = [folder / name for name, _, _ in entries]
        if not all(p.exists() for p in paths):
            for path, data in zip(paths, make(), strict=True):
                write_bytes_if_changed(path, data)
        files.extend(CorpusFile(path, group, kind) for path, (_, group, kind) in zip(paths, entries, strict=True))

    for n in range(originals):
        taken = start + timedelta(hours=n)
        group = f"photo{n}"
        entries = [(f"camera/IMG_{n:04d}.jpg", group, "original")]
        entries += [(f"copies/{kind}/IMG_{n:04d}-{kind}.{_SUFFIX.get(kind, 'jpg')}", group, kind)
                    for kind in copy_kinds]
        if n % 3 == 0:  # an edit with a tighter crop, scaled back to the same size: another picture
            entries.append((f"edits/IMG_{n:04d}-crop.jpg", f"{group}-crop", "crop"))
        add(entries, partial(_photo_and_copies, size, seed + n, taken, copy_kinds, n % 3 == 0))
    for b in range(bursts):
        add([(f"bursts/BURST{b:03d}_{k}.jpg", f"burst{b}-{k}", "burst") for k in range(3)],
            partial(_camera_jpegs, burst_frames, size, seed + 10_000 + b))
    for f in range(flats):
        add([(f"flat/FLAT{f:03d}_{k}.jpg", f"flat{f}-{k}", "flat") for k in range(3)],
            partial(_camera_jpegs, flat_shots, size, seed + 20_000 + f))
    return files


_SUFFIX = {"png": "png", "heic": "heic"}


def _camera_jpegs(pictures: Callable[[tuple[int, int], int], list[Image.Image]], size: tuple[int, int],
                  seed: int) -> list[bytes]:
    """The camera's JPEGs of the pictures made from (size, seed): a burst's frames, a flat scene's shots."""
    return [_camera_jpeg(picture) for picture in pictures(size, seed)]


def _camera_jpeg(image: Image.Image, exif: Image.Exif | None = None) -> bytes:
    """A camera's JPEG: quality 92, EXIF with the picture's thumbnail."""
    return _jpeg(image, 92, exif_with_thumbnail(exif or build_exif(make="Google", model="Pixel 7"), image))


def _photo_and_copies(size: tuple[int, int], seed: int, taken: datetime, kinds: tuple[str, ...],
                      with_crop: bool) -> list[bytes]:
    image = textured_image(size, seed)
    exif = build_exif(taken=taken, offset="+02:00", make="Google", model="Pixel 7")
    camera_exif = exif_with_thumbnail(exif, image)
    encoded = [_jpeg(image, 92, camera_exif), *copies_of(image, exif, kinds, camera_exif).values()]
    if with_crop:  # the editor kept the original's EXIF, thumbnail included
        w, h = size
        crop = image.crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize(size, Image.Resampling.LANCZOS)
        encoded.append(_jpeg(crop, 92, camera_exif))
    return encoded


@dataclass(frozen=True)
class Accuracy:
    true_copies: int
    found: int
    false_duplicates: int

    @property
    def recall(self) -> float:
        return self.found / self.true_copies if self.true_copies else 1.0

    @property
    def precision(self) -> float:
        flagged = self.found + self.false_duplicates
        return self.found / flagged if flagged else 1.0


def score(files: list[CorpusFile], duplicates: dict[Path, Path]) -> dict[str, Accuracy]:
    """Per kind (and "all"): copies found, and duplicates whose keeper shows another picture.

    `duplicates` maps a file flagged as duplicate to its keeper's path."""
    group_of = {f.path.resolve(): f.group for f in files}
    groups: dict[str, int] = {}
    for f in files:
        groups[f.group] = groups.get(f.group, 0) + 1
    by_kind: dict[str, list[int]] = {}
    for f in files:
        keeper = duplicates.get(f.path.resolve())
        copies_in_group = groups[f.group] > 1
        row = by_kind.setdefault(f.kind, [0, 0, 0])
        if copies_in_group and f.kind != "original":
            row[0] += 1
        if keeper is not None:
            if group_of.get(keeper.resolve()) == f.group:
                row[1] += 1
            else:
                row[2] += 1
    result = {kind: Accuracy(*v) for kind, v in sorted(by_kind.items())}
    # Every group of n files holds n - 1 copies, whichever of them is kept.
    result["all"] = Accuracy(sum(n - 1 for n in groups.values()), sum(v[1] for v in by_kind.values()),
                             sum(v[2] for v in by_kind.values()))
    return result
