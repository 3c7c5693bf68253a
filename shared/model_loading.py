"""Serving-side model loading: ONNX sessions, the item index, schema checks, warm-up, hot swap.

Artifacts follow docs/training.md (a bundle folder with ``user_tower/``, ``item_index/`` and
``ranker/``). Each ONNX model is checked against the ``feature_schema.json`` shipped with it and
warmed up before a service reports ready; a new version is loaded beside the old one and swapped
in only once it passed the same checks, so requests never see a half-loaded model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import onnxruntime as ort

from shared.features.config import FEATURE_VERSION, FeatureConfig
from shared.features.schema import FeatureSchema, FeatureSchemaError
from shared.pipeline.item_index import ItemIndex

log = logging.getLogger(__name__)

PARTS = ("user_tower", "item_index", "ranker")


class ModelLoadError(RuntimeError):
    """A model bundle is missing, corrupt or does not match the serving code's features."""


def create_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session; one intra-op thread because the cores are shared with other services."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is unreadable: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _load_schema(folder: Path) -> FeatureSchema:
    try:
        schema = FeatureSchema.load(folder / "feature_schema.json")
    except FeatureSchemaError as exc:
        raise ModelLoadError(str(exc)) from exc
    if schema.version != FEATURE_VERSION:
        raise ModelLoadError(
            f"{folder}: model built for feature version {schema.version}, "
            f"serving code has {FEATURE_VERSION}"
        )
    return schema


def warmup_feeds(schema: FeatureSchema, model: str, batch: int = 8) -> dict[str, np.ndarray]:
    """Zero inputs of the right names, dtypes and shapes (symbolic user batch ``U`` = 1)."""
    feeds = {}
    for spec in schema.models[model]["inputs"]:
        shape = [d if isinstance(d, int) else (1 if d == "U" else batch) for d in spec["shape"]]
        feeds[spec["name"]] = np.zeros(shape, dtype=np.dtype(spec["dtype"]))
    return feeds


@dataclass
class OnnxModel:
    """One checked and warmed-up ONNX session with its schema's feature config."""

    name: str
    session: ort.InferenceSession
    config: FeatureConfig
    version: str
    meta: dict[str, Any] = field(default_factory=dict)
    file: str = ""  # which file of the folder (the ranker ships in two precisions)

    def __post_init__(self) -> None:
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; outputs by name."""
        outs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outs, strict=True))


def load_onnx(folder: Path, filename: str, model: str, version: str) -> OnnxModel:
    """Load ``folder/filename``, check its inputs against the schema, warm it up."""
    path = folder / filename
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    schema = _load_schema(folder)
    try:
        session = create_session(path)
    except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt files
        raise ModelLoadError(f"{path} is not a loadable ONNX model: {exc}") from exc
    try:
        schema.check_onnx_inputs(session.get_inputs(), model)
    except FeatureSchemaError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    onnx_model = OnnxModel(model, session, schema.config, version, file=filename)
    feeds = warmup_feeds(schema, model)
    for _ in range(3):  # first runs allocate arenas and pick kernels
        onnx_model.run(feeds)
    return onnx_model


def _version_of(folder: Path) -> str:
    """The bundle id of a model folder (manifest.json), else the folder's name."""
    manifest = _read_json(folder / "manifest.json")
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
    """The models one service serves; ``None`` for parts it did not ask for."""

    bundle_id: str
    user_tower: OnnxModel | None = None
    item_tower: OnnxModel | None = None
    index: ItemIndex | None = None
    ranker: OnnxModel | None = None
    origin: dict[str, str] = field(default_factory=dict)  # part -> where it was loaded from

    def versions(self) -> dict[str, str]:
        """Model name -> version, for responses and metrics."""
        out = {}
        for name in ("user_tower", "item_tower", "ranker"):
            model = getattr(self, name)
            if model is not None:
                out[name] = model.version
        if self.index is not None:
            out["item_index"] = str(self.index.meta.get("version", self.bundle_id))
        return out


# The training pipeline ships the ranker in float32 and, when its top-10 agrees, with int8
# weights (dynamic quantization: about 1.6x faster on these CPUs). Older bundles have no int8.
RANKER_FILES = {"int8": "ranker_int8.onnx", "fp32": "ranker.onnx"}
RankerPrecision = Literal["int8", "fp32"]


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
        bundle.user_tower = load_onnx(folder, "user_tower.onnx", "user_tower", _version_of(folder))
    if "item_index" in wanted:
        folder = paths["item_index"]
        version = _version_of(folder)
        bundle.item_tower = load_onnx(folder, "item_tower.onnx", "item_tower", version)
        try:
            index = ItemIndex.load(folder)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"item index in {folder} is unusable: {exc}") from exc
        index.meta["version"] = version
        bundle.index = index
    if "ranker" in wanted:
        folder = paths["ranker"]
        filename = ranker_file(folder, ranker_precision)
        ranker = load_onnx(folder, filename, "ranker", _version_of(folder))
        ranker.meta = _read_json(folder / "ranker_meta.json")
        bundle.ranker = ranker
    _check_pairing(bundle)
    bundle.bundle_id = "+".join(sorted(set(bundle.versions().values())))
    return bundle


