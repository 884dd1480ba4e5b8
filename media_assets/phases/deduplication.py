"""Deduplication: exact copies (same bytes) and near copies (resized, re-compressed, converted) of what the
catalog already keeps or of another file in the batch are recorded as duplicates of one keeper and stop
flowing; nothing is ever deleted from a source.

How it decides, conservatively (a false duplicate loses a memory, a missed one only costs space):
- exact: same size and SHA-256 as a kept file of any batch, or as an earlier file of this batch;
- near: pHash within DEDUP_NEAR_RADIUS bits *and* confirmed by the detail signature of both files' real pixels
  (media/perceptual.py), both taken of the picture as displayed (EXIF orientation applied), same kind of media and
  the same aspect ratio either way round (a re-crop is a different picture), never within one burst, never two
  videos with different numbers of audio streams (so a keeper never has fewer than its copies). A JPEG's
  pHash comes from its EXIF thumbnail when it has one, so its signature is computed only when a candidate needs
  confirming (for a kept file of an earlier batch: from its original in MEDIA_ROOT);
- groups, not chains: each file is compared with its group's keeper directly, so a drift of similar frames
  never strings different photos together;
- keeper inside a batch: a file that holds more than its picture (Motion Photo video, MPF gain/depth maps, HEIC
  auxiliary images; never dropped for one that does not, nor for a kept file of an earlier batch), then highest
  resolution, then an original format over a conversion (PNG/WebP/...), then the richest EXIF, then the most
  original-looking name (not "Copy of", " copy", "(1)", "-1", "_2"), then the earliest seen. Among exact copies
  (same bytes) the most original-looking name is the keeper, whatever order the folders were walked in. A kept
  file of an earlier batch stays the keeper (it may already be uploaded); a new copy with *more pixels* than it
  flows on as well instead of being dropped;
- Live Photo (still + MOV) and RAW+JPEG pairs of this batch are one asset: unless every member of a pair is a
  duplicate, all of them flow on.

Fingerprints, and then the candidates' signatures, are computed in one process pool (EXIF thumbnails and reduced
decodes, see media/perceptual.py); the parent alone writes to the catalog, one transaction per decision, and logs
a progress line every DEDUP_PROGRESS_EVERY files.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from media_assets.catalog.files import CatalogFingerprint, DedupDecision, FingerprintColumns
from media_assets.catalog.locks import DEDUPLICATION, AdvisoryLock
from media_assets.catalog.repository import Catalog, MediaFile
from media_assets.catalog.states import FileState
from media_assets.media.near_index import NearIndex
from media_assets.media.perceptual import Fingerprint, fingerprint, pixel_signature, same_picture
from media_assets.phases.common import PhaseContext, PhaseOutcome, Progress
from media_assets.phases.workers import Workers
from media_assets.selection import pair_stem
from media_assets.settings import DedupSettings, Settings

#: Default pHash radius: copies measured 0-4 bits apart (resized to 25 %, q70, PNG, HEIC thumbnail), and the
#: multi-index search stays at one probe per chunk value up to 7. The signature check does the separating.
DEFAULT_NEAR_RADIUS: int = DedupSettings.model_fields["near_radius"].default
#: Formats that are usually conversions or screenshots rather than a camera's original.
DERIVATIVE_FORMATS = frozenset({"png", "webp", "gif", "bmp", "tiff"})
#: Aspect ratios may differ this much (rounding of resized copies) and still be the same framing.
ASPECT_TOLERANCE = 0.02
#: A Live Photo's still and movie carry capture times this close when both are known.
LIVE_PHOTO_SECONDS = 3
INDEX_PAGE = 100_000
#: Fewer files than this per worker are fingerprinted in the parent: starting a pool would cost more.
POOL_MIN_FILES_PER_WORKER = 8
#: Jobs in flight per worker. A job is a path and its answer a few KB, and files differ a thousandfold in cost (a
#: JPEG's EXIF thumbnail: 1 ms; a HEIC without one, or a video: ~0.5 s): with four in flight, the results waited
#: for in order held the other workers idle behind one HEIC.
FINGERPRINTS_IN_FLIGHT_PER_WORKER = 64
#: Decisions recorded in one catalog transaction (one per file cost a WAL flush each: ~1 ms a file, measured).
DECISIONS_PER_TRANSACTION = 500

#: Signatures of some files' real pixels, by file id (None: undecodable, never confirmed).
Signer = Callable[[list[MediaFile]], dict[int, bytes | None]]


@dataclass(frozen=True)
class DedupConfig:
    radius: int
    workers: int
    progress_every: int

    @classmethod
    def from_settings(cls, settings: Settings) -> DedupConfig:
        dedup = settings.dedup
        return cls(radius=dedup.near_radius, workers=dedup.workers, progress_every=dedup.progress_every)


@dataclass
class Item:
    """A file of this batch being decided."""

    file: MediaFile
    fingerprint: Fingerprint
    pair_key: str | None = None


@dataclass(frozen=True)
class Decision:
    keeper_id: int | None = None  # None: the file is kept
    kind: str = "exact"
    distance: int = 0
    detail: str | None = None


# --- fingerprints (worker side: the jobs are perceptual.py's own functions, so a worker imports no catalog) --


def pixel_signer(workers: Workers, media_root: Path) -> Signer:
    """Signs files from their real pixels, in the workers: from the original under `media_root`, or from the
    kept copy once a verified batch's original was pruned (KEEP_ORIGINALS)."""
    def readable(file: MediaFile) -> Path:
        original = media_root / (file.original_path or "")
        return original if original.is_file() or not file.sorted_path else media_root / file.sorted_path

    def sign(files: list[MediaFile]) -> dict[int, bytes | None]:
        return dict(workers.map(pixel_signature, ((f.id, (readable(f),)) for f in files),
                                name=lambda file_id: f"file {file_id}"))
    return sign


