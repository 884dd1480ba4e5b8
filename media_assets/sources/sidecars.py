"""Sidecars: small files beside a photo that describe it (Apple's .AAE edit recipe, an .xmp from a photo editor,
Google Takeout's .json with the capture time and place). They are no media of their own: they travel with their
photo, and a sidecar whose photo is not there is taken (and judged) like any other file."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from media_assets.media.identify import SIDECAR_EXTENSIONS

#: Takeout names the JSON `<name>.supplemental-metadata.json` and cuts long names, anywhere in that suffix.
_SUPPLEMENTAL = ".supplemental-metadata"
#: Takeout puts a duplicate's counter after the extension: `IMG_1.JPG(1).json` describes `IMG_1(1).JPG`.
_TAKEOUT_COUNTER = re.compile(r"^(?P<stem>.*?)(?P<ext>\.[^.()]+)(?P<counter>\(\d+\))$")
#: Extensions an owner is preferred by when several files share a stem (a Live Photo's still over its movie).
_STILL_EXTENSIONS = (".heic", ".heif", ".jpg", ".jpeg", ".png", ".dng", ".avif", ".webp", ".tif", ".tiff")


def is_sidecar_name(name: str) -> bool:
    return _suffix(name) in SIDECAR_EXTENSIONS


def sidecars_by_owner(names: Iterable[str]) -> dict[str, list[str]]:
    """Among the file names of one folder, each sidecar's owner: {owner name: [sidecar names]}."""
    names = list(names)
    by_name = {n.lower(): n for n in names if not is_sidecar_name(n)}
    by_stem: dict[str, list[str]] = defaultdict(list)
    for name in by_name.values():
        by_stem[_stem(name).lower()].append(name)
    owned: dict[str, list[str]] = defaultdict(list)
    for sidecar in names:
        if is_sidecar_name(sidecar) and (owner := _owner(sidecar, by_name, by_stem)) is not None:
            owned[owner].append(sidecar)
    return dict(owned)


def _owner(sidecar: str, by_name: dict[str, str], by_stem: dict[str, list[str]]) -> str | None:
    base = sidecar[: -len(_suffix(sidecar))]
    for candidate in _takeout_bases(base):
        if candidate.lower() in by_name:  # IMG_1.JPG.json, IMG_1.JPG.xmp
            return by_name[candidate.lower()]
    stem_matches = by_stem.get(base.lower(), [])  # IMG_1.AAE, IMG_1.xmp, IMG_1.json
    if not stem_matches:
        return None
    return min(stem_matches, key=lambda n: (_suffix(n) not in _STILL_EXTENSIONS, n))


def _takeout_bases(base: str) -> list[str]:
    """The names a sidecar's base may stand for: itself, without a (cut) `.supplemental-metadata`, and with
    Takeout's counter moved back before the extension."""
    bases = [base]
    lowered = base.lower()
    for cut in range(len(_SUPPLEMENTAL), 1, -1):
        if lowered.endswith(_SUPPLEMENTAL[:cut]):
            bases.append(base[: -cut])
            break
    for candidate in list(bases):
        m = _TAKEOUT_COUNTER.match(candidate)
        if m:
            bases.append(m["stem"] + m["counter"] + m["ext"])
    return bases


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _stem(name: str) -> str:
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name
