"""MultiTaskRanker: the multi-task ONNX ranker on a batch; the final score blends its heads."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

import msgspec
import numpy as np

from services.ranking.item_table import ITEM_INPUTS, item_table
from shared.features import UserFeatures, encode_ranker
from shared.frame import Frame
from shared.models.bundle import ModelBundle, ranker_blend
from shared.models.onnx_model import OnnxModel
from shared.pipeline.knobs import Knobs
from shared.pipeline.stage import Refused

SCORE_OUTPUT = "score"
Observe = Callable[[dict[str, np.ndarray], dict[str, np.ndarray], list[str]], None]
Weight = Annotated[float, msgspec.Meta(ge=-100, le=100)]


class RankerKnobs(Knobs, frozen=True):
    """Blend of the heads: final = sum(weight[head] * head); None = the model's own weights."""

    blend_weights: dict[str, Weight] | None = None

    def __post_init__(self) -> None:
        if self.blend_weights and not all(math.isfinite(w) for w in self.blend_weights.values()):
            raise ValueError("blend weights must be finite")


class MultiTaskRanker:
    """One ONNX run for all candidates of a request."""

    name = "ranker"
    needs = (*ITEM_INPUTS, "ease_score")
    provides = ("score", "head_*")
    Knobs = RankerKnobs

    @staticmethod
    def model(bundle: ModelBundle) -> OnnxModel:
        """The bundle's ranker (a bundle of this slot always has one)."""
        if bundle.ranker is None:
            raise RuntimeError("this process did not load a ranker")
        return bundle.ranker

    def heads(self, bundle: ModelBundle) -> list[str]:
        """The task heads of the model (every output but the trained blend)."""
        return [n for n in self.model(bundle).output_names if n != SCORE_OUTPUT]

    def score(
        self,
        bundle: ModelBundle,
        user: UserFeatures | dict[str, np.ndarray],
        frame: Frame,
        now: float,
        knobs: RankerKnobs,
        observe: Observe | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(blended score, head probabilities) of every item in ``frame``; ``user`` is a
        record or its encoded user-tower inputs (batch 1); ``observe`` (a monitor's, on
        sampled requests) sees the model's inputs and head scores."""
        model = self.model(bundle)
        heads = self.heads(bundle)
        unknown = set(knobs.blend_weights or ()) - set(heads)
        if unknown:
            loc = ("context", "variant", "knobs", "ranker", "blend_weights")
            raise Refused(
                422, loc, f"unknown ranker heads {sorted(unknown)}; the model has {heads}"
            )
        if len(frame) == 0:
            empty = np.zeros(0, dtype=np.float32)
            return empty, dict.fromkeys(heads, empty)
        table = item_table(frame, model.config)
        feeds = encode_ranker(user, table, now, model.config, frame["ease_score"])
        if len(feeds) > len(model.input_names):  # a ranker before issue 13 had no ease_score
            feeds = {k: v for k, v in feeds.items() if k in model.input_names}
        out = model.run(feeds)
        head_scores = {h: np.asarray(out[h], dtype=np.float32).reshape(-1) for h in heads}
        if observe is not None:
            observe(feeds, head_scores, frame.ids)
        blend = knobs.blend_weights or (ranker_blend(model.meta, heads) if model.meta else None)
        if not blend:
            return np.asarray(out[SCORE_OUTPUT], dtype=np.float32).reshape(-1), head_scores
        score = np.zeros(len(frame), dtype=np.float32)
        for head, w in blend.items():
            score += np.float32(w) * head_scores[head]
        return score, head_scores