def fingerprints(ctx: PhaseContext, config: DedupConfig, total: int,
                 workers: Workers) -> Iterator[tuple[MediaFile, Fingerprint]]:
    """The batch's downloaded files with their fingerprints, in id order, with a progress line in the log."""
    files = ctx.catalog.iter_files(ctx.batch_id, FileState.DOWNLOADED)
    tasks = ((file, (ctx.path(file.original_path or ""), file.media_type)) for file in files)
    started = time.perf_counter()
    ctx.progress.expect(total)
    for done, (file, result) in enumerate(workers.map(fingerprint, tasks, name=lambda f: f.original_name),
                                          start=1):
        ctx.progress.advance()
        if done % config.progress_every == 0 or done == total:
            rate = done / max(time.perf_counter() - started, 1e-9)
            ctx.log.info(f"deduplication: fingerprinted {done}/{total} files ({rate:.0f} files/s)")
        yield file, result


# --- pairs ----------------------------------------------------------------------------------------------


def assign_pairs(items: list[Item]) -> None:
    """Give Live Photo (still + movie) and RAW+JPEG files of this batch a shared `pair_key`: same source folder
    and base name (and capture times within seconds when both are known), or the same Apple content id."""
    by_name: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    for item in items:
        folder = str(Path(item.file.source_id).parent) if "/" in item.file.source_id else ""
        by_name[(item.file.source, folder, pair_stem(item.file.original_name))].append(item)
    for (source, folder, stem), group in by_name.items():
        if len(group) < 2:
            continue
        stills = [i for i in group if i.file.media_type == "photo" and not _is_raw(i.file)]
        movies = [i for i in group if i.file.media_type == "video"]
        raws = [i for i in group if _is_raw(i.file)]
        members = [*raws, *stills] if raws and stills else []
        if stills and movies and _close_in_time(stills + movies):
            members += [i for i in stills + movies if i not in members]
        for item in members:
            item.pair_key = f"{source}:{folder}:{stem}"
    by_identifier: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        if item.fingerprint.content_identifier:
            by_identifier[item.fingerprint.content_identifier].append(item)
    for identifier, group in by_identifier.items():
        if len({i.file.media_type for i in group}) > 1:
            key = next((i.pair_key for i in group if i.pair_key), f"apple:{identifier}")
            for item in group:
                item.pair_key = key


