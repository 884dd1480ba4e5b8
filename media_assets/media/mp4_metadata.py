"""The metadata boxes of an MP4/MOV that ffmpeg does not carry through a transcode, carried byte for byte.

ffmpeg's muxer rewrites the container from the tags it understands: a transcode loses Adobe's XMP (the top-level
`uuid` box, and QuickTime's `XMP_` atom in `moov/udta`), unknown `udta` atoms (vendor data, GPS written in a form
it does not parse) and anything else it has no tag for. So after the transcode the source's boxes are copied
into the output as they are: every top-level `uuid` box, every child of `moov/udta` (the source's own version of
an atom replaces ffmpeg's rewrite of it) and `moov/meta` (Apple's `mdta` keys). Only `moov` changes size, and
only when it lies after the media data (ffmpeg writes it last), so no chunk offset moves; otherwise the boxes
cannot be carried and the source is kept. `lost_boxes` is the gate that checks it afterwards.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from media_assets.media.bmff import Box, iter_boxes

#: Adobe's XMP in ISO BMFF: a top-level `uuid` box with this user type.
XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
#: Largest `moov` read into memory (a few MB for an hour of video).
MAX_MOOV_BYTES = 64 * 1024 * 1024


class CannotCarry(Exception):
    """The source's metadata boxes cannot be carried into the output; `.reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _boxes(read: BinaryIO | bytes, start: int, end: int) -> list[Box]:
    """The boxes between `start` and `end` of a file or of a buffer; ValueError when they do not tile it."""
    boxes: list[Box] = []
    pos = start
    for box in iter_boxes(read, start, end):
        if box.end > end:
            raise ValueError(f"the {box.kind.decode('latin-1')!r} box at byte {box.start} runs past its container")
        boxes.append(box)
        pos = box.end
    if pos != end and (isinstance(read, bytes) and read[pos:end].strip(b"\x00")):
        raise ValueError(f"stray bytes at byte {pos}")
    return boxes


@dataclass(frozen=True)
class MetadataBoxes:
    """The boxes a transcode must carry, each byte for byte."""

    uuids: tuple[bytes, ...]
    udta: tuple[bytes, ...]
    meta: bytes | None

    def missing_from(self, other: MetadataBoxes) -> list[str]:
        """Names of this file's boxes that `other` lacks or holds with other bytes."""
        return ([_name(box) for box in self.uuids if box not in other.uuids]
                + [_name(box, "udta/") for box in self.udta if box not in other.udta]
                + (["moov/meta (Apple keys)"] if self.meta and self.meta != other.meta else []))


def _name(box: bytes, parent: str = "") -> str:
    if box[4:8] == b"uuid":
        return "XMP (uuid box)" if box[8:24] == XMP_UUID else f"uuid box {box[8:24].hex()}"
    kind = box[4:8].decode("latin-1")
    return f"{parent}{kind} (XMP)" if kind == "XMP_" else f"{parent}{kind}"


def _read_moov(stream: BinaryIO, size: int) -> tuple[list[Box], Box, bytes]:
    """The top-level boxes of a file, its `moov` and the bytes of that `moov`."""
    top = _boxes(stream, 0, size)
    moov = next((box for box in top if box.kind == b"moov"), None)
    if moov is None:
        raise ValueError("no moov box")
    if moov.end - moov.start > MAX_MOOV_BYTES:
        raise ValueError(f"moov box of {moov.end - moov.start:,} bytes")
    stream.seek(moov.start)
    return top, moov, stream.read(moov.end - moov.start)


def metadata_boxes(path: Path) -> MetadataBoxes:
    """What `carry_metadata` carries, read from `path`; ValueError when its boxes cannot be walked."""
    with path.open("rb") as stream:
        size = path.stat().st_size
        top, moov_box, moov = _read_moov(stream, size)
        uuids = _uuid_boxes(stream, top)
    moov_children = _boxes(moov, moov_box.header, len(moov))
    udta = next((box for box in moov_children if box.kind == b"udta"), None)
    meta = next((box for box in moov_children if box.kind == b"meta"), None)
    return MetadataBoxes(
        uuids=tuple(uuids),
        udta=tuple(moov[c.start:c.end] for c in _boxes(moov, udta.start + udta.header, udta.end)) if udta else (),
        meta=moov[meta.start:meta.end] if meta else None)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def carry_metadata(source: MetadataBoxes, output: Path) -> None:
    """Copy the source's metadata boxes into `output` (see the module's docstring); CannotCarry when they cannot
    be placed without moving the media data."""
    if not (source.uuids or source.udta or source.meta):
        return
    with output.open("r+b") as stream:
        try:
            top, moov_box, moov = _read_moov(stream, output.stat().st_size)
            children = _boxes(moov, moov_box.header, len(moov))
        except ValueError as error:
            raise CannotCarry(f"the output's boxes cannot be walked ({error})") from None
        if any(box.kind == b"mdat" and box.start > moov_box.start for box in top):
            raise CannotCarry("the output's moov box lies before its media data")
        udta = next((box for box in children if box.kind == b"udta"), None)
        own = _boxes(moov, udta.start + udta.header, udta.end) if udta else []
        carried_kinds = {box[4:8] for box in source.udta}
        new_udta = list(source.udta) + [moov[c.start:c.end] for c in own if c.kind not in carried_kinds]
        meta = source.meta or next((moov[c.start:c.end] for c in children if c.kind == b"meta"), None)
        body = b"".join(moov[c.start:c.end] for c in children if c.kind not in (b"udta", b"meta"))
        body += (meta or b"") + (_box(b"udta", b"".join(new_udta)) if new_udta else b"")
        stream.seek(moov_box.end)
        tail = stream.read()
        existing = set(_uuid_boxes(stream, top))
        stream.seek(moov_box.start)
        stream.write(_box(b"moov", body) + tail + b"".join(u for u in source.uuids if u not in existing))
        stream.truncate()


def _uuid_boxes(stream: BinaryIO, top: list[Box]) -> list[bytes]:
    found = []
    for box in top:
        if box.kind == b"uuid":
            stream.seek(box.start)
            found.append(stream.read(box.end - box.start))
    return found


def lost_boxes(source: MetadataBoxes, output: Path) -> str | None:
    """The metadata gate for videos: None when every metadata box of the source is in `output` byte for byte,
    else which are missing."""
    try:
        carried = metadata_boxes(output)
    except ValueError as error:
        return f"its boxes cannot be walked ({error})"
    return ", ".join(source.missing_from(carried)) or None
