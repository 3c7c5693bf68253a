"""MultiTaskRanker: the multi-task ONNX ranker on a batch; the final score blends its heads."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shared.features import UserFeatures, encode_ranker
from shared.model_loading import ModelBundle, OnnxModel, ranker_blend
from shared.pipeline.items import ItemColumns
from shared.pipeline.types import Scores

SCORE_OUTPUT = "score"


class UnknownHeadError(ValueError):
    """Blend weights name a head the loaded ranker does not have."""


class MultiTaskRanker:
    """One ONNX run for all candidates of a request: final = sum(weight[head] * head)."""

    name = "ranker"

    def __init__(self, models: Callable[[], ModelBundle]) -> None:
        self.models = models

    def _model(self) -> OnnxModel:
        ranker = self.models().ranker
        if ranker is None:
            raise RuntimeError("this process did not load a ranker")
        return ranker

    def heads(self) -> list[str]:
        """The task heads of the loaded model (every output but the trained blend)."""
        return [n for n in self._model().output_names if n != SCORE_OUTPUT]

    def default_weights(self) -> dict[str, float] | None:
        """Weights shipped in ranker_meta.json (None: use the model's own ``score`` output)."""
        model = self._model()
        if not model.meta:
            return None
        return ranker_blend(model.meta, self.heads())

    def score(
        self,
        user: UserFeatures,
        items: ItemColumns,
        now: float,
        weights: dict[str, float] | None = None,
    ) -> Scores:
        """Head probabilities and the blended score of every item."""
        model = self._model()
        heads = self.heads()
        if len(items) == 0:
            empty = np.zeros(0, dtype=np.float32)
            return Scores(empty, dict.fromkeys(heads, empty), model.version)
        unknown = set(weights or ()) - set(heads)
        if unknown:
            raise UnknownHeadError(f"unknown ranker heads {sorted(unknown)}; model has {heads}")
        feeds = encode_ranker(user, items.to_table(model.config), now, model.config)
        out = model.run(feeds)
        head_scores = {h: np.asarray(out[h], dtype=np.float32).reshape(-1) for h in heads}
        blend = weights if weights else self.default_weights()
        if blend:
            score = np.zeros(len(items), dtype=np.float32)
            for head, w in blend.items():
                score += np.float32(w) * head_scores[head]
        else:
            score = np.asarray(out[SCORE_OUTPUT], dtype=np.float32).reshape(-1)
        return Scores(score, head_scores, model.version)


def warm_up_ranker(bundle: ModelBundle, n_items: int = 500) -> None:
    """Score a production-size synthetic batch with ``bundle`` (before it goes live)."""
    import time

    from shared.pipeline.warmup import synthetic_items, synthetic_user

    ids = [f"warmup-{i}" for i in range(n_items)]
    ranker = MultiTaskRanker(lambda: bundle)
    for _ in range(2):
        ranker.score(synthetic_user(ids), synthetic_items(ids), time.time())