def _is_raw(file: MediaFile) -> bool:
    """RAW photos are accepted without decoding, so identify records no size for them."""
    return file.media_type == "photo" and file.width is None


def _close_in_time(items: list[Item]) -> bool:
    times = [i.file.captured_at for i in items if i.file.captured_at is not None]
    return len(times) < 2 or (max(times) - min(times)).total_seconds() <= LIVE_PHOTO_SECONDS


# --- deciding -------------------------------------------------------------------------------------------


def _rank(item: Item) -> tuple[int, int, int, int, int, int]:
    """Sort key of the keeper policy: holds more than its picture, more pixels, original format, richer metadata,
    the most original-looking name, seen earlier."""
    file = item.file
    pixels = (file.width or 0) * (file.height or 0)
    return (int(item.fingerprint.extras is None), -pixels, int((file.media_format or "") in DERIVATIVE_FORMATS),
            -item.fingerprint.metadata_tags, copy_marks(file.original_name), file.id)


#: What copying adds to a name: "Copy of x", "x copy", "x copy 2", "x - Copy", "x - Copy (2)", "x (1)", "x(1)",
#: "x-1", "x_2", "x~1".
_COPY_MARKS = (re.compile(r"^copy[ _]of[ _]", re.IGNORECASE),
               re.compile(r"\s*-\s*copy(\s*\(\d+\))?$", re.IGNORECASE),
               re.compile(r"\s+copy(\s+\d+)?$", re.IGNORECASE), re.compile(r"\s*\(\d+\)$"),
               re.compile(r"[-_~]\d{1,2}$"))


def copy_marks(name: str) -> int:
    """How many copy marks a name carries (fewer: more original-looking). Counted by stripping them one by
    one, so "IMG_1 (1) copy" has two; a name's own digits ("2016-05-07") count alike in every copy of it."""
    stem = Path(name).stem
    marks = 0
    while True:
        for mark in _COPY_MARKS:
            stripped = mark.sub("", stem, count=1)
            if stripped != stem and stripped:
                stem, marks = stripped, marks + 1
                break
        else:
            return marks


def _same_framing(a: tuple[int | None, int | None], b: tuple[int | None, int | None]) -> bool:
    """Same aspect ratio, either way round: the catalog keeps sizes as stored, and a copy stored turned a
    quarter with EXIF orientation 5-8 shows the same picture (fingerprints are taken upright, so they decide)."""
    (wa, ha), (wb, hb) = a, b
    if not (wa and ha and wb and hb):
        return False
    return any(abs(wa * y - x * ha) <= ASPECT_TOLERANCE * max(wa * y, x * ha) for x, y in ((wb, hb), (hb, wb)))


def _comparable(item: Item, other: CatalogFingerprint) -> bool:
    """The cheap conditions of a near duplicate, checked before any signature is computed."""
    if other["media_type"] != item.file.media_type:
        return False
    if item.fingerprint.burst_id and other["burst_id"] == item.fingerprint.burst_id:
        return False  # frames of one burst are similar, never duplicates
    return _same_framing((item.file.width, item.file.height), (other["width"], other["height"]))


def _item_columns(item: Item) -> CatalogFingerprint:
    """An item of this batch seen as a candidate, with the columns _comparable and the confirmation read."""
    return CatalogFingerprint(
        id=item.file.id, media_type=item.file.media_type, width=item.file.width, height=item.file.height,
        phash=item.fingerprint.phash, similarity=item.fingerprint.similarity, burst_id=item.fingerprint.burst_id,
        content_identifier=item.fingerprint.content_identifier, pair_key=item.pair_key)


def _columns(item: Item) -> FingerprintColumns:
    return {"phash": item.fingerprint.phash, "similarity": item.fingerprint.similarity, "pair_key": item.pair_key,
            "content_identifier": item.fingerprint.content_identifier, "burst_id": item.fingerprint.burst_id}


