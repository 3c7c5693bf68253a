"""Who visits and when: returning MovieLens users and new ``sim-new-<n>`` users, in sessions.

Sessions arrive open-loop as a Poisson process whose rate makes the *requests* per second equal
the asked rate (a session's requests are spaced by ``think_s`` and do not wait for anything but
their own answers). A session belongs to a new user with probability ``new_user_share`` (each a
fresh id), else to a returning user drawn with weight ``n_ratings ** activity_exponent`` (0:
uniform; 1: in proportion to activity). Its length is geometric with mean
``session_mean_requests``, capped at ``session_max_requests``. Everything follows from the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadtests.simulator.settings import PopulationSettings

_STREAM = 0x5E55  # separates the population's random stream from the per-request ones


@dataclass(frozen=True)
class PlannedSession:
    """One visit: who, when (seconds after the start), how many requests."""

    index: int
    user_id: str
    start_s: float
    requests: int
    new_user: bool


class Population:
    """Draws the sessions of a run from the returning users and the new-user share."""

    def __init__(
        self,
        users: Sequence[str],
        activity: npt.NDArray[np.int64],
        settings: PopulationSettings | None = None,
    ) -> None:
        self.settings = settings or PopulationSettings()
        self.users = list(users)
        weights = np.maximum(np.asarray(activity, dtype=np.float64), 1.0)
        weights **= self.settings.activity_exponent
        self.weights = weights / weights.sum()

    def mean_requests(self) -> float:
        """Expected requests per session (the capped geometric's mean)."""
        s = self.settings
        p = 1.0 / s.session_mean_requests
        return float((1.0 - (1.0 - p) ** s.session_max_requests) / p)

    def plan(
        self,
        seed: int,
        rate: float,
        duration_s: float | None = None,
        n_sessions: int | None = None,
    ) -> list[PlannedSession]:
        """The sessions starting within ``duration_s``, or the first ``n_sessions``."""
        if (duration_s is None) == (n_sessions is None):
            raise ValueError("give exactly one of duration_s and n_sessions")
        if rate <= 0:
            raise ValueError("rate must be > 0 requests/s")
        rng = np.random.default_rng([seed, _STREAM])
        gap = self.mean_requests() / rate
        sessions: list[PlannedSession] = []
        t, new_users = 0.0, 0
        while n_sessions is None or len(sessions) < n_sessions:
            t += float(rng.exponential(gap))
            if duration_s is not None and t >= duration_s:
                break
            new = bool(rng.random() < self.settings.new_user_share)
            # Drawn for new sessions too: every session takes the same draws, so the stream
            # (and who comes when) does not shift with the new-user share.
            returning = self.users[int(rng.choice(len(self.users), p=self.weights))]
            length = int(rng.geometric(1.0 / self.settings.session_mean_requests))
            user = f"{self.settings.new_user_prefix}{new_users}" if new else returning
            new_users += new
            requests = min(length, self.settings.session_max_requests)
            sessions.append(PlannedSession(len(sessions), user, t, requests, new))
        return sessions
