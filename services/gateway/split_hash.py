"""The salted hash every traffic split of the gateway uses (rollouts and experiments alike)."""

from __future__ import annotations

import hashlib
from typing import Literal

Slot = Literal["retrieval", "ranker"]  # the model slots a variant can move to another alias


def unit_interval(salt: str, key: str) -> float:
    """A uniform number in [0, 1) from a salted hash of ``key`` (same in every process)."""
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64