def load_catalog_index(catalog: Catalog, radius: int) -> NearIndex:
    """The kept files' pHashes, read in pages into two numpy arrays (16 bytes a file, no pixels)."""
    ids: list[np.ndarray] = []
    hashes: list[np.ndarray] = []
    last = 0
    while page := catalog.kept_phashes(last, INDEX_PAGE):
        ids.append(np.fromiter((i for i, _ in page), np.int64, len(page)))
        hashes.append(np.fromiter((h for _, h in page), np.int64, len(page)))
        last = page[-1][0]
    if not ids:
        return NearIndex(np.empty(0, np.int64), np.empty(0, np.int64), radius)
    return NearIndex(np.concatenate(ids), np.concatenate(hashes), radius)


def decide(catalog: Catalog, items: list[Item], radius: int, sign: Signer) -> dict[int, Decision]:
    """Decision per file id (see the module docstring for the rules). `sign` gives the real pixels' signatures
    of the candidates whose pHash came from an EXIF thumbnail."""
    decisions: dict[int, Decision] = {}
    # Exact: one representative per set of identical bytes; the others follow it.
    by_bytes: dict[tuple[int, str], list[Item]] = defaultdict(list)
    for item in items:
        by_bytes[(item.file.size_bytes or 0, item.file.content_hash or f"missing-{item.file.id}")].append(item)
    representatives: list[Item] = []
    followers: dict[int, list[Item]] = {}
    for (size, digest), group in by_bytes.items():
        # A member of a pair keeps its bytes; then the most original-looking name, whatever the walk order.
        group.sort(key=lambda i: (i.pair_key is None, copy_marks(i.file.original_name), i.file.id))
        kept = catalog.find_kept_by_hash(digest, size) if group[0].file.content_hash else None
        if kept is not None:
            for item in group:
                decisions[item.file.id] = Decision(kept.id, "exact", 0, f"exact duplicate of file {kept.id}")
            continue
        representatives.append(group[0])
        followers[group[0].file.id] = group[1:]

    hashed = [item for item in representatives if item.fingerprint.phash is not None]
    from_catalog, others = _catalog_candidates(catalog, hashed, radius)
    in_batch = _batch_candidates(hashed, radius)
    _sign_candidates(catalog, sign, from_catalog, others, in_batch)
    catalog_match: dict[int, tuple[int, int, int]] = {}
    for item, other_id, distance in from_catalog:  # sorted by distance: the first confirmed one is the closest
        other = others[other_id]
        if item.file.id not in catalog_match and same_picture(item.fingerprint.similarity, other["similarity"]):
            catalog_match[item.file.id] = (other_id, distance, (other["width"] or 0) * (other["height"] or 0))
    batch_match: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for item, candidate, distance in in_batch:
        if same_picture(item.fingerprint.similarity, candidate.fingerprint.similarity):
            batch_match[item.file.id].append((candidate.file.id, distance))

    assigned: set[int] = set()
    by_id = {item.file.id: item for item in representatives}
    for item in sorted(representatives, key=_rank):
        file_id = item.file.id
        if file_id in assigned:
            continue
        assigned.add(file_id)
        match = catalog_match.get(file_id)
        if match is not None and item.fingerprint.extras is not None:
            decisions[file_id] = Decision(detail=f"kept: holds {item.fingerprint.extras}, near copy of file "
                                                 f"{match[0]}")
        elif match is not None:
            keeper_id, distance, keeper_pixels = match
            if (item.file.width or 0) * (item.file.height or 0) <= keeper_pixels:
                decisions[file_id] = Decision(keeper_id, "near", distance, f"near duplicate of file {keeper_id}")
                continue
            decisions[file_id] = Decision(detail=f"kept: more pixels than its near copy, file {keeper_id}")
        else:
            decisions[file_id] = Decision()
        for other_id, distance in batch_match.get(file_id, []):
            # A copy that matches a kept file of the catalog points there instead (decided in its own turn); one
            # that holds more than its picture is never dropped for a keeper that does not.
            if other_id not in assigned and other_id not in catalog_match and (
                    by_id[other_id].fingerprint.extras is None or item.fingerprint.extras is not None):
                assigned.add(other_id)
                decisions[other_id] = Decision(file_id, "near", distance, f"near duplicate of file {file_id}")

    for rep_id, group in followers.items():
        rep = decisions[rep_id]
        for item in group:
            if rep.keeper_id is None:
                decisions[item.file.id] = Decision(rep_id, "exact", 0, f"exact duplicate of file {rep_id}")
            else:
                decisions[item.file.id] = Decision(rep.keeper_id, rep.kind, rep.distance, rep.detail)
    _keep_pairs_together(items, decisions)
    return decisions


