"""feature_schema.json: the ONNX input contract between training and serving."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.features.config import FeatureConfig
from shared.features.item import GENRES, N_GENRES
from shared.features.profile import PROFILE_FIELDS

SCHEMA_FORMAT = 1
_ORT_DTYPES = {"int64": "tensor(int64)", "float32": "tensor(float)"}


class FeatureSchemaError(ValueError):
    """A schema file is missing/corrupt, or a model's inputs do not match the schema."""


def _user_inputs(cfg: FeatureConfig, batch: str) -> list[dict[str, Any]]:
    h = cfg.n_id_hashes
    return [
        {"name": "user_id_hash", "dtype": "int64", "shape": [batch, h]},
        {"name": "user_profile", "dtype": "int64", "shape": [batch, len(PROFILE_FIELDS)]},
        {"name": "hist_item_hash", "dtype": "int64", "shape": [batch, cfg.hist_len, h]},
        {"name": "user_genre_affinity", "dtype": "float32", "shape": [batch, N_GENRES]},
        {"name": "user_dense", "dtype": "float32", "shape": [batch, 3]},
        {"name": "time_cyc", "dtype": "float32", "shape": [batch, 4]},
    ]


def _item_inputs(cfg: FeatureConfig, batch: str) -> list[dict[str, Any]]:
    return [
        {"name": "item_id_hash", "dtype": "int64", "shape": [batch, cfg.n_id_hashes]},
        {"name": "item_genres", "dtype": "float32", "shape": [batch, N_GENRES]},
        {"name": "item_year", "dtype": "float32", "shape": [batch, 2]},
    ]


def build_schema(cfg: FeatureConfig, embedding_dim: int) -> FeatureSchema:
    """The schema of the three ONNX models for a feature config."""
    models = {
        "user_tower": {
            "inputs": _user_inputs(cfg, "B"),
            "outputs": [
                {"name": "user_embedding", "dtype": "float32", "shape": ["B", embedding_dim]}
            ],
        },
        "item_tower": {
            "inputs": _item_inputs(cfg, "B"),
            "outputs": [
                {"name": "item_embedding", "dtype": "float32", "shape": ["B", embedding_dim]}
            ],
        },
        "ranker": {
            "inputs": _user_inputs(cfg, "U")
            + _item_inputs(cfg, "N")
            + [
                {"name": "item_dense", "dtype": "float32", "shape": ["N", 6]},
                {"name": "cross", "dtype": "float32", "shape": ["N", 2]},
                # EASE: the bundle's item_item weights summed over the user's history (seen set)
                {"name": "ease_score", "dtype": "float32", "shape": ["N"]},
            ],
            "outputs": [
                {"name": n, "dtype": "float32", "shape": ["N"]}
                for n in ("p_interact", "p_like", "score")
            ],
        },
    }
    return FeatureSchema(version=cfg.version, config=cfg, models=models)


@dataclass
class FeatureSchema:
    """Input/output names, dtypes and shapes per model plus the feature config that made them."""

    version: str
    config: FeatureConfig
    models: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (what feature_schema.json holds)."""
        return {
            "format": SCHEMA_FORMAT,
            "version": self.version,
            "config": self.config.to_dict(),
            "genres": list(GENRES),
            "profile_fields": list(PROFILE_FIELDS),
            "models": self.models,
        }

    def save(self, path: str | Path) -> None:
        """Write feature_schema.json."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FeatureSchema:
        """Read feature_schema.json; any problem raises FeatureSchemaError naming the file."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
            return cls(
                version=str(d["version"]),
                config=FeatureConfig.from_dict(d["config"]),
                models=d["models"],
            )
        except FileNotFoundError as e:
            raise FeatureSchemaError(f"feature schema file not found: {p}") from e
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise FeatureSchemaError(f"feature schema file {p} is corrupt: {e!r}") from e

    def input_names(self, model: str) -> list[str]:
        """Names of a model's inputs, in schema order."""
        return [i["name"] for i in self._model(model)["inputs"]]

    def _model(self, model: str) -> dict[str, list[dict[str, Any]]]:
        if model not in self.models:
            raise FeatureSchemaError(
                f"feature schema has no model {model!r}: {sorted(self.models)}"
            )
        return self.models[model]

    def check_onnx_inputs(self, session_inputs: Iterable[Any], model: str) -> None:
        """Compare onnxruntime ``session.get_inputs()`` with the schema; raise on any mismatch."""
        expected = {i["name"]: i for i in self._model(model)["inputs"]}
        got = {a.name: a for a in session_inputs}
        problems = [f"missing input {n!r}" for n in expected if n not in got]
        problems += [f"unexpected input {n!r}" for n in got if n not in expected]
        for name in expected.keys() & got.keys():
            exp, arg = expected[name], got[name]
            if arg.type != _ORT_DTYPES[exp["dtype"]]:
                problems.append(f"{name}: dtype {arg.type}, schema says {exp['dtype']}")
            shape = list(arg.shape)
            if len(shape) != len(exp["shape"]):
                problems.append(f"{name}: rank {len(shape)}, schema says shape {exp['shape']}")
                continue
            for got_d, exp_d in zip(shape, exp["shape"], strict=True):
                if isinstance(exp_d, int) and isinstance(got_d, int) and got_d != exp_d:
                    problems.append(f"{name}: shape {shape}, schema says {exp['shape']}")
                    break
        if problems:
            raise FeatureSchemaError(
                f"model {model!r} does not match feature schema v{self.version}: "
                + "; ".join(sorted(problems))
            )
