"""What compressing one file produced, and how an accepted output reaches `compressed/<batch>/`.

Photo and video compression both answer with a `Compressed`: either an output file (already renamed into
place, atomically) or the reason the original bytes flow on instead. Workers return it to the phase, which
alone writes the catalog.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from media_assets.storage import write_atomically

#: What happened to a file; the phase counts these.
KEPT = "kept_original"
REENCODED = "reencoded"
LOSSLESS = "optimised_losslessly"
TRANSCODED = "transcoded"
DERIVATIVE = "jpeg_derivative"
FAILED = "compression_failed"


@dataclass(frozen=True)
class Compressed:
    """The decision for one file. `output` is None when the original flows on; `decision` says why."""

    action: str
    decision: str
    size_before: int
    output: Path | None = None
    size_after: int | None = None
    output_hash: str | None = None
    quality: float | None = None  # SSIM against the original; 1.0 for lossless outputs


def kept(size_before: int, reason: str, *, action: str = KEPT) -> Compressed:
    return Compressed(action=action, decision=f"kept original: {reason}", size_before=size_before)


def saving(before: int, after: int) -> float:
    """Percentage of `before` saved by `after` (negative when it grew)."""
    return 100.0 * (before - after) / before if before else 0.0


def too_little(saved: float) -> str:
    """Why an output was not worth keeping, in words: "saved only 0.4%", or "grew by 15.0%" (not "saved -15.0%")."""
    return f"saved only {saved:.1f}%" if saved >= 0 else f"grew by {-saved:.1f}%"


def publish(data: bytes, target: Path, *, action: str, decision: str, size_before: int,
            quality: float | None) -> Compressed:
    """Write an accepted output through a temp name and rename it into place."""
    size, digest = write_atomically(io.BytesIO(data), target)
    return Compressed(action=action, decision=decision, size_before=size_before, output=target, size_after=size,
                      output_hash=digest, quality=quality)
