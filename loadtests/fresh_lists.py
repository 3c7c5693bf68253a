"""Fresh lists: each request of a window shows the ranker's best items the user can still see.

The fixed-list model (``loadtests.experiment_sensitivity``, ``--lists fixed``) shows a persona
the same top k at every request of the window and only blocks, in place, what the user clicked
or hid, so a user with many requests soon has nothing new to click and their clicks saturate.
The platform refills its lists instead: the seen filter drops every item the user interacted
with (``services/filtering/filters/seen_filter.py``), the blocked filter what they hid, and
re-ranking's fatigue drops an item shown ``max_impressions`` (3) times (docs/serving.md,
``fatigue``). So here each ranker keeps one fixed ranking per persona, ``depth`` items deep (the
same noisy-oracle order whose top k the fixed lists show), and every request shows its first k
items that the user has neither clicked, hidden, nor been shown ``max_impressions`` times.
Interleaving drafts from the two rankers' lists so filtered at each request (both rankers see
the same user state, as in the gateway, where the filters run before ranking).

Not modelled: fatigue's score penalty per earlier impression (0.1 on the platform's score scale,
which the oracle's scores do not share), the fatigue window's 7-day expiry, and interactions
changing the rankers' inputs. A window cannot reach past ``depth`` items: at most ``k`` items
leave the eligible set per request, so the first k eligible items of request r lie in the first
k (r + 1) of the ranking, and a request that finds fewer than k eligible within ``depth`` is
padded with items nobody clicks and counted (``Played`` users see them as a shorter list).

A/B arms, the CUPED pre-period and interleaving all run through ``play_fresh`` on the same users
and request counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loadtests.session_play import F64, I64, Bool, Played, Tally, respond, team_draft_batch

MAX_IMPRESSIONS = 3  # the fatigue re-ranker's default (services/reranking: max_impressions)
_BLOCKED = np.int8(127)  # an item clicked or hidden: never eligible again


@dataclass(frozen=True)
class Rankings:
    """Both rankers' rankings per persona, ``depth`` deep, as indices into that persona's union
    (an item in both carries production's index), followed by ``k`` padding columns that no one
    clicks."""

    a: I64  # (personas, depth) production: 0..depth-1
    b: I64  # (personas, depth) candidate: shared items < depth, its own depth..2 depth-1
    p_click: F64  # (personas, 2 depth + k) P(click | examined); padding 0
    p_hide: F64  # (personas, 2 depth + k)

    @property
    def depth(self) -> int:
        """How deep each ranking goes."""
        return int(self.a.shape[1])

    @property
    def padding(self) -> I64:
        """The k padding columns (one per position, so a padded list has distinct ids)."""
        start = 2 * self.depth
        return np.arange(start, self.p_click.shape[1], dtype=np.int64)


def union_rankings(col_a: I64, col_b: I64, p_click: F64, p_hide: F64, k: int) -> Rankings:
    """Rankings from catalogue columns (personas, depth) and the truth of [col_a | col_b]."""
    depth = col_a.shape[1]
    same = col_b[:, :, None] == col_a[:, None, :]
    b = np.where(same.any(axis=2), same.argmax(axis=2), depth + np.arange(depth))
    pad = np.zeros((col_a.shape[0], k))
    a = np.broadcast_to(np.arange(depth), col_a.shape).copy()
    return Rankings(a, b.astype(np.int64), np.hstack([p_click, pad]), np.hstack([p_hide, pad]))


@dataclass
class _Window:
    """Per user, impressions of each union item (``_BLOCKED`` once clicked or hidden)."""

    uses: np.ndarray
    max_impressions: int
    short_requests: int = 0

    def first_eligible(self, ranking: I64, idx: I64, pad: I64) -> I64:
        """Each row's first k eligible items of ``ranking`` (rows of users ``idx``), padded."""
        k = pad.size
        if ranking.shape[1] == k:  # a window's first request: nothing has left yet
            return ranking
        eligible = self.uses[idx[:, None], ranking] < self.max_impressions
        count = np.cumsum(eligible, axis=1)
        rows, cols = np.nonzero(eligible & (count <= k))
        out = np.broadcast_to(pad, (idx.size, k)).copy()
        out[rows, count[rows, cols] - 1] = ranking[rows, cols]
        self.short_requests += int((count[:, -1] < k).sum())
        return out

    def show(self, idx: I64, shown: I64, clicked: Bool, hidden: Bool) -> None:
        """Count the impressions; what was clicked or hidden leaves for good."""
        rows = idx[:, None]
        uses = self.uses[rows, shown] + 1
        self.uses[rows, shown] = np.where(clicked | hidden, _BLOCKED, uses)


def play_fresh(
    deep: Rankings,
    examine: F64,
    persona: I64,
    requests: I64,
    rng: np.random.Generator,
    *,
    click_factor: F64 | None = None,
    treated: Bool | None = None,
    interleave: bool = False,
    max_impressions: int = MAX_IMPRESSIONS,
) -> Played:
    """Each user's requests in the window with fresh lists: production's, the candidate's where
    ``treated``, or a team draft of both at every request (and the requests that ran short)."""
    n, k = persona.size, examine.size
    window = _Window(np.zeros((n, deep.p_click.shape[1]), dtype=np.int8), max_impressions)
    tally, pad = Tally(n), deep.padding
    for request in range(int(requests.max(initial=0))):
        idx = np.flatnonzero(requests > request)
        who = persona[idx]
        reach = min(deep.depth, k * (request + 1))  # at most k items leave per request
        a, b = deep.a[who, :reach], deep.b[who, :reach]
        teams = None
        if interleave:
            flips = rng.random((idx.size, k // 2 + 1)) < 0.5
            lists = window.first_eligible(a, idx, pad), window.first_eligible(b, idx, pad)
            shown, *drafted = team_draft_batch(*lists, flips)
            teams = (drafted[0], drafted[1])
        else:
            ranking = a if treated is None else np.where(treated[idx, None], b, a)
            shown = window.first_eligible(ranking, idx, pad)
        factor = None if click_factor is None else click_factor[idx]
        tables = (deep.p_click, deep.p_hide)
        clicked, hidden, p_click = respond(tables, who, shown, factor, examine, rng)
        window.show(idx, shown, clicked, hidden)
        tally.add(idx, clicked, p_click * examine, teams)
    return tally.played(window.short_requests)


@dataclass(frozen=True)
class MonteCarloEffect:
    """Expected clicks per user of each ranker over the same users and draws (common random
    numbers), and the standard error of the lift from their paired difference."""

    production: float
    candidate: float
    lift_se: float
    users: int


def fresh_effect(
    deep: Rankings,
    examine: F64,
    persona: I64,
    requests: I64,
    click_factor: F64 | None,
    seed: int,
    max_impressions: int = MAX_IMPRESSIONS,
) -> MonteCarloEffect:
    """Both rankers' expected clicks per user, each user played under both from the same seed;
    per user the Rao-Blackwellised clicks (the lists' click probabilities, not the draws)."""
    arms = []
    for treated in (np.zeros(persona.size, bool), np.ones(persona.size, bool)):
        played = play_fresh(
            deep,
            examine,
            persona,
            requests,
            np.random.default_rng(seed),
            click_factor=click_factor,
            treated=treated,
            max_impressions=max_impressions,
        )
        arms.append(played.expected)
    a, b = arms
    lift = b.mean() / a.mean() - 1
    # delta method on mean(b) / mean(a): the paired residual b - (1 + lift) a
    se = float((b - (1 + lift) * a).std(ddof=1) / np.sqrt(a.size) / a.mean())
    return MonteCarloEffect(float(a.mean()), float(b.mean()), se, int(a.size))
