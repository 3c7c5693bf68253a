"""ModelBundle: the loaded parts of one model version (user tower, item index, ranker).

Artifacts follow docs/training.md: a folder per part (``user_tower/``, ``item_index/``,
``ranker/``), each with its ``manifest.json`` and ``feature_schema.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shared.models.item_item import SparseItemItem
from shared.models.onnx_model import ModelLoadError, OnnxModel, load_onnx, read_json
from shared.monitors.reference import DriftReference, DriftReferenceError, load_reference

if TYPE_CHECKING:
    from shared.models.item_index import ItemIndex

log = logging.getLogger(__name__)
PARTS = ("user_tower", "item_index", "ranker")

# The training pipeline ships the ranker in float32 and, when its top-10 agrees, with int8
# weights (dynamic quantization: about 1.6x faster on these CPUs). Older bundles have no int8.
RANKER_FILES = {"int8": "ranker_int8.onnx", "fp32": "ranker.onnx"}
RankerPrecision = Literal["int8", "fp32"]


def version_of(folder: Path) -> str:
    """The bundle id of a model folder (manifest.json), else the folder's name."""
    manifest = read_json(folder / "manifest.json")
    return str(manifest.get("bundle_id") or manifest.get("version") or folder.name)


def ranker_blend(meta: dict[str, Any], heads: Iterable[str]) -> dict[str, float] | None:
    """Head weights from ranker_meta.json: a ``blend_weights`` dict, or ``<task>_weight`` keys
    (``like_weight`` weighs ``p_like``; unnamed heads weigh 1). None: no weights shipped, use
    the model's own ``score`` output."""
    heads = list(heads)
    blend = meta.get("blend_weights") or meta.get("weights")
    if isinstance(blend, dict):
        weights = {h: float(blend[h]) for h in heads if isinstance(blend.get(h), int | float)}
        return weights or None
    named = {h: meta.get(f"{h.removeprefix('p_')}_weight") for h in heads}
    if not any(isinstance(w, int | float) for w in named.values()):
        return None
    return {h: float(w) if isinstance(w, int | float) else 1.0 for h, w in named.items()}


@dataclass
class ModelBundle:
    """The models one service serves for one alias; ``None`` for parts it did not ask for.

    ``labels`` names each part the way people read it: ``cascade-ranker/3 (@production)`` for a
    registry version, the folder for a local bundle.
    """

    bundle_id: str
    user_tower: OnnxModel | None = None
    item_tower: OnnxModel | None = None
    index: ItemIndex | None = None
    item_item: SparseItemItem | None = None  # EASE's top weights per item (item_index part)
    ranker: OnnxModel | None = None
    labels: dict[str, str] = field(default_factory=dict)  # part -> "name/version (@alias)"
    drift_reference: DriftReference | None = None  # the ranker's (docs/monitoring.md)

    def versions(self) -> dict[str, str]:
        """Part -> bundle id of the training run it comes from."""
        out = {}
        for name in ("user_tower", "item_tower", "ranker"):
            model = getattr(self, name)
            if model is not None:
                out[name] = model.version
        if self.index is not None:
            out["item_index"] = str(self.index.meta.get("version", self.bundle_id))
        return out


def ranker_file(folder: Path, precision: str) -> str:
    """The ranker file to load: the asked precision when the bundle has it, else float32."""
    wanted = RANKER_FILES.get(precision, RANKER_FILES["fp32"])
    return wanted if (folder / wanted).is_file() else RANKER_FILES["fp32"]


def load_bundle(
    paths: dict[str, Path], parts: Iterable[str], ranker_precision: str = "int8"
) -> ModelBundle:
    """Load the requested parts (``user_tower``, ``item_index``, ``ranker``) from their folders."""
    wanted = set(parts)
    unknown = wanted - set(PARTS)
    if unknown:
        raise ModelLoadError(f"unknown model parts {sorted(unknown)}; known: {PARTS}")
    missing = [p for p in wanted if p not in paths or not paths[p].is_dir()]
    if missing:
        raise ModelLoadError(f"model folders missing: {[str(paths.get(p, p)) for p in missing]}")
    bundle = ModelBundle(bundle_id="")
    if "user_tower" in wanted:
        folder = paths["user_tower"]
        bundle.user_tower = load_onnx(folder, "user_tower.onnx", "user_tower", version_of(folder))
    if "item_index" in wanted:
        from shared.models.item_index import ItemIndex  # hnswlib: only where an index is served

        folder = paths["item_index"]
        version = version_of(folder)
        bundle.item_tower = load_onnx(folder, "item_tower.onnx", "item_tower", version)
        try:
            index = ItemIndex.load(folder)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"item index in {folder} is unusable: {exc}") from exc
        index.meta["version"] = version
        bundle.index = index
        bundle.item_item = _load_item_item(folder, len(index))
    if "ranker" in wanted:
        folder = paths["ranker"]
        filename = ranker_file(folder, ranker_precision)
        ranker = load_onnx(folder, filename, "ranker", version_of(folder))
        ranker.meta = read_json(folder / "ranker_meta.json")
        bundle.ranker = ranker
        bundle.drift_reference = _load_drift_reference(folder)
    _check_pairing(bundle)
    bundle.bundle_id = "+".join(sorted(set(bundle.versions().values())))
    return bundle


def _load_drift_reference(folder: Path) -> DriftReference | None:
    """The ranker's drift reference; None (monitors unavailable) when absent or unusable: a
    monitor must never keep a model from serving."""
    try:
        return load_reference(folder)
    except DriftReferenceError as exc:
        log.error("drift reference unusable, monitors off", extra={"error": str(exc)})
        return None


def _load_item_item(folder: Path, n_items: int) -> SparseItemItem | None:
    """The item-item weights beside an index (None in bundles without them); rows must be the
    index's items."""
    try:
        weights = SparseItemItem.load(folder)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"item-item weights in {folder} are unusable: {exc}") from exc
    if weights is not None and weights.n_items != n_items:
        raise ModelLoadError(
            f"item-item weights in {folder} have {weights.n_items} rows for {n_items} items"
        )
    return weights


def _check_pairing(bundle: ModelBundle) -> None:
    """A user tower only makes sense with the item index trained beside it."""
    if bundle.user_tower is not None and bundle.item_tower is not None:
        if bundle.user_tower.version != bundle.item_tower.version:
            raise ModelLoadError(
                f"user tower {bundle.user_tower.version} and item index "
                f"{bundle.item_tower.version} come from different training runs"
            )