def _catalog_candidates(catalog: Catalog, items: list[Item],
                        radius: int) -> tuple[list[tuple[Item, int, int]], dict[int, CatalogFingerprint]]:
    """(item, kept file's id, distance) within the radius and comparable, by item then distance; and the kept
    files' fingerprint columns by id."""
    if not items:
        return [], {}
    index = load_catalog_index(catalog, radius)
    if not len(index):
        return [], {}
    positions, ids, distances = index.search(np.array([i.fingerprint.phash for i in items], np.int64))
    others = catalog.fingerprints(sorted(set(ids.tolist()))) if len(ids) else {}
    found = []
    for position, other_id, distance in zip(positions.tolist(), ids.tolist(), distances.tolist(), strict=True):
        item, other = items[position], others.get(other_id)
        if other_id != item.file.id and other is not None and _comparable(item, other):
            found.append((item, other_id, distance))
    return found, others


def _batch_candidates(items: list[Item], radius: int) -> list[tuple[Item, Item, int]]:
    """(item, other item, distance) within the radius and comparable, among this batch's files."""
    if len(items) < 2:
        return []
    hashes = np.array([i.fingerprint.phash for i in items], np.int64)
    index = NearIndex(np.arange(len(items)), hashes, radius)
    positions, others, distances = index.search(hashes)
    found = []
    for position, other, distance in zip(positions.tolist(), others.tolist(), distances.tolist(), strict=True):
        item, candidate = items[position], items[other]
        if position != other and _comparable(item, _item_columns(candidate)):
            found.append((item, candidate, distance))
    return found


def _sign_candidates(catalog: Catalog, sign: Signer, from_catalog: list[tuple[Item, int, int]],
                     others: dict[int, CatalogFingerprint], in_batch: list[tuple[Item, Item, int]]) -> None:
    """Give every candidate without a signature (its pHash came from its EXIF thumbnail) the signature of its
    real pixels: this batch's items through their fingerprint, kept files in `others` and in the catalog."""
    unsigned = {i.file.id: i for i, _, _ in from_catalog if i.fingerprint.similarity is None}
    unsigned |= {i.file.id: i for pair in in_batch for i in pair[:2] if i.fingerprint.similarity is None}
    kept = {other_id for _, other_id, _ in from_catalog if others[other_id]["similarity"] is None}
    kept_files = [catalog.get_file(other_id) for other_id in sorted(kept)]
    if not unsigned and not kept_files:
        return
    signatures = sign([i.file for i in unsigned.values()] + kept_files)
    for file_id, item in unsigned.items():
        item.fingerprint = replace(item.fingerprint, similarity=signatures.get(file_id))
    for file in kept_files:
        others[file.id]["similarity"] = signatures.get(file.id)
    computed = {f.id: signature for f in kept_files if (signature := signatures.get(f.id)) is not None}
    if computed:
        catalog.remember_similarity(computed)


def _keep_pairs_together(items: list[Item], decisions: dict[int, Decision]) -> None:
    """A Live Photo or RAW+JPEG pair is dropped only as a whole: if any member is kept, all are."""
    pairs: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        if item.pair_key:
            pairs[item.pair_key].append(item)
    for key, members in pairs.items():
        if len(members) > 1 and any(decisions[m.file.id].keeper_id is None for m in members):
            for member in members:
                if decisions[member.file.id].keeper_id is not None:
                    decisions[member.file.id] = Decision(detail=f"kept with its pair ({key})")


