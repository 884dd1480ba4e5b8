"""Estimate the quality a JPEG was saved at from its quantisation tables.

Re-encoding pays only when the source was saved clearly above the target quality (a q85 source re-encoded at
q85 gains nothing and loses detail; a q75 one grows). Most encoders (libjpeg, libjpeg-turbo, Pillow, phones)
scale the IJG example tables of the JPEG standard (Annex K) by a quality factor, so the quality whose scaled
tables come closest to the file's tables is a good estimate; cameras with their own tables get the nearest
equivalent. Pillow gives the tables in natural (row-major) order, as are the tables below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Annex K.1 luminance table, natural order.
IJG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
#: Annex K.2 chrominance table, natural order.
IJG_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
)


def scaled_table(base: Sequence[int], quality: int) -> list[int]:
    """The table libjpeg's `jpeg_set_quality(quality)` derives from `base` (baseline: values 1..255)."""
    quality = min(max(quality, 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(max((value * scale + 50) // 100, 1), 255) for value in base]


#: Every quality's luminance and chrominance tables side by side, one row per quality 1..100.
_SCALED = np.array([scaled_table(IJG_LUMA, q) + scaled_table(IJG_CHROMA, q) for q in range(1, 101)], dtype=np.int32)


def estimate_quality(tables: Mapping[int, Sequence[int]]) -> int | None:
    """The IJG quality (1-100) whose tables are nearest to `tables` (Pillow's `img.quantization`).

    Table 0 is compared with the luminance table and table 1, when present, with the chrominance table; the
    distance is the summed absolute difference. None when the file has no usable table."""
    luma = tables.get(0)
    if luma is None or len(luma) != 64:
        return None
    chroma = tables.get(1)
    if chroma is not None and len(chroma) == 64:
        distances = np.abs(_SCALED - np.array([*luma, *chroma], dtype=np.int32)).sum(axis=1)
    else:
        distances = np.abs(_SCALED[:, :64] - np.array(luma, dtype=np.int32)).sum(axis=1)
    # Ties (e.g. all-ones tables from q98 to q100) go to the lower quality: the conservative reading.
    return int(np.argmin(distances)) + 1
