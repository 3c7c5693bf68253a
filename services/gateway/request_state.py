"""RequestState: one request as it moves through the steps (what each step read or decided)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.features import UserFeatures
from shared.frame import Frame
from shared.online_store.types import UserState
from shared.pipeline.context import MAX_HISTORY, RequestContext, UserContext, VariantSpec

if TYPE_CHECKING:
    from services.gateway.experiments.assign import ExperimentDecision
    from services.gateway.experiments.assignment import ExperimentAssignment
    from services.gateway.request_run import RequestRun


def seed_of(request_id: str) -> int:
    """A reproducible exploration seed per request (fits int64)."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def full_history(state: UserState) -> list[str]:
    """The user's whole seen window, the stored recent history last (oldest → newest) and the
    older seen items before it (by id: the store keeps their times, the reader not their
    order). The towers read the last ``hist_len``; the EASE scores and the two-tower source's
    history exclusion read all of it (training scores EASE from every known item)."""
    recent = list(dict.fromkeys(state.features.history))
    older = sorted(state.seen.difference(recent))
    return (older + recent)[-MAX_HISTORY:]


def user_context(state: UserState) -> UserContext:
    """The part of the user's state every stage gets."""
    f = state.features
    return UserContext(
        user_id=f.user_id, known=state.known, age=f.age, gender=f.gender,
        occupation=f.occupation, zip_code=f.zip_code, region=state.region,
        segment=state.segment, history=full_history(state),
        genre_affinity=None if f.genre_affinity is None else list(f.genre_affinity),
        n_events=f.n_events, rating_sum=f.rating_sum, n_ratings=f.n_ratings,
        last_event_ts=f.last_event_ts,
    )  # fmt: skip


def request_context(
    state: UserState, now: float, k: int = 20, seed: int = 0,
    variant: VariantSpec | None = None, request_id: str = "",
) -> RequestContext:  # fmt: skip
    """The context of a request by ``state``'s user (what every stage call carries)."""
    return RequestContext(
        request_id=request_id[:64], now=now, user=user_context(state), k=k, seed=seed,
        variant=variant or VariantSpec(),
    )  # fmt: skip


@dataclass
class RequestState:
    """A validated request and everything the steps add to it."""

    request_id: str
    user_id: str
    k: int
    now: float
    variant: VariantSpec
    explain: bool = False
    user: UserState | None = None
    frame: Frame = field(default_factory=lambda: Frame([]))
    candidates: Frame | None = None  # the frame candidate generation answered (before filters)
    sources: dict[str, Any] = field(default_factory=dict)  # per-source status
    filters: list[str] = field(default_factory=list)  # the filters that ran, in order
    removed: dict[str, list[str]] = field(default_factory=dict)  # reason -> item ids
    heads: list[str] = field(default_factory=list)
    rerankers: list[str] = field(default_factory=list)
    # rows of ``frame`` exploration slots drew from (read by shadows only: kept as rows)
    explore_pool_rows: np.ndarray | None = None
    served: Frame | None = None  # the final list, with its columns
    served_rows: np.ndarray | None = None  # rows of ``frame`` the final list holds
    models: dict[str, str] = field(default_factory=dict)  # model part -> label
    canary_failure: str | None = None  # set when production re-ran a request the canary failed
    rerun_s: float = 0.0  # how long that re-run took (not the canary's time: see rollouts.after)
    endpoints: dict[str, str] = field(default_factory=dict)  # stage -> URL (a canary deployment)
    # Experiments in force (set by the route) and what the experiments step decided of them.
    experiments: tuple[ExperimentAssignment, ...] = ()
    claimed_slots: frozenset[str] = frozenset()  # model slots the rollouts in force claim
    experiment: ExperimentDecision | None = None
    _ctx: RequestContext | None = None
    run: RequestRun = field(init=False)

    def user_state(self) -> UserState:
        """The user's state (an unknown user until the user step has run)."""
        if self.user is None:
            self.user = UserState(UserFeatures(user_id=self.user_id), known=False)
        return self.user

    def ctx(self) -> RequestContext:
        """The context every stage call carries (built once the user is known)."""
        if self._ctx is None:
            self._ctx = request_context(
                self.user_state(), self.now, self.k, seed_of(self.request_id), self.variant,
                self.request_id,
            )  # fmt: skip
        return self._ctx

    def keep(self, removed_by: np.ndarray, filters: list[str]) -> None:
        """Apply a filtering result: rows removed by filter ``i`` go under its name."""
        self.filters = filters
        for i in np.unique(removed_by[removed_by >= 0]).tolist():
            rows = np.flatnonzero(removed_by == i).tolist()
            self.removed[filters[i]] = [self.frame.ids[r] for r in rows]
        if (removed_by >= 0).any():
            self.frame = self.frame.take(np.flatnonzero(removed_by < 0))

    def teams(self) -> list[str] | None:
        """Per served position, the interleaving arm that contributed the item (else None)."""
        il = self.experiment.interleave if self.experiment is not None else None
        if il is None or self.served_rows is None or "team" not in self.frame:
            return None
        team = self.frame["team"][self.served_rows].tolist()
        return [il.arm_names[t] if t >= 0 else "" for t in team]

    def neutral(self) -> list[bool] | None:
        """Per served position of an interleaved list, whether a click on it credits neither
        team (both rankers proposed the item in the same round); else None."""
        if self.teams() is None or "team_neutral" not in self.frame:
            return None
        neutral: list[bool] = self.frame["team_neutral"][self.served_rows].tolist()
        return neutral

    @property
    def cold_start(self) -> str:
        """returning, new_user (a profile, no history) or unknown_user."""
        user = self.user_state()
        if not user.known:
            return "unknown_user"
        return "returning" if len(user.features.history) else "new_user"
