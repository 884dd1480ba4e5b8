"""File preparation: stage each file to upload in `bridge/<batch>/` under its original (made safe) name,
with the file id added only when two files of the batch share a name.

The files are staged in chunks (`in_chunks`): one sync of the chunk's copies, then one catalog transaction.

Compression's own output (`compressed/<batch>/`) is renamed into `bridge/`, not copied, and recorded as its
`output_pruned_at` in the same transaction. An original (a file compression kept as it was) is copied rather
than hard-linked or moved: it stays until verified, and the sorted copy must not share its bytes with it, or an
app that edits a photo in `uploaded/` (or one bad sector) would change the original too.

The staged file becomes the kept copy (sorting renames it), so its identity (`storage.copy_identity`) is recorded
as the file's `kept_identity` when its bytes are known: a copy's right after it was written and hashed to the
catalog's checksum; compression's output right after the rename, when it has the size compression recorded
(compression hashed it as it wrote it, in a worker that holds no catalog, and nothing else writes to
`compressed/`). A staged file a killed run left is given none: verification re-hashes it."""

from __future__ import annotations

import functools
from pathlib import Path

from media_assets.catalog.states import FileState
from media_assets.phases.common import Chunk, PhaseContext, PhaseOutcome, in_chunks
from media_assets.storage import copy_atomically, copy_identity, free_target, move_file, safe_name


def prepare_files(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    bridge = ctx.settings.storage_dir("bridge") / ctx.batch_id
    compressed_folder = ctx.settings.storage_dir("compressed")

    def stage(chunk: Chunk) -> None:
        renamed_outputs = chunk.gather(functools.partial(ctx.catalog.mark_pruned, copy="output"))
        for file in chunk:
            source = ctx.path(file.output_path or "")
            target = free_target(bridge, _staged_name(file.original_name, source.suffix), file.id, file.output_hash)
            compressed = file.output_path != file.original_path and source.is_relative_to(compressed_folder)
            identity = None
            if not target.exists():
                identity = _stage(source, target, file.output_hash, file.output_size, renamed=compressed)
                chunk.wrote(target)
            # else: a killed run had staged it already; the catalog catches up now.
            if compressed:  # its bytes live on as the staged copy; `verify --full` must not miss it
                renamed_outputs.append(file.id)
            chunk.move(file, FileState.STAGED, staged_path=ctx.relative(target), kept_identity=identity)
            outcome.files += 1
            outcome.bytes_out += file.output_size or 0

    in_chunks(ctx, ctx.pending(FileState.COMPRESSED), stage)


def _stage(source: Path, target: Path, checksum: str | None, size: int | None, *, renamed: bool) -> str | None:
    """Stage one file; the staged copy's identity when its bytes are known to be those of `checksum`."""
    if renamed:  # compression's own output, not an original: renamed, no second copy
        move_file(source, target, durable=False)
        identity = copy_identity(target)
        return identity if identity is not None and identity.split(":")[1] == str(size) else None
    _size, digest = copy_atomically(source, target, durable=False)
    return copy_identity(target) if digest == checksum else None  # else verification finds and names it


def _staged_name(original_name: str, output_suffix: str) -> str:
    """The original name, with the extension of what compression produced (a HEIC may become a JPEG)."""
    name = safe_name(original_name)
    stem, dot, ext = name.rpartition(".")
    if output_suffix and (not dot or f".{ext}".lower() != output_suffix.lower()):
        return f"{stem if dot else name}{output_suffix}"
    return name
