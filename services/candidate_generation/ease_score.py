"""EaseScore: every merged candidate's EASE score, the ranker's ``ease_score`` input."""

from __future__ import annotations

import numpy as np

from services.candidate_generation.sources.base import SourceCall
from shared.frame import Frame
from shared.pipeline.knobs import Knobs


class EaseScoreKnobs(Knobs, frozen=True):
    """No knobs: the score is a feature, computed the way the ranker was trained on it."""


class EaseScore:
    """Sum of the bundle's EASE weights (item_index/item_item.npz) from the user's stored
    history to each candidate, whichever source found it: what training computes from the same
    weights and history window (``training.evaluation.evaluate.ease_matrix``). Zero for every
    candidate when the bundle ships no weights, the user has no history or the item is new."""

    name = "ease_score"
    needs = ()
    provides = ("ease_score",)
    Knobs = EaseScoreKnobs

    def annotate(self, frame: Frame, call: SourceCall) -> Frame:
        """``frame`` with its ``ease_score`` column (the sums the EASE source computed for
        this request, when it ran)."""
        index = call.bundle.index
        sums = call.ease_sums() if call.user.history and len(frame) else None
        if sums is None or index is None:
            frame.columns["ease_score"] = np.zeros(len(frame), dtype=np.float32)
            return frame
        frame.columns["ease_score"] = sums.at(index.rows(frame.ids))
        return frame