def _check_pairing(bundle: ModelBundle) -> None:
    """A user tower only makes sense with the item index trained beside it."""
    if bundle.user_tower is not None and bundle.item_tower is not None:
        if bundle.user_tower.version != bundle.item_tower.version:
            raise ModelLoadError(
                f"user tower {bundle.user_tower.version} and item index "
                f"{bundle.item_tower.version} come from different training runs"
            )


class ModelLocator:
    """Where the models are: ``paths()`` per part and a cheap ``fingerprint()`` of the version."""

    def paths(self) -> dict[str, Path]:
        """Folder of each model part (may download first)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Changes whenever the models behind this locator change."""
        raise NotImplementedError

    def describe(self, paths: dict[str, Path]) -> dict[str, str]:
        """Where each part of ``paths`` came from (for readiness and logs)."""
        return {part: str(path) for part, path in paths.items()}


class LocalModels(ModelLocator):
    """A plain bundle folder (``models/``): the parts are its sub-folders."""

    def __init__(self, root: str | Path, parts: Iterable[str] = PARTS) -> None:
        self.root = Path(root)
        self.parts = tuple(parts)

    def paths(self) -> dict[str, Path]:
        """Sub-folders of the bundle."""
        return {p: self.root / p for p in self.parts}

    def fingerprint(self) -> str:
        """Bundle ids of the parts (a re-published bundle has a new id)."""
        return "|".join(_version_of(self.root / p) for p in self.parts)


def registered_name(part: str) -> str:
    """MLflow registered model name of a part (``item_index`` -> ``cascade-item-index``)."""
    return "cascade-" + part.replace("_", "-")


class RegistryModels(ModelLocator):
    """The versions behind an MLflow alias (``production``), downloaded into a local cache."""

    def __init__(
        self, uri: str, alias: str, cache_dir: str | Path, parts: Iterable[str] = PARTS
    ) -> None:
        self.uri = uri
        self.alias = alias
        self.cache_dir = Path(cache_dir)
        self.parts = tuple(parts)
        self._versions: dict[str, str] = {}

    def paths(self) -> dict[str, Path]:
        """Download (or reuse from the cache) the version behind the alias of each part."""
        from shared import model_registry

        out = {}
        for p in self.parts:
            got = model_registry.resolve_and_download(
                registered_name(p), self.alias, self.uri, self.cache_dir
            )
            self._versions[p] = got.version
            out[p] = got.path
        return out

    def describe(self, paths: dict[str, Path]) -> dict[str, str]:
        """``models:/<name>/<version>`` behind the alias, per part."""
        return {
            p: f"models:/{registered_name(p)}/{self._versions.get(p, '?')} (@{self.alias})"
            for p in paths
        }

    def fingerprint(self) -> str:
        """The registry versions behind the alias (one cheap call per part)."""
        from shared import model_registry

        return "|".join(
            model_registry.current_version(registered_name(p), self.alias, self.uri)
            for p in self.parts
        )


def locator_for(
    models_dir: str | None, mlflow_uri: str, alias: str, cache_dir: str, parts: Iterable[str]
) -> ModelLocator:
    """A local folder when ``models_dir`` is set (tests, no-MLflow runs), else the registry."""
    if models_dir:
        return LocalModels(models_dir, parts)
    return RegistryModels(mlflow_uri, alias, cache_dir, parts)


class ModelSettings(Protocol):
    """The model settings every model-serving service has (see the ``*_field`` helpers below)."""

    models_dir: str | None
    mlflow_uri: str
    model_alias: str
    model_cache_dir: str
    model_poll_s: float


def holder_for(
    settings: ModelSettings,
    parts: tuple[str, ...],
    prepare: Callable[[ModelBundle], None] | None = None,
) -> ModelHolder:
    """A (not yet started) holder of ``parts`` from where the service's settings point."""
    locator = locator_for(
        settings.models_dir, settings.mlflow_uri, settings.model_alias,
        settings.model_cache_dir, parts,
    )  # fmt: skip
    # Only the services that serve the ranker have the setting.
    precision = str(getattr(settings, "ranker_precision", "int8"))
    return ModelHolder(
        locator, parts, settings.model_poll_s, prepare=prepare, ranker_precision=precision
    )


