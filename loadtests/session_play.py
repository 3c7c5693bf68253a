"""The vectorised pieces both session models of the sensitivity benchmark share.

``react`` is one request's reaction (the simulator's ``Behaviour.react`` without likes and
dwell), ``team_draft_batch`` is ``shared.stats.interleaving.team_draft_from_flips`` for many
rows at once (with its neutral positions), and ``Played`` is what a simulated window yields per
user. The fixed-list model lives in ``loadtests.experiment_sensitivity``, the fresh-list one in
``loadtests.fresh_lists``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


def react(
    p_click: F64, p_hide: F64, examine: F64, u: npt.NDArray[np.floating[Any]], blocked: Bool
) -> tuple[Bool, Bool]:
    """(clicked, hidden) of one request per row: ``Behaviour.react`` on the same uniforms for
    examination, click and hide (``u`` of shape (3, rows, k)), without likes and dwell."""
    examined = u[0] < examine
    clicked = examined & ~blocked & (u[1] < p_click)
    hidden = examined & ~clicked & ~blocked & (u[2] < p_hide)
    return clicked, hidden


def team_draft_batch(a: I64, b: I64, a_first: Bool) -> tuple[I64, Bool, Bool]:
    """``team_draft_from_flips`` for many rows at once: (items, drafted by b, neutral), each of
    shape (rows, k).

    ``a`` and ``b`` (rows, k) hold distinct ids per row; ``a_first`` (rows, k // 2 + 1). With
    both lists as long as the draft neither team is ever exhausted: a team has skipped or taken
    at most as many items as are in the list so far, fewer than k. A round's first pick is
    neutral when both teams' next items are the same; its second when the first was and both
    teams' next items agree again.
    """
    rows, k = a.shape
    at = np.arange(rows)
    items = np.empty((rows, k), dtype=np.int64)
    by_b = np.empty((rows, k), dtype=bool)
    neutral = np.empty((rows, k), dtype=bool)
    taken_a = np.zeros((rows, k), dtype=bool)
    taken_b = np.zeros((rows, k), dtype=bool)
    for pos in range(k):
        lead_a = a_first[:, pos // 2]
        pick_a = lead_a if pos % 2 == 0 else ~lead_a  # the leader drafts first in each round
        next_a = a[at, np.argmax(~taken_a, axis=1)]
        next_b = b[at, np.argmax(~taken_b, axis=1)]
        item = np.where(pick_a, next_a, next_b)
        agree = next_a == next_b
        items[:, pos], by_b[:, pos] = item, ~pick_a
        neutral[:, pos] = agree if pos % 2 == 0 else agree & neutral[:, pos - 1]
        taken_a |= a == item[:, None]
        taken_b |= b == item[:, None]
    return items, by_b, neutral


def credit_margins(clicked: Bool, by_b: Bool, neutral: Bool) -> tuple[I64, I64]:
    """Per row, credited clicks of b minus a's: with neutral positions credited to neither (the
    platform's credit), and team-draft's plain credit (every click to the team that drafted it)."""
    plain = 2 * (clicked & by_b).sum(axis=1) - clicked.sum(axis=1)
    counted = clicked & ~neutral
    return 2 * (counted & by_b).sum(axis=1) - counted.sum(axis=1), plain


def respond(
    tables: tuple[F64, F64],
    who: I64,
    shown: I64,
    factor: F64 | None,
    examine: F64,
    rng: np.random.Generator,
    blocked: Bool | None = None,
) -> tuple[Bool, Bool, F64]:
    """One request of users with personas ``who`` shown union items ``shown``: (clicked,
    hidden, P(click | examined) of what was shown), from the persona tables (P(click), P(hide))
    and the users' click ``factor``."""
    p_click = tables[0][who[:, None], shown]
    if factor is not None:
        p_click = np.minimum(p_click * factor[:, None], 1.0)
    p_hide = tables[1][who[:, None], shown]
    # float32 uniforms: half the cost of float64, and 2^-24 resolution is ample for clicks
    u = rng.random((3, *shown.shape), dtype=np.float32)
    nothing = np.zeros(shown.shape, dtype=bool) if blocked is None else blocked
    clicked, hidden = react(p_click, p_hide, examine, u, nothing)
    return clicked, hidden, p_click


class Tally:
    """What a window's requests add up to per user (``Played`` once done)."""

    def __init__(self, n: int) -> None:
        self.clicks, self.expected = np.zeros(n), np.zeros(n)
        self.margin, self.expected_margin = np.zeros(n), np.zeros(n)
        self.plain, self.expected_plain = np.zeros(n), np.zeros(n)

    def add(self, idx: I64, clicked: Bool, p_seen: F64, teams: tuple[Bool, Bool] | None) -> None:
        """One request of users ``idx``: clicks, their expectation from ``p_seen`` (each shown
        position's probability of a click: examined, clickable, clicked), and with ``teams``
        (drafted by b, neutral) the credited margins, drawn and expected."""
        self.clicks[idx] += clicked.sum(axis=1)
        self.expected[idx] += p_seen.sum(axis=1)
        if teams is not None:
            by_b, neutral = teams
            counted, plain = credit_margins(clicked, by_b, neutral)
            self.margin[idx] += counted
            self.plain[idx] += plain
            team_sign = np.where(by_b, 1.0, -1.0)
            self.expected_plain[idx] += (p_seen * team_sign).sum(axis=1)
            self.expected_margin[idx] += (p_seen * team_sign * ~neutral).sum(axis=1)

    def played(self, short_requests: int = 0) -> Played:
        """The window's totals."""
        return Played(
            self.clicks,
            self.margin,
            self.plain,
            self.expected,
            short_requests,
            self.expected_margin,
            self.expected_plain,
        )


@dataclass(frozen=True)
class Played:
    """Per user: clicks of the window, expected clicks given the lists shown (the same draws'
    Rao-Blackwellised clicks, for a true effect with less noise), and for interleaving the
    credited clicks of the candidate minus production's, neutral positions credited to neither
    (``margin``) and team-draft's plain credit (``plain_margin``); 0 otherwise."""

    clicks: F64
    margin: F64
    plain_margin: F64
    expected: F64
    short_requests: int = 0  # fresh lists: requests that found fewer than k eligible items
    # the margins' expectations given the lists shown (Rao-Blackwellised: the same mean,
    # without the clicks' own noise; for the analytical figures)
    expected_margin: F64 | None = None
    expected_plain_margin: F64 | None = None
