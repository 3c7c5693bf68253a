"""Team-draft interleaving (Radlinski, Kurup & Joachims 2008) and its preference test.

Two rankers answer the same request; the user sees one list drafted from both, each position
credited to the team (ranker) that picked it, and clicks decide which ranker the user prefers.
Because each user compares both rankers on the same request, it is reported to need one to
two orders of magnitude fewer users than an A/B test of the same rankers (Chapelle, Joachims,
Radlinski & Yue 2012, "Large-scale validation and analysis of interleaved search evaluation").

- ``team_draft``: each round a fair coin picks which team drafts first; each team then adds
  its highest-ranked item not yet in the list. A team whose list holds nothing new is
  exhausted and the other fills the remaining positions. Repeated ids within a list are
  skipped (they are in the list already). Pure Python over the two lists, O(len(a) + len(b)).
- Neutral positions: in a round where both teams' next item is the same, the coin alone
  decides which team is credited with it, so a click on it says nothing of the rankers and
  only adds a fair +-1 to the margin (and if the teams' next items agree again after it, the
  same holds for the follower's pick). ``Interleaved.neutral`` lists those positions, and
  ``credit`` gives them to neither team. The lists shown are team-draft's own; only the credit
  changes, and its expectation does not (a click on an item is independent of the coin that
  labelled it when the item's position is the same either way). On identical rankings every
  position is neutral. The same idea as the "competitive pairs" of Airbnb's interleaving
  (Zhang et al. 2022): credit only where the rankers disagreed.
- ``credit``: clicks per team on one impression; ``UserPreference`` sums them over a user's
  impressions (its ``preference`` is the team with more credited clicks, else a tie), and
  ``count_preferences`` does the same for arrays of (user, clicks a, clicks b) rows. The graded
  test of the per-user credit margin is ``shared.stats.interleaving_graded``.
- ``preference_test``: the share of users with a preference who prefer B, its interval (Wilson
  or exact Clopper-Pearson) and the two-sided sign test of share = 0.5 (exact binomial; scipy is
  imported inside it, the gateway imports only this module's drafting and credit).
- ``preference_delta``: Chapelle et al.'s Delta = (wins_b + ties / 2) / n - 0.5 over all users,
  ties included, with a normal interval (> 0 favours B).

Cost, measured with ``timeit`` (median of 5 x 2,000 calls, 2-core dev machine shared with
other work), ``team_draft`` with half the items shared: 67 us for two 100-item lists into
k = 100, 20 us for k = 20 from 400-item lists, 18 us from 20-item lists (5-7 us of each is
numpy drawing the flips). ``test_drafting_fits_the_gateway_budget`` allows 500 us at k = 100.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Team = Literal["a", "b"]
Preference = Literal["a", "b", "tie"]
IntervalMethod = Literal["wilson", "exact"]

DEFAULT_PREFERENCE_ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class Interleaved:
    """One drafted list: the items in order, the team that picked each position, and the
    positions whose team only the coin decided (credited to neither, see the module notes)."""

    items: list[str]
    teams: list[Team]
    neutral: tuple[int, ...] = ()


def team_draft(a: Sequence[str], b: Sequence[str], k: int, rng: np.random.Generator) -> Interleaved:
    """Draft up to ``k`` items from rankings ``a`` and ``b``, coin flips drawn from ``rng``."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    # Every round with both teams drafting adds two items but possibly the last: k // 2 + 1 flips.
    flips = (rng.random(k // 2 + 1) < 0.5).tolist()
    return team_draft_from_flips(a, b, k, flips)


def team_draft_from_flips(
    a: Sequence[str], b: Sequence[str], k: int, a_first: Sequence[bool]
) -> Interleaved:
    """The draft with given coin flips: ``a_first[r]`` says whether team a drafts first in round r.

    Rounds in which one team is already exhausted use no flip.
    """
    items: list[str] = []
    teams: list[Team] = []
    neutral: list[int] = []
    seen: set[str] = set()
    ia = ib = flip = 0  # each team's first position not yet checked against ``seen``

    def add(item: str, team: Team, is_neutral: bool) -> None:
        if is_neutral:
            neutral.append(len(items))
        items.append(item)
        teams.append(team)
        seen.add(item)

    while len(items) < k:
        ia, ib = _unseen(a, ia, seen), _unseen(b, ib, seen)
        if ia == len(a) or ib == len(b):  # a team is exhausted: the other fills, no coin
            if ia < len(a):
                add(a[ia], "a", False)
            elif ib < len(b):
                add(b[ib], "b", False)
            else:
                break
            continue
        if flip >= len(a_first):
            raise ValueError(f"a_first holds {len(a_first)} flips; this draft needs more")
        a_leads = a_first[flip]
        flip += 1
        # Both teams proposing the same item: the coin alone says whose it is.
        contested = a[ia] == b[ib]
        add(a[ia] if a_leads else b[ib], "a" if a_leads else "b", contested)
        if len(items) == k:
            break
        # the second team drafts its best item left (the first may just have taken it)
        ia, ib = _unseen(a, ia, seen), _unseen(b, ib, seen)
        if (ib if a_leads else ia) == (len(b) if a_leads else len(a)):
            continue
        # After a contested pick the follower's item is the coin's too when both teams' next
        # items agree again: the other coin would have given it to the other team.
        again = contested and ia < len(a) and ib < len(b) and a[ia] == b[ib]
        add(b[ib] if a_leads else a[ia], "b" if a_leads else "a", again)
    return Interleaved(items, teams, tuple(neutral))


def _unseen(ranking: Sequence[str], i: int, seen: set[str]) -> int:
    """The first position from ``i`` on whose item is not in ``seen`` (len when none is left)."""
    n = len(ranking)
    while i < n and ranking[i] in seen:
        i += 1
    return i


def credit(
    teams: Sequence[str], clicked_positions: Iterable[int], neutral: Iterable[int] = ()
) -> tuple[int, int]:
    """(clicks on team a's positions, clicks on team b's) of one impression.

    A position clicked more than once counts once; a ``neutral`` position counts for neither.
    """
    wins_a = wins_b = 0
    skip = set(neutral)
    for p in set(clicked_positions):
        if not 0 <= p < len(teams):
            raise ValueError(f"clicked position {p} is outside the {len(teams)} shown")
        if p in skip:
            continue
        if teams[p] == "a":
            wins_a += 1
        else:
            wins_b += 1
    return wins_a, wins_b


@dataclass(slots=True)
class UserPreference:
    """One user's credited clicks summed over their impressions."""

    clicks_a: int = 0
    clicks_b: int = 0

    def add(self, wins: tuple[int, int]) -> None:
        """Add one impression's ``credit``."""
        self.clicks_a += wins[0]
        self.clicks_b += wins[1]

    @property
    def preference(self) -> Preference:
        """The team with more credited clicks; 'tie' when equal (no clicks included)."""
        if self.clicks_a == self.clicks_b:
            return "tie"
        return "a" if self.clicks_a > self.clicks_b else "b"


@dataclass(frozen=True, slots=True)
class PreferenceCounts:
    """Users preferring each team, and users with no preference."""

    a: int
    b: int
    ties: int

    @property
    def n_users(self) -> int:
        """All users, ties included."""
        return self.a + self.b + self.ties


def tally(users: Iterable[UserPreference]) -> PreferenceCounts:
    """Count the preferences of ``users``."""
    counts = {"a": 0, "b": 0, "tie": 0}
    for user in users:
        counts[user.preference] += 1
    return PreferenceCounts(counts["a"], counts["b"], counts["tie"])


def user_margins(
    user_ids: ArrayLike, clicks_a: ArrayLike, clicks_b: ArrayLike
) -> NDArray[np.float64]:
    """Per user (in sorted id order), credited clicks of B minus A's, from one row per
    impression (user, credited clicks a, b), vectorised."""
    users = np.asarray(user_ids).ravel()
    ca = np.asarray(clicks_a, dtype=np.int64).ravel()
    cb = np.asarray(clicks_b, dtype=np.int64).ravel()
    if not users.size == ca.size == cb.size:
        raise ValueError(
            f"user_ids, clicks_a and clicks_b differ in length ({users.size}, {ca.size}, {cb.size})"
        )
    if users.size == 0:
        return np.zeros(0)
    _, user = np.unique(users, return_inverse=True)
    margins = np.bincount(user.ravel(), weights=(cb - ca).astype(np.float64))
    return margins.astype(np.float64)


def count_preferences(
    user_ids: ArrayLike, clicks_a: ArrayLike, clicks_b: ArrayLike
) -> PreferenceCounts:
    """Preferences from one row per impression (user, credited clicks a, b), vectorised."""
    margin = user_margins(user_ids, clicks_a, clicks_b)
    return PreferenceCounts(
        int((margin < 0).sum()), int((margin > 0).sum()), int((margin == 0).sum())
    )


@dataclass(frozen=True, slots=True)
class PreferenceTest:
    """Share of users with a preference who prefer B, its interval and the sign test."""

    prefs_a: int
    prefs_b: int
    share_b: float  # NaN with no preferences
    ci_low: float
    ci_high: float
    p_value: float  # two-sided exact binomial test of share_b = 0.5
    alpha: float
    method: IntervalMethod

    @property
    def n(self) -> int:
        """Users with a preference."""
        return self.prefs_a + self.prefs_b

    @property
    def winner(self) -> Preference:
        """'a' or 'b' when the test rejects at ``alpha``, else 'tie'."""
        if self.p_value > self.alpha:
            return "tie"
        return "b" if self.share_b > 0.5 else "a"


def preference_test(
    prefs_a: int,
    prefs_b: int,
    *,
    alpha: float = DEFAULT_PREFERENCE_ALPHA,
    method: IntervalMethod = "wilson",
) -> PreferenceTest:
    """Sign test of users preferring B against A (ties left out), with an interval for the share."""
    from scipy import stats  # not at import: the gateway imports this module

    if prefs_a < 0 or prefs_b < 0:
        raise ValueError(f"preference counts must be >= 0, got a={prefs_a}, b={prefs_b}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    n = prefs_a + prefs_b
    if n == 0:
        return PreferenceTest(0, 0, math.nan, 0.0, 1.0, 1.0, alpha, method)
    result = stats.binomtest(prefs_b, n, 0.5)
    if method == "wilson":
        low, high = _wilson(prefs_b, n, alpha)
    elif method == "exact":
        ci = result.proportion_ci(confidence_level=1 - alpha, method="exact")
        low, high = float(ci.low), float(ci.high)
    else:
        raise ValueError(f"method must be 'wilson' or 'exact', got {method!r}")
    return PreferenceTest(
        prefs_a, prefs_b, prefs_b / n, low, high, float(result.pvalue), alpha, method
    )


def _wilson(successes: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson's score interval for a binomial share."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class PreferenceDelta:
    """Chapelle et al.'s Delta = (wins_b + ties / 2) / n - 0.5 and its normal interval."""

    delta: float  # > 0 favours B; NaN with no users
    std_error: float
    ci_low: float
    ci_high: float


def preference_delta(
    prefs_a: int, prefs_b: int, ties: int, *, alpha: float = DEFAULT_PREFERENCE_ALPHA
) -> PreferenceDelta:
    """Delta over all users, ties counting half, with a normal interval at level 1 - alpha."""
    if min(prefs_a, prefs_b, ties) < 0:
        raise ValueError(f"counts must be >= 0, got a={prefs_a}, b={prefs_b}, ties={ties}")
    n = prefs_a + prefs_b + ties
    if n == 0:
        return PreferenceDelta(math.nan, math.inf, -math.inf, math.inf)
    # Each user scores 1 (B), 1/2 (tie) or 0 (A); Delta is their mean minus 1/2.
    mean = (prefs_b + ties / 2) / n
    second_moment = (prefs_b + ties / 4) / n
    se = math.sqrt(max(0.0, second_moment - mean * mean) / n)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    delta = mean - 0.5
    return PreferenceDelta(delta, se, delta - z * se, delta + z * se)
