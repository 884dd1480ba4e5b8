"""Crafting test files' metadata with libexiv2 (the same library the pipeline reads it with)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import exiv2


def write_tags(path: Path, *, exif: Mapping[str, str] | None = None, xmp: Mapping[str, str] | None = None,
               iptc: Mapping[str, str] | None = None, remove: Iterable[str] = ()) -> Path:
    """Set exiv2 keys (``Exif.Photo.DateTimeOriginal``, ``Xmp.photoshop.DateCreated``, ...) and remove others."""
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    blocks = {"Exif": image.exifData(), "Xmp": image.xmpData(), "Iptc": image.iptcData()}
    for key in remove:
        block = blocks[key.split(".", 1)[0]]
        if key in block:
            del block[key]
    for block, values in ((blocks["Exif"], exif), (blocks["Xmp"], xmp), (blocks["Iptc"], iptc)):
        for key, value in (values or {}).items():
            block[key] = value
    image.writeMetadata()
    return Path(path)
