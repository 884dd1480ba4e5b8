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


def write_xmp_sidecar(path: Path, tags: Mapping[str, str]) -> Path:
    """An XMP sidecar as Lightroom and darktable write it beside a photo: the tags (``exif:DateTimeOriginal``,
    ``xmp:CreateDate``, ...) as attributes of one rdf:Description, written as text, not through libexiv2."""
    attributes = "".join(f'\n   {name}="{value}"' for name, value in tags.items())
    Path(path).write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:exif="http://ns.adobe.com/exif/1.0/"\n    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
        f'{attributes}/>\n </rdf:RDF>\n</x:xmpmeta>\n', encoding="utf-8")
    return Path(path)