class ModelHolder:
    """Loads a bundle off the event loop, serves it, and swaps in new versions when they appear.

    A new bundle goes live only after ``load_bundle`` (schema check, ONNX warm-up) and
    ``prepare`` (the service's own stage code run on production-size input, see
    ``shared.pipeline.warmup``) succeeded. ``current`` is replaced by one assignment, so a
    request holding the old bundle finishes on it while the next request gets the new one.
    """

    def __init__(
        self,
        locator: ModelLocator,
        parts: Iterable[str],
        poll_s: float = 30.0,
        on_swap: Callable[[ModelBundle], None] | None = None,
        prepare: Callable[[ModelBundle], None] | None = None,
        ranker_precision: str = "int8",
    ) -> None:
        self.locator = locator
        self.parts = tuple(parts)
        self.ranker_precision = ranker_precision
        self.poll_s = poll_s
        self.on_swap = on_swap
        self.prepare = prepare
        self.current: ModelBundle | None = None
        self.error = "models not loaded yet"
        self._fingerprint = ""
        self._task: asyncio.Task[None] | None = None
        self._swap_lock = threading.Lock()

    def require(self) -> ModelBundle:
        """The loaded bundle, or ModelLoadError while loading (or after a failed load)."""
        bundle = self.current
        if bundle is None:
            raise ModelLoadError(self.error)
        return bundle

    def load_now(self) -> bool:
        """Load (or reload when the fingerprint moved); True when a new bundle went live."""
        with self._swap_lock:
            try:
                fingerprint = self.locator.fingerprint()
                if self.current is not None and fingerprint == self._fingerprint:
                    return False
                paths = self.locator.paths()
                bundle = load_bundle(paths, self.parts, self.ranker_precision)
                bundle.origin = self.locator.describe(paths)
                if bundle.ranker is not None and "ranker" in bundle.origin:
                    bundle.origin["ranker"] += f" ({bundle.ranker.file})"
                if self.prepare is not None:
                    self.prepare(bundle)
            except Exception as exc:  # any failure keeps the old bundle serving
                self.error = f"model load failed: {exc}"
                log.error("model load failed", extra={"error": str(exc)})
                return False
            self.current, self._fingerprint, self.error = bundle, fingerprint, ""
        log.info("models loaded", extra={"versions": bundle.versions(), "origin": bundle.origin})
        if self.on_swap is not None:
            self.on_swap(bundle)
        return True

    async def start(self) -> None:
        """Load in a worker thread, then keep polling for new versions in the background."""
        self._task = asyncio.create_task(self._run(), name="model-holder")

    async def _run(self) -> None:
        await asyncio.to_thread(self.load_now)
        while self.poll_s > 0:
            await asyncio.sleep(self.poll_s if self.current else min(self.poll_s, 2.0))
            await asyncio.to_thread(self.load_now)

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def check(self) -> tuple[bool, str]:
        """Readiness: ready once a bundle passed the schema check and warm-up."""
        bundle = self.current
        if bundle is None:
            return False, self.error
        versions = ",".join(f"{k}={v}" for k, v in bundle.versions().items())
        origin = ", ".join(f"{k} from {v}" for k, v in bundle.origin.items())
        return True, f"ok {versions}; {origin}"


def models_dir_field(service: str) -> Any:
    """Setting: a local bundle folder; when set, MLflow is not used."""
    from shared.settings import platform_field

    return platform_field(
        "models_dir", None, service, "local model bundle folder (unset: MLflow alias)"
    )


def model_alias_field(service: str) -> Any:
    """Setting: the MLflow alias to serve."""
    from shared.settings import platform_field

    return platform_field("model_alias", "production", service, "MLflow alias to serve")


def ranker_precision_field(service: str) -> Any:
    """Setting of the services that run the ranker: ``int8`` (default) or ``fp32`` weights."""
    from shared.settings import platform_field

    return platform_field(
        "ranker_precision", "int8", service,
        "ranker weights: int8 (faster; float32 when the bundle has no int8 file) or fp32",
    )  # fmt: skip


def model_poll_field(service: str) -> Any:
    """Setting: seconds between checks for a new model version (0: never)."""
    from shared.settings import platform_field

    return platform_field("model_poll_s", 30.0, service, "hot-swap poll interval, 0 = off")


def model_cache_field(service: str) -> Any:
    """Setting: where registry downloads are cached."""
    from shared.settings import platform_field

    return platform_field("model_cache_dir", ".cache/models", service, "model download cache")
