"""The drift reference a ranker ships: per monitored feature and per head, the bin edges cut
at the reference sample's deciles and the sample's fraction per bin.

Written by the training export as ``ranker/drift_reference.json`` (registered and downloaded
with the ranker's other files); a bundle without it still serves, with monitors unavailable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.monitors.features import ITEM_NAMES, USER_NAMES
from shared.monitors.psi import N_BINS, bin_counts, bin_edges, fractions

REFERENCE_FILE = "drift_reference.json"
FORMAT = 1


class DriftReferenceError(ValueError):
    """A drift reference file is unreadable or malformed (the message names the field)."""


@dataclass(frozen=True)
class Binned:
    """One monitored quantity: interior bin edges and the reference fraction per bin."""

    edges: np.ndarray
    fractions: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, n_bins: int = N_BINS) -> Binned:
        """Bins cut at ``values``' quantiles, with ``values``' own fractions."""
        edges = bin_edges(values, n_bins)
        return cls(edges, fractions(bin_counts(edges, np.asarray(values, dtype=np.float64))))

    def to_json(self) -> dict[str, list[float]]:
        """Plain lists; edges exact (a value equal to an edge must stay on its side: counts
        and other discrete features put whole point masses on edges)."""
        return {
            "edges": [float(e) for e in self.edges],
            "fractions": [round(float(f), 6) for f in self.fractions],
        }


@dataclass(frozen=True)
class DriftReference:
    """Reference bins of every monitored user feature, item feature and head."""

    user: dict[str, Binned]
    item: dict[str, Binned]
    scores: dict[str, Binned]
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "format": FORMAT,
            "n_bins": N_BINS,
            **self.meta,
            "features": {
                **{n: {"side": "user", **b.to_json()} for n, b in self.user.items()},
                **{n: {"side": "item", **b.to_json()} for n, b in self.item.items()},
            },
            "scores": {n: b.to_json() for n, b in self.scores.items()},
        }

    def save(self, folder: Path) -> Path:
        """Write ``folder/drift_reference.json``."""
        path = folder / REFERENCE_FILE
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path


def build_reference(
    user: np.ndarray, item: np.ndarray, scores: Mapping[str, np.ndarray], meta: dict[str, Any]
) -> DriftReference:
    """From a reference sample: ``user`` [requests, 3], ``item`` [rows, 9], head -> scores."""
    return DriftReference(
        {n: Binned.of(user[:, j]) for j, n in enumerate(USER_NAMES)},
        {n: Binned.of(item[:, j]) for j, n in enumerate(ITEM_NAMES)},
        {h: Binned.of(np.asarray(s).reshape(-1)) for h, s in scores.items()},
        {**meta, "n_requests": int(len(user)), "n_items": int(len(item))},
    )


def load_reference(folder: Path) -> DriftReference | None:
    """The reference in ``folder`` (None when the bundle has none: an older model)."""
    path = folder / REFERENCE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return _parse(data)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DriftReferenceError(f"{path} is unusable: {exc}") from exc


def _binned(entry: Mapping[str, Any], where: str) -> Binned:
    edges = np.asarray(entry["edges"], dtype=np.float64)
    frac = np.asarray(entry["fractions"], dtype=np.float64)
    if len(frac) != len(edges) + 1 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"{where}: need increasing edges and one more fraction than edges")
    return Binned(edges, frac)


def _parse(data: Mapping[str, Any]) -> DriftReference:
    if data.get("format") != FORMAT:
        raise ValueError(f"format: {data.get('format')!r}, this code reads {FORMAT}")
    feats = data["features"]
    missing = [n for n in (*USER_NAMES, *ITEM_NAMES) if n not in feats]
    if missing:
        raise ValueError(f"features: missing {missing}")
    meta = {k: v for k, v in data.items() if k not in ("features", "scores", "format")}
    return DriftReference(
        {n: _binned(feats[n], f"features.{n}") for n in USER_NAMES},
        {n: _binned(feats[n], f"features.{n}") for n in ITEM_NAMES},
        {h: _binned(e, f"scores.{h}") for h, e in data["scores"].items()},
        meta,
    )
