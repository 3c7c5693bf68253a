"""One ONNX model as serving runs it: a CPU session, checked against its feature schema, warm.

Each model folder ships ``feature_schema.json`` (docs/training.md); a model whose inputs or
feature version differ from the serving code's is refused with the reason, never served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from shared.features.config import FEATURE_VERSION, FeatureConfig
from shared.features.schema import FeatureSchema, FeatureSchemaError


class ModelLoadError(RuntimeError):
    """A model is missing, corrupt or does not match the serving code's features."""


def create_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session; one intra-op thread because the cores are shared with other services."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file ({} when absent); ModelLoadError when unreadable."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is unreadable: {exc}") from exc
    return data if isinstance(data, dict) else {}


def load_schema(folder: Path) -> FeatureSchema:
    """The folder's feature schema, which must be of the serving code's feature version."""
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
        self.input_names = frozenset(i.name for i in self.session.get_inputs())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; outputs by name."""
        outs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outs, strict=True))


def load_onnx(folder: Path, filename: str, model: str, version: str) -> OnnxModel:
    """Load ``folder/filename``, check its inputs against the schema, warm it up."""
    path = folder / filename
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    schema = load_schema(folder)
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
