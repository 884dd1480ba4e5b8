"""Near-duplicate search over 64-bit hashes: multi-index hashing in numpy.

Each hash is cut into four 16-bit chunks, and each chunk column is kept sorted. Two hashes within Hamming
distance r agree within r // 4 bits on at least one chunk (pigeonhole), so a query only looks at the entries
whose chunk is one of the few 16-bit values near its own chunk (one value for r <= 3, 17 for r <= 7), found by
binary search, and checks the real distance of those candidates with a popcount. Nothing compares every pair,
and the index holds 8 bytes of hash + 8 of id + 4 x 6 bytes of sorted chunks per entry (~40 MB per million).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

CHUNKS = 4
CHUNK_BITS = 16
#: Queries answered together: bounds the candidate arrays (and memory) whatever the batch size.
QUERY_BLOCK = 256


def _masks(bits: int, within: int) -> np.ndarray:
    """Every `bits`-bit value with at most `within` bits set."""
    values = [0]
    for k in range(1, within + 1):
        values += [sum(1 << b for b in combo) for combo in combinations(range(bits), k)]
    return np.array(values, np.uint64)


class NearIndex:
    """Ids and 64-bit hashes, searchable by Hamming radius. Build once per batch from the catalog."""

    def __init__(self, ids: np.ndarray, hashes: np.ndarray, radius: int) -> None:
        if not 0 <= radius < 64:
            raise ValueError("radius must be between 0 and 63")
        self.radius = radius
        self.ids = np.ascontiguousarray(ids, np.int64)
        self.hashes = np.ascontiguousarray(hashes).view(np.uint64)
        if self.ids.shape != self.hashes.shape:
            raise ValueError("ids and hashes differ in length")
        self._masks = _masks(CHUNK_BITS, radius // CHUNKS)
        self._order: list[np.ndarray] = []
        self._sorted: list[np.ndarray] = []
        for c in range(CHUNKS):
            chunk = ((self.hashes >> np.uint64(CHUNK_BITS * c)) & np.uint64(0xFFFF)).astype(np.uint16)
            order = np.argsort(chunk, kind="stable").astype(np.int32)
            self._order.append(order)
            self._sorted.append(chunk[order])

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query position, id, distance) with distance <= radius, sorted by query then distance."""
        queries = np.ascontiguousarray(queries).view(np.uint64)
        found = [self._search_block(queries[start:start + QUERY_BLOCK], start)
                 for start in range(0, len(queries), QUERY_BLOCK)]
        if not found or not len(self):
            empty = np.empty(0, np.int64)
            return empty, empty, empty
        positions = np.concatenate([f[0] for f in found])
        entries = np.concatenate([f[1] for f in found])
        distances = np.concatenate([f[2] for f in found])
        order = np.lexsort((self.ids[entries], distances, positions))
        return positions[order], self.ids[entries[order]], distances[order]

    def _search_block(self, block: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        query_parts, entry_parts = [], []
        for c in range(CHUNKS):
            chunk = (block >> np.uint64(CHUNK_BITS * c)) & np.uint64(0xFFFF)
            wanted = (chunk[:, None] ^ self._masks[None, :]).astype(np.uint16)  # queries x masks
            lo = np.searchsorted(self._sorted[c], wanted.ravel(), "left")
            hi = np.searchsorted(self._sorted[c], wanted.ravel(), "right")
            counts = hi - lo
            total = int(counts.sum())
            if not total:
                continue
            # Expand the [lo, hi) ranges into one flat array of sorted positions, without a Python loop.
            starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
            flat = starts + np.arange(total)
            entry_parts.append(self._order[c][flat])
            query_parts.append(np.repeat(np.repeat(np.arange(len(block)), len(self._masks)), counts))
        if not entry_parts:
            empty = np.empty(0, np.int64)
            return empty, empty, empty
        queries = np.concatenate(query_parts)
        entries = np.concatenate(entry_parts).astype(np.int64)
        distances = np.bitwise_count(self.hashes[entries] ^ block[queries]).astype(np.int64)
        keep = distances <= self.radius
        queries, entries, distances = queries[keep], entries[keep], distances[keep]
        # An entry close on several chunks was found several times.
        unique = np.unique(queries * len(self) + entries, return_index=True)[1]
        return queries[unique] + offset, entries[unique], distances[unique]


def brute_force(hashes: np.ndarray, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: XOR + popcount of every query against every hash. Returns (query position, entry)."""
    hashes = np.ascontiguousarray(hashes).view(np.uint64)
    hits_q, hits_e = [], []
    for position, query in enumerate(np.ascontiguousarray(queries).view(np.uint64)):
        entries = np.flatnonzero(np.bitwise_count(hashes ^ query) <= radius)
        hits_q.append(np.full(len(entries), position))
        hits_e.append(entries)
    if not hits_q:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(hits_q), np.concatenate(hits_e)
