"""RankingStage: scores every candidate with the ranker version its variant names."""

from __future__ import annotations

import msgspec

from services.ranking.monitors.monitor import RankerMonitor
from services.ranking.scorer import MultiTaskRanker, RankerKnobs
from shared.frame import Frame
from shared.models.model_set import ModelSet
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import KnobTable
from shared.pipeline.stage import StageResult
from shared.pipeline.user_feeds import user_tower_feeds

SLOT = "ranker"


class RankInfo(msgspec.Struct):
    """Which model scored, and its heads (the ``head_<name>`` columns)."""

    model: str
    heads: list[str]


class RankingStage:
    """Answers ``score`` and one ``head_<name>`` column per head, row-aligned."""

    name = "ranking"
    path = "/v1/rank"
    aligned = True
    info_type = RankInfo

    def __init__(
        self,
        models: ModelSet | None,
        ranker: MultiTaskRanker | None = None,
        monitor: RankerMonitor | None = None,
    ) -> None:
        self.models = models
        self.ranker = ranker or MultiTaskRanker()
        self.monitor = monitor  # drift windows and the feature log (docs/monitoring.md)
        self.components = [self.ranker]
        self.knobs = KnobTable(self.components)

    def needs(self) -> tuple[str, ...]:
        """The ranker's item inputs."""
        return self.ranker.needs

    def provides(self) -> tuple[str, ...]:
        """The blended score and the heads."""
        return self.ranker.provides

    async def run(self, ctx: RequestContext, frame: Frame) -> StageResult[RankInfo]:
        """One ONNX run over the frame, under the variant's ranker alias and blend."""
        if self.models is None:
            raise RuntimeError("a declaration of the stage (no models) cannot run")
        bundle = self.models.get(ctx.variant.alias(SLOT))
        knobs = self.knobs.resolve(ctx.variant)[self.ranker.name]
        assert isinstance(knobs, RankerKnobs)
        observe = self.monitor.hook(ctx, bundle) if self.monitor is not None else None
        user = user_tower_feeds(ctx.user, ctx.now, self.ranker.model(bundle).config)
        score, heads = self.ranker.score(bundle, user, frame, ctx.now, knobs, observe)
        out = Frame(frame.ids, {"score": score})
        for head, values in heads.items():
            out.columns[f"head_{head}"] = values
        label = bundle.labels.get("ranker", bundle.bundle_id)
        return StageResult(out, RankInfo(label, list(heads)))
