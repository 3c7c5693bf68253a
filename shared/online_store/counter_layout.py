"""Fixed binary layout of an item's counters, and their vectorised windowed read.

One Redis string per item holds big-endian u32 words (BITFIELD's byte order):

    [0] interactions total  [1] likes total  [2] impressions total  [3] clicks total
    [4 + r] head bucket of ring r (the newest bucket written; 0 = never)
    then, per ring r, ``slots_r`` interaction counts, bucket b in slot b % slots_r

There is one ring per granularity of ``FeatureConfig.windows`` (60 s and 3600 s by default),
sized for the longest window using it. When a write moves a ring's head forward, the slots it
passes over are zeroed first, so slot s always holds bucket ``head - ((head - s) mod slots)``;
events older than the ring are dropped. A read at ``now`` sums the slots whose bucket lies in
the window ``[now // g - window // g + 1, now // g]``, exactly ``shared.features.counters``'s
``windowed_count`` rule, for hundreds of items in a few numpy operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.features.config import DEFAULT_CONFIG, FeatureConfig

TOTAL_INTERACTIONS, TOTAL_LIKES, TOTAL_IMPRESSIONS, TOTAL_CLICKS = 0, 1, 2, 3
N_TOTALS = 4
WORD = np.dtype(">u4")


@dataclass(frozen=True)
class Ring:
    """A circular buffer of per-bucket counts for one granularity."""

    granularity: int
    slots: int
    head_word: int  # index of the head bucket word
    offset: int  # index of the first slot word


class CounterLayout:
    """Word offsets of the counter blob for a feature config, and its decoder."""

    def __init__(self, config: FeatureConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        sizes: dict[int, int] = {}
        for window, gran in config.windows.values():
            if window % gran:
                raise ValueError(f"window {window}s is not a multiple of its granularity {gran}s")
            sizes[gran] = max(sizes.get(gran, 0), window // gran)
        grans = sorted(sizes)
        offset = N_TOTALS + len(grans)
        rings = []
        for r, gran in enumerate(grans):
            rings.append(Ring(gran, sizes[gran], N_TOTALS + r, offset))
            offset += sizes[gran]
        self.rings: tuple[Ring, ...] = tuple(rings)
        self.words = offset
        self.nbytes = offset * WORD.itemsize
        self._ring_of = {gran: r for r, gran in enumerate(grans)}

    def decode(self, blobs: Sequence[bytes | None]) -> np.ndarray:
        """[n, words] int64 matrix of blobs (missing or short blobs read as zeros)."""
        n, size = len(blobs), self.nbytes
        fixed = [b if b is not None and len(b) == size else _pad(b, size) for b in blobs]
        raw = np.frombuffer(b"".join(fixed), dtype=WORD) if n else np.zeros(0, WORD)
        return raw.reshape(n, self.words).astype(np.int64)

    def windowed(self, words: np.ndarray, now: float) -> dict[str, np.ndarray]:
        """Per window name: [n] interaction counts in the window ending at ``now``."""
        # int32 halves the memory traffic: counts < 2^31, bucket numbers < 2^31 (minutes
        # until the year 6053).
        rings = [self._ring_view(words, ring) for ring in self.rings]
        out: dict[str, np.ndarray] = {}
        for name, (window, gran) in self.config.windows.items():
            bucket, counts = rings[self._ring_of[gran]]
            hi = int(now // gran)
            lo = hi - window // gran + 1
            # lo <= bucket <= hi as one unsigned comparison (never-written slots are -1).
            inside = (bucket - np.int32(lo)).view(np.uint32) <= np.uint32(hi - lo)
            out[name] = (counts * inside).sum(axis=1, dtype=np.int64)
        return out

    @staticmethod
    def _ring_view(words: np.ndarray, ring: Ring) -> tuple[np.ndarray, np.ndarray]:
        """([n, slots] bucket number each slot holds, -1 if never written; [n, slots] counts).

        Slot s holds ``head - ((head - s) mod slots)``, computed without a matrix-wide modulo:
        ``head - head % slots + s``, minus one lap for the slots after the head's.
        """
        head = words[:, ring.head_word : ring.head_word + 1].astype(np.int32)
        head_slot = head % ring.slots
        slots = np.arange(ring.slots, dtype=np.int32)[None, :]
        bucket = (head - head_slot) + slots - np.int32(ring.slots) * (slots > head_slot)
        bucket[np.broadcast_to(head == 0, bucket.shape)] = -1
        counts = words[:, ring.offset : ring.offset + ring.slots].astype(np.int32)
        return bucket, counts

    def lua_args(self) -> list[str]:
        """Ring description passed to the ingest script: count, then (gran, slots, head, off)."""
        args = [str(len(self.rings))]
        for ring in self.rings:
            args += [str(ring.granularity), str(ring.slots), str(ring.head_word), str(ring.offset)]
        return args


def _pad(blob: bytes | None, size: int) -> bytes:
    """BITFIELD grows a string only up to the last word written: pad (or cut) to ``size``."""
    if not blob:
        return bytes(size)
    return blob[:size].ljust(size, b"\0")
