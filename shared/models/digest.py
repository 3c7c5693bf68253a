"""Content digests of model folders: recorded at registration, checked after every download.

A registry (or the object store behind it) that hands out different bytes than were
registered, whether by tampering, a partial upload or a corrupted cache, must not get its
files loaded. ``training.registry`` tags each version with :func:`folder_digest` of the folder
it logged (tag ``cascade.digest``); ``shared.models.registry`` recomputes it over what it
downloaded (and over a cached copy before reusing it) and refuses a mismatch or a version
without the tag.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

DIGEST_TAG = "cascade.digest"
_CHUNK = 1 << 20


class ArtifactDigestError(RuntimeError):
    """Downloaded model files differ from what was registered (or nothing was recorded)."""


def folder_digest(folder: str | Path) -> str:
    """``sha256:<hex>`` over every file below ``folder``: relative path and content, in path
    order (so a renamed, added, removed or changed file changes it)."""
    root = Path(folder)
    total = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        content = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                content.update(chunk)
        total.update(path.relative_to(root).as_posix().encode() + b"\0" + content.digest())
    return "sha256:" + total.hexdigest()


def verify_folder(folder: str | Path, expected: str | None, what: str) -> None:
    """Raise ArtifactDigestError unless ``folder``'s digest is ``expected``."""
    if not expected:
        raise ArtifactDigestError(
            f"{what} has no {DIGEST_TAG} tag: it was not registered by training.registry, "
            "and unverified files are not loaded"
        )
    got = folder_digest(folder)
    if got != expected:
        raise ArtifactDigestError(
            f"{what}: downloaded files do not match the registered digest "
            f"({got[:19]}... != {expected[:19]}...)"
        )
