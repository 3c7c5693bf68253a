"""What a simulated user does with a shown list: examine, click, like, watch, hide.

Examination is the position-based model: position ``p`` (0 = top) is examined with probability
``1 / (1 + p) ** eta``, independently of the other positions and of what the user clicked. It
vectorises, and its propensities are known exactly, so position-bias and off-policy estimators
can be checked against the truth (a cascade model would make them depend on the items above).
Then, per examined item: click ~ Bernoulli(p_click); given a click, like ~ Bernoulli(p_like)
and a dwell ~ log-normal; an examined item that was not clicked is hidden ~ Bernoulli(p_hide).

Every request takes its own ``numpy.random.Generator`` seeded by (seed, user, session, request)
and the same fixed block of draws per position, whatever the list holds: the same answers give
the same actions, and two arms showing one user different lists share the random numbers
(common random numbers, which lowers the variance of comparisons).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadtests.simulator.ground_truth import ListTruth
from loadtests.simulator.settings import BehaviourSettings

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
EXAMINE, CLICK, LIKE, HIDE, DWELL = range(5)  # rows of one request's draws
N_DRAWS = 5


def request_rng(seed: int, user_id: str, session: int, request: int) -> np.random.Generator:
    """The generator of one request, the same in every process and run."""
    user = int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, user, session, request])


def draws(rng: np.random.Generator, k: int) -> F64:
    """One request's random numbers, shape (N_DRAWS, k): four uniforms and a normal per slot."""
    out = np.empty((N_DRAWS, k))
    out[:DWELL] = rng.random((DWELL, k))
    out[DWELL] = rng.standard_normal(k)
    return out


@dataclass(frozen=True)
class Reaction:
    """What users did with their lists, arrays of shape (lists, positions)."""

    examined: Bool
    clicked: Bool
    liked: Bool
    hidden: Bool
    watch_s: F64  # dwell seconds of clicked items, 0 elsewhere
    expected_clicks: F64  # (lists,): sum over shown positions of P(examine) * p_click


class Behaviour:
    """The examination model plus the Bernoulli and log-normal draws."""

    def __init__(self, settings: BehaviourSettings | None = None) -> None:
        self.settings = settings or BehaviourSettings()

    def examine_probs(self, k: int) -> F64:
        """P(examine position p) for p = 0..k-1."""
        positions = np.arange(k, dtype=np.float64)
        probs: F64 = np.power(1.0 + positions, -self.settings.position_eta)
        return probs

    def react(
        self, truth: ListTruth, rand: F64, shown: Bool, blocked: Bool | None = None
    ) -> Reaction:
        """Reactions to lists: ``rand`` (lists, N_DRAWS, k) from :func:`draws`; ``shown`` marks
        real slots (a short list is padded); ``blocked`` slots are examined but never clicked
        (the user already clicked or hid that item earlier in the session)."""
        k = shown.shape[1]
        p_click = np.where(shown, truth.p_click, 0.0)
        if blocked is not None:
            p_click = np.where(blocked, 0.0, p_click)
        exam = self.examine_probs(k)
        examined = shown & (rand[:, EXAMINE] < exam)
        clicked = examined & (rand[:, CLICK] < p_click)
        liked = clicked & (rand[:, LIKE] < truth.p_like)
        hidden = examined & ~clicked & (rand[:, HIDE] < truth.p_hide)
        if blocked is not None:
            hidden &= ~blocked
        dwell = np.exp(truth.watch_log_median + truth.watch_sigma * rand[:, DWELL])
        watch = np.where(clicked, np.clip(dwell, 1.0, truth.watch_max_s), 0.0)
        return Reaction(examined, clicked, liked, hidden, watch, (exam * p_click).sum(axis=1))