# --- the phase ------------------------------------------------------------------------------------------


def deduplicate(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    config = DedupConfig.from_settings(ctx.settings)
    for always_reported in ("exact_duplicates", "near_duplicates"):  # steady metadata keys for Dagster's plots
        outcome.counts[always_reported] += 0
    total = ctx.catalog.count_by_state(ctx.batch_id).get(FileState.DOWNLOADED.value, 0)
    if not total:
        return
    count = config.workers if total >= config.workers * POOL_MIN_FILES_PER_WORKER else 1
    with Workers(count, in_flight_per_worker=FINGERPRINTS_IN_FLIGHT_PER_WORKER,
                 working_on=lambda what: ctx.progress.working_on(what)) as workers:
        items = [Item(file, result) for file, result in fingerprints(ctx, config, total, workers)]
        assign_pairs(items)
        with deciding_alone(ctx):
            # The second step has its own progress: near candidates signed on their pixels, then the decisions
            # recorded, DECISIONS_PER_TRANSACTION files to a transaction.
            ctx.progress = Progress("deduplication decisions", ctx.log, total=len(items))
            ctx.log.info(f"deduplication: deciding on {len(items)} fingerprinted files")
            decisions = decide(ctx.catalog, items, config.radius,
                               pixel_signer(workers, ctx.settings.storage.media_root))
            _record(ctx, outcome, items, decisions)


@contextmanager
def deciding_alone(ctx: PhaseContext) -> Iterator[None]:
    """Batches running at once decide one after the other (a catalog advisory lock), so each sees what the
    other kept and two copies of one photo in two batches are never both kept."""
    with AdvisoryLock(ctx.catalog.conninfo, DEDUPLICATION, f"deduplication of batch {ctx.batch_id}") as lock:
        lock.acquire(wait=True, on_wait=lambda holder: ctx.log.info(
            f"deduplication waits for {holder.what if holder else 'another batch'} to finish deciding"))
        yield


def _record(ctx: PhaseContext, outcome: PhaseOutcome, items: list[Item], decisions: dict[int, Decision]) -> None:
    """The decisions, DECISIONS_PER_TRANSACTION files to a transaction: a kill leaves the files of the chunk
    it interrupted downloaded, and a re-run decides them again."""
    for start in range(0, len(items), DECISIONS_PER_TRANSACTION):
        chunk = items[start:start + DECISIONS_PER_TRANSACTION]
        ctx.catalog.record_dedup_decisions([_decision(item, decisions[item.file.id]) for item in chunk])
        for item in chunk:
            _count(outcome, item, decisions[item.file.id])
        ctx.progress.advance(len(chunk))


def _decision(item: Item, decision: Decision) -> DedupDecision:
    if decision.keeper_id is None:
        return DedupDecision(item.file, detail=decision.detail, fingerprint=_columns(item))
    return DedupDecision(item.file, detail=decision.detail, keeper_id=decision.keeper_id, kind=decision.kind,
                         distance=decision.distance, fingerprint=_columns(item))


def _count(outcome: PhaseOutcome, item: Item, decision: Decision) -> None:
    outcome.files += 1
    if item.fingerprint.error:
        outcome.counts["no_fingerprint"] += 1
    if decision.keeper_id is None:
        outcome.counts["unique"] += 1
        if item.pair_key:
            outcome.counts["paired"] += 1
    else:
        outcome.counts[f"{decision.kind}_duplicates"] += 1
        outcome.bytes_in += item.file.size_bytes or 0


def pass_all_as_unique(ctx: PhaseContext, outcome: PhaseOutcome) -> None:
    """Deduplication turned off: every downloaded file flows on."""
    for file in ctx.catalog.iter_files(ctx.batch_id, FileState.DOWNLOADED):
        ctx.catalog.move(file, FileState.UNIQUE, detail="deduplication turned off")
        outcome.files += 1
