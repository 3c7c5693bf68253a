"""Deterministic id hashing (identical in every process, unlike Python's salted ``hash()``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@lru_cache(maxsize=1 << 20)
def stable_u64(value: str) -> int:
    """64-bit blake2b digest of a string id."""
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "little")


@lru_cache(maxsize=64)
def _seeds(namespace: str, n_hashes: int) -> np.ndarray:
    """[n_hashes] uint64 seeds of a namespace, one per hash."""
    seeds = np.array([stable_u64(f"{namespace}#{k}") for k in range(n_hashes)], dtype=np.uint64)
    seeds.setflags(write=False)  # shared by every caller through the cache
    return seeds


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrap-around arithmetic is intended)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


def hash_u64(base: np.ndarray, n_buckets: int, namespace: str, n_hashes: int) -> np.ndarray:
    """Map uint64 digests to ``n_hashes`` buckets each in [1, n_buckets); 0 stays padding.

    All hashes are mixed in one pass over ``base[..., None] ^ seeds``: the arrays are short
    (one user, a few hundred items), so the number of numpy calls is the cost."""
    base = np.asarray(base, dtype=np.uint64)
    with np.errstate(over="ignore"):
        mixed = _mix64(base[..., None] ^ _seeds(namespace, n_hashes))
    buckets: np.ndarray = (mixed % np.uint64(n_buckets - 1)).astype(np.int64) + 1
    return buckets


def hash_buckets(
    values: Iterable[str], n_buckets: int, namespace: str, n_hashes: int = 2
) -> np.ndarray:
    """Hash string ids to int64 buckets, shape [n, n_hashes], values in [1, n_buckets)."""
    base = np.fromiter((stable_u64(str(v)) for v in values), dtype=np.uint64)
    return hash_u64(base, n_buckets, namespace, n_hashes)
