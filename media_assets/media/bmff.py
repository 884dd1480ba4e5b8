"""ISO base media file format (ISO/IEC 14496-12) box headers, read one way for every module that walks boxes.

HEIF/AVIF photos, CR3 RAWs and MP4/MOV/3GP movies all store their data as nested boxes: a 32-bit size (1: a
64-bit size follows the type, 0: up to the end of the container), a four-letter type, then the body.
`identify.py` walks them to find a truncated HEIF and `mp4_metadata.py` to carry a movie's metadata boxes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO


@dataclass(frozen=True)
class Box:
    """One box: its type, where it starts and ends (offsets in the file or buffer) and its header's length."""

    kind: bytes
    start: int
    end: int
    header: int


def iter_boxes(source: IO[bytes] | bytes, start: int, end: int) -> Iterator[Box]:
    """The boxes one after the other from `start` in a container ending at `end`, of a seekable stream or a
    buffer. A box's end may lie past `end` (the caller decides whether that is truncation or corruption);
    ValueError for a size smaller than the box's own header, struct.error when a header itself is cut off."""
    position = start
    while position + 8 <= end:
        if isinstance(source, bytes):
            head = source[position:position + 16]
        else:
            source.seek(position)
            head = source.read(16)
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", head[8:16])
            header = 16
        elif size == 0:
            size = end - position
        if size < header:
            raise ValueError(f"the {kind.decode('latin-1')!r} box at byte {position} has an impossible size {size}")
        yield Box(kind, position, position + size, header)
        position += size
