"""How many users each experiment method needs to see a small improvement, on the simulator.

``python -m loadtests.experiment_sensitivity [--seeds 200] [--activity-shape 1] [--click-sd 0.3]
[--lists fresh] [--mean-requests 3] [--out reports/experiments]``

The traffic simulator's hidden ground truth and behaviour (``loadtests.simulator``) judge two
noisy-oracle rankers of known quality (``loadtests.rollout_decisions.noisy_oracle``): production
ranks by the true interest plus noise sd ``--production-noise`` (0.5), the candidate with less
noise (``--candidate-noise`` 0.45), a few percent more clicks; ``--error-correlation`` makes the
candidate keep part of production's errors (a retrained model: as good, agreeing more). The true
lift is the expected clicks per user of each ranker. With fixed lists it is exact over tastes
and request counts, the users' click factor integrated numerically (a trapezoid over its normal
score; the report gives the lift's change at twice the step as its error); with fresh lists a
user's later lists depend on what they clicked, so it is a Monte Carlo over ``--effect-users``
(300,000) users played under both rankers with the same random numbers, each user's clicks
given the lists they were shown (the report gives its standard error).

Users: a MovieLens taste drawn with weight ``n_ratings ** 0.5``, or 10 % new users with the
average user's taste. A persona is a taste and one of ``--model-draws`` (16) draws of both
rankers' errors. With one draw the candidate's edge over 944 tastes is as much luck as noise
level (it was worse than production at the top position in draw 0), which moved the old
interleaving ratio from 0.3 to 5.6 between draws. Clicks follow the simulator's behaviour:
position-based examination ``1/(1+p)``, a click with the truth's probability, a hide otherwise
(``session_play.react`` is ``Behaviour.react`` without likes and dwell).

A window's requests (``--lists``):

- ``fresh`` (the default): each request shows the ranker's first k items that the user has not
  clicked, hidden, or been shown ``--max-impressions`` (3) times, from a ranking ``--depth``
  (200) deep: what the platform's seen and blocked filters and its fatigue re-ranker do
  (``loadtests.fresh_lists`` says what is and is not modelled). Both A/B arms, the pre-period
  and interleaving are played this way on the same kind of users;
- ``fixed``: the old model, the same top k at every request, an item clicked or hidden blocked
  in place, so a user with many requests soon has nothing new to click; kept, with its random
  draws, for comparison.

Beyond the taste, two things persist in a user (``UserModel``), in the pre-period as in the
experiment, as they do in real traffic (Deng et al., WSDM 2013, CUPED: a user's pre-period
activity predicts their experiment metric; the large interleaving gains reported by Netflix,
2017, and Airbnb, 2022, come from each user comparing both rankers, which cancels how much
users differ):

- activity: requests in the window = 1 + Poisson(lambda), lambda ~ gamma of shape
  ``--activity-shape`` (1.0) and mean ``--mean-requests`` - 1 per user (the mean is 3 by
  default; ``--mean-requests`` lengthens the window, several sessions a user), at most
  ``--activity-cap`` (50). Calibrated on ml-100k's ratings per user (943 users; mean 106,
  median 65, sd 101): their coefficient of variation 0.95 gives a moment-matched shape of 1.1,
  and the top 10 % / 20 % of users hold 32 % / 51 % of the ratings, where an exponential
  (shape 1) gives 33 % / 52 %. ml-100k keeps only users with at least 20 ratings, which hides
  the lightest users, so real activity is if anything more skewed (a gamma fit truncated at 20
  gives shape 0.17, an extrapolation below the cut): the sweep shows 0.2. Shape 1 has exactly
  the old marginal (1 + Poisson of an exponential of mean 2 is geometric of mean 3); what it
  adds is that the rate is the user's own in both periods. ml-100k cannot calibrate the
  window's length: its users rate in bursts (1.7 sessions, 30-minute gaps, in their first 14
  days; 67 % in one), which says how a rating site was used, not a recommender;
- click propensity: P(click | examined) times a lognormal factor of mean 1 and sd
  ``--click-sd`` (0.3), clipped at 1. Calibrated on how much ml-100k's users differ in the
  share of their ratings that are 4 or 5 (mean 0.58, sd 0.174; 0.160 once the binomial noise
  of each user's count is removed, a coefficient of variation of 0.28). Clicks likely differ
  more between users than ratings do; the sweep shows sd 1.

``--activity-shape 0 --click-sd 0`` is the old homogeneous population, drawn to the same random
numbers: one session per period, requests ~ geometric of mean 3 at most 10, redrawn in the
pre-period, so nothing but the taste persists.

Methods, each at a grid of user counts over ``--seeds`` seeds (two-sided, alpha 0.05):

- ``ab_clicks``: users split 50/50 by the gateway's salted hash, z-test on clicks per user;
- ``ab_ctr``: the same split, clicks per impression (delta method, ``shared.stats.ratio``);
- ``cuped``: ``ab_clicks`` adjusted by each user's clicks in a pre-period of the same length
  under production (new users: 0), ``shared.stats.cuped``; it carries whatever persists in a
  user (their taste, the list production gives them, their activity and click propensity);
- ``interleaving``: every request shows ``team_draft(production, candidate)``, each click
  credited to the team that drafted the item, neutral positions (both teams' pick in that
  round) to neither, as the platform credits; a user prefers the team with more: sign test;
- ``interleaving_graded``: the same users' margins (credited clicks of the candidate minus
  production's), the t-test of their mean (``shared.stats.interleaving_graded``), the
  analysis' primary read.

The users for 95 % power come from a probit fit of the simulated power, Phi(a + b sqrt(n)),
with a bootstrap over seeds; beside it the analytical figure of ``shared.stats.power`` from the
effect and variance measured in the same runs (interleaving's mean margin from its expectation
given the lists shown), and for comparison team-draft's plain credit (every click to the team
that drafted the item). Then A/A experiments, users arriving over ``--days`` days with a look
after each: for A/B production against itself, the always-valid ``msprt_relative`` and a naive
z-test read daily; for interleaving production against another ranker of its noise (the same
ranker twice is neutral at every position, so every margin is 0), each user's team labels
swapped by a fair coin, the sign test and the graded t-test read daily, the sequential sign test
(beta-binomial mixture) and the analysis' ``sequential_graded_test``. A sweep moves one setting
at a time (analytical, from a pilot each). Printed as a table; ``sensitivity.json`` and
``sensitivity.html`` (plots) under ``--out``. The measured figures, and what limits the ratio,
are in docs/experiments.md ("Sensitivity on the simulator").
"""

from __future__ import annotations

import argparse
import html
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from loadtests.fresh_lists import (
    MAX_IMPRESSIONS,
    Rankings,
    fresh_effect,
    play_fresh,
    union_rankings,
)
from loadtests.rollout_decisions import noisy_oracle
from loadtests.session_play import Played, Tally, respond, team_draft_batch
from loadtests.simulator.behaviour import Behaviour
from loadtests.simulator.ground_truth import GroundTruth
from loadtests.simulator.offline import assign_arms
from loadtests.simulator.settings import BehaviourSettings, PopulationSettings
from shared.stats.cuped import cuped_estimate
from shared.stats.interleaving import preference_test
from shared.stats.interleaving_graded import graded_preference_test, sequential_graded_test
from shared.stats.power import sample_size_means, sample_size_paired, sample_size_preference
from shared.stats.ratio import difference, summarize
from shared.stats.sequential import ArmStats, beta_binomial_log_lr, msprt_relative

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

REPO = Path(__file__).resolve().parents[1]
METHODS = ("ab_clicks", "ab_ctr", "cuped", "interleaving", "interleaving_graded")
AB_METHODS = METHODS[:3]
INTERLEAVING_METHODS = METHODS[3:]
LABELS = {
    "ab_clicks": "A/B, clicks per user",
    "ab_ctr": "A/B, clicks per impression",
    "cuped": "A/B + CUPED (pre-period clicks)",
    "interleaving": "interleaving, sign test",
    "interleaving_graded": "interleaving, graded (margin t)",
}
ALPHA = 0.05
POWER = 0.95
SALT = "experiment-sensitivity"
# Grid of user counts around the pilot's analytical estimate: dense where power crosses 0.95.
GRID_FACTORS = (0.5, 0.65, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.8)
# The sequential sign test mixes over Beta(100, 100) (sd 0.035 around 1/2): preference shares
# of 0.5-0.6 are what interleaving sees; the A/A guarantee holds for any prior fixed in advance.
SIGN_PRIOR = (100.0, 100.0)
MAX_TABLE_ROUNDS = 6  # all drafts of k <= 12: 64 per persona; k = 20 would need 1,024
# independent random streams
_STREAMS = {"pilot": 11, "power": 12, "aa": 13, "variance": 14, "effect": 15, "labels": 16}
# Users of the fresh lists' Monte Carlo true effect: the lift to about +-0.0003 (1 % of it)
EFFECT_USERS = 300_000
# How deep fresh lists' rankings go: a window of 50 requests at 3 impressions an item reaches
# about 10 x 50 / 3 + its clicks; the report counts requests that ran short
DEFAULT_DEPTH = 200


@dataclass(frozen=True)
class ListPair:
    """Production's and the candidate's top k per persona, both as indices into that persona's
    union of the two lists (an item in both carries production's index)."""

    a: I64  # (personas, k) production: 0..k-1
    b: I64  # (personas, k) candidate: shared items < k, its own items k..2k-1
    p_click: F64  # (personas, 2k) P(click | examined) of each union item
    p_hide: F64  # (personas, 2k) P(hide | examined, not clicked)
    weights: F64  # (personas,) share of users with this persona, sums to 1
    new: Bool  # (personas,) a new user's (no pre-period)
    examine: F64  # (k,) P(examine position)
    # Fresh lists: the same rankers' rankings as deep as a window reaches (None: the top k
    # shown at every request, blocked in place once clicked or hidden)
    deep: Rankings | None = None
    max_impressions: int = MAX_IMPRESSIONS

    @property
    def k(self) -> int:
        """List length."""
        return int(self.a.shape[1])

    @property
    def overlap(self) -> float:
        """Mean number of items the two lists share, weighted by persona."""
        return float(self.weights @ (self.b < self.k).sum(axis=1))

    @property
    def lists(self) -> str:
        """'fresh' or 'fixed': how a user's later requests are served."""
        return "fixed" if self.deep is None else "fresh"

    @cached_property
    def drafts(self) -> tuple[I64, Bool, Bool]:
        """Every team draft of each persona's two lists: items, whether the candidate drafted
        them and whether they are neutral, (personas, 2^rounds, k); bit r of the pattern number
        says production leads round r.
        """
        k, personas = self.k, self.a.shape[0]
        rounds = (k + 1) // 2  # the flips a k-item draft uses (team_draft draws k // 2 + 1)
        bits = (np.arange(2**rounds)[:, None] >> np.arange(rounds)) & 1
        flips = np.zeros((bits.shape[0], k // 2 + 1), dtype=bool)
        flips[:, :rounds] = bits == 1
        items, by_b, neutral = team_draft_batch(
            np.repeat(self.a, len(flips), axis=0),
            np.repeat(self.b, len(flips), axis=0),
            np.tile(flips, (personas, 1)),
        )
        shape = (personas, len(flips), k)
        return items.reshape(shape), by_b.reshape(shape), neutral.reshape(shape)


def personas(truth: GroundTruth, population: PopulationSettings) -> tuple[list[str], F64]:
    """The MovieLens users and one new user (the average taste), with their shares of users."""
    returning = np.maximum(truth.tables.user_activity, 1).astype(np.float64)
    returning **= population.activity_exponent
    returning *= (1 - population.new_user_share) / returning.sum()
    ids = [*truth.known_users, f"{population.new_user_prefix}0"]
    return ids, np.append(returning, population.new_user_share)


def build_pair(
    truth: GroundTruth,
    production_noise: float,
    candidate_noise: float | None,
    *,
    k: int = 10,
    model_seed: int = 0,
    model_draws: int = 1,
    behaviour: Behaviour | None = None,
    population: PopulationSettings | None = None,
    depth: int | None = None,
    max_impressions: int = MAX_IMPRESSIONS,
    candidate_seed_offset: int = 10_000,
    error_correlation: float = 0.0,
) -> ListPair:
    """The two rankers' lists for every persona; ``candidate_noise=None`` is production (A/A).

    With ``model_draws`` > 1 a persona is a (taste, draw of both rankers' errors) pair: the
    candidate is then better by what its smaller noise is worth on average, not by one draw's
    luck (one draw's per-position advantage is noisy over 944 tastes, see the sweep). With
    ``depth`` the pair also holds both rankings that deep, for fresh lists (``fresh_lists``);
    its top k are the fixed lists. ``candidate_seed_offset`` other than 10,000 draws another
    candidate (of production's noise: a ranker as good as production, for A/A interleaving).
    ``error_correlation``: the candidate keeps that much of production's errors (a retrained
    model), so the lists agree more at the same candidate quality.
    """
    ids, weights = personas(truth, population or PopulationSettings())
    reach = max(k, depth or 0)
    cols_a, cols_b = [], []
    for draw in range(model_draws):
        seed = model_seed * 1000 + draw  # rollout_decisions' seeds: seed, seed + 10,000
        production = noisy_oracle(truth, production_noise, seed, reach)
        cols_a.append(np.stack([truth.item_columns(production(u, reach)) for u in ids]))
        if candidate_noise is None:
            cols_b.append(cols_a[-1])
        else:
            shared = (seed, error_correlation) if error_correlation else None
            candidate = noisy_oracle(
                truth, candidate_noise, seed + candidate_seed_offset, reach, shared_with=shared
            )
            cols_b.append(np.stack([truth.item_columns(candidate(u, reach)) for u in ids]))
    col_a, col_b = np.concatenate(cols_a), np.concatenate(cols_b)
    rows = np.tile(np.array([truth.user_row(u) for u in ids], dtype=np.int64), model_draws)
    deep = None
    if depth is not None:
        look = truth.lookup(rows, np.concatenate([col_a, col_b], axis=1))
        deep = union_rankings(col_a, col_b, look.p_click, look.p_hide, k)
    top = union_rankings(col_a[:, :k], col_b[:, :k], *_truth_of(truth, rows, col_a, col_b, k), k)
    examine = (behaviour or Behaviour()).examine_probs(k)
    shares = np.tile(weights / model_draws, model_draws)
    new = np.tile(np.arange(len(ids)) == len(ids) - 1, model_draws)
    # the top k's union: production's k, then the candidate's own (the padding is for fresh lists)
    p_click, p_hide = top.p_click[:, : 2 * k], top.p_hide[:, : 2 * k]
    return ListPair(top.a, top.b, p_click, p_hide, shares, new, examine, deep, max_impressions)


def _truth_of(truth: GroundTruth, rows: I64, col_a: I64, col_b: I64, k: int) -> tuple[F64, F64]:
    """P(click) and P(hide) of [top k of a | top k of b] per persona row."""
    look = truth.lookup(rows, np.concatenate([col_a[:, :k], col_b[:, :k]], axis=1))
    return look.p_click, look.p_hide


def session_length_pmf(population: PopulationSettings) -> F64:
    """P(requests = r) for r = 1..max: the population model's capped geometric."""
    p = 1.0 / population.session_mean_requests
    r = np.arange(1, population.session_max_requests + 1)
    pmf: F64 = np.power(1 - p, r - 1.0) * p
    pmf[-1] = (1 - p) ** (population.session_max_requests - 1)  # every longer session is cut
    return pmf


@dataclass(frozen=True)
class UserModel:
    """What persists in a simulated user besides their taste: how many requests they make in
    the window (1 + Poisson of a per-user mean drawn from a gamma of shape ``activity_shape``,
    at most ``activity_cap``) and how readily they click (P(click | examined) times a lognormal
    factor of mean 1 and sd ``click_sd``, clipped at 1). Both hold in the pre-period too.
    ``activity_shape`` 0 is the old draw: a geometric session length redrawn in each period;
    ``click_sd`` 0 gives everyone the truth's click probabilities."""

    activity_shape: float = 1.0
    activity_cap: int = 50
    click_sd: float = 0.3

    def __post_init__(self) -> None:
        if self.activity_shape < 0 or self.click_sd < 0 or self.activity_cap < 1:
            raise ValueError(f"activity_shape and click_sd >= 0, activity_cap >= 1: {self}")

    @property
    def persistent_activity(self) -> bool:
        """Whether a user keeps their request rate between the pre-period and the experiment."""
        return self.activity_shape > 0

    @property
    def homogeneous(self) -> bool:
        """The old users: nothing but the taste persists, everyone clicks alike."""
        return not self.persistent_activity and self.click_sd == 0

    @property
    def click_sigma(self) -> float:
        """sd of the log click factor (a lognormal of mean 1 and sd ``click_sd``)."""
        return math.sqrt(math.log1p(self.click_sd**2))


HOMOGENEOUS = UserModel(activity_shape=0.0, click_sd=0.0)
# Nodes of the click-factor integral: trapezoid in z = log-factor's normal score over +-7 sd;
# the factor's clip at 1 puts a kink in the integrand, so the error is O(step^2), estimated
# from the grid of twice the step (every other node).
FACTOR_Z_STEP = 0.1
FACTOR_Z_WIDTH = 7.0


def request_pmf(population: PopulationSettings, model: UserModel) -> F64:
    """P(requests = r) for r = 1..max over all users: the old capped geometric, or with
    persistent activity 1 + a negative binomial (Poisson with a gamma mean), capped."""
    if not model.persistent_activity:
        return session_length_pmf(population)
    from scipy import stats

    extra = population.session_mean_requests - 1  # requests beyond the first, on average
    shape = model.activity_shape
    counts = stats.nbinom(shape, shape / (shape + extra))
    pmf: F64 = counts.pmf(np.arange(model.activity_cap))
    pmf[-1] = counts.sf(model.activity_cap - 2)  # every longer window is cut at the cap
    return pmf


def requests_pmf_given(mean_requests: F64, cap: int) -> F64:
    """P(requests = r), r = 1..cap, of users with these mean requests (1 + Poisson), (n, cap)."""
    from scipy import stats

    extra = (mean_requests - 1)[:, None]
    pmf: F64 = stats.poisson.pmf(np.arange(cap)[None, :], extra)
    pmf[:, -1] = stats.poisson.sf(cap - 2, extra[:, 0])
    return pmf


def click_factor_nodes(model: UserModel, step: float = FACTOR_Z_STEP) -> tuple[F64, F64]:
    """Click factors and their weights for E over users' factor (one node at 1 if ``click_sd``
    is 0): a trapezoid in the normal score of the log factor."""
    if model.click_sd == 0:
        return np.ones(1), np.ones(1)
    sigma = model.click_sigma
    z = np.linspace(-FACTOR_Z_WIDTH, FACTOR_Z_WIDTH, 2 * round(FACTOR_Z_WIDTH / step) + 1)
    weights: F64 = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) * (z[1] - z[0])
    factors: F64 = np.exp(sigma * z - sigma**2 / 2)
    return factors, weights


def expected_session_clicks(p_click: F64, p_hide: F64, examine: F64, pmf: F64) -> F64:
    """Expected clicks of a session that shows the same list at every request, per list row;
    ``pmf`` is P(R = 1..max), one for every row (max,) or a row's own (rows, max).

    An item is clicked at most once: per request it is clicked with e c, hidden with e (1-c) h
    (either ends it), so over R requests P(clicked) = e c (1 - q^R) / (1 - q), q = 1 - e c -
    e (1-c) h; averaged over R's distribution.
    """
    ec = examine * p_click
    q = 1 - ec - examine * (1 - p_click) * p_hide
    q_to_r = np.zeros_like(q)
    for r in range(pmf.shape[-1] - 1, -1, -1):  # Horner: sum_r pmf_r q^r
        q_to_r = (q_to_r + (pmf[r] if pmf.ndim == 1 else pmf[:, r, None])) * q
    clicks: F64 = (ec * (1 - q_to_r) / (1 - q)).sum(axis=-1)
    return clicks


@dataclass(frozen=True)
class TrueEffect:
    """Expected clicks per user (their requests in the window) of each ranker, and the lift."""

    production: float
    candidate: float
    impressions: float  # per user: k x mean requests
    # How it was computed, and the numerical error of the lift (0 where it is exact).
    method: str = "exact"
    lift_error: float = 0.0

    @property
    def lift(self) -> float:
        """candidate / production - 1."""
        return self.candidate / self.production - 1

    @property
    def difference(self) -> float:
        """candidate - production, clicks per user."""
        return self.candidate - self.production

    @property
    def ctr_difference(self) -> float:
        """candidate - production, clicks per impression (both arms show as many)."""
        return self.difference / self.impressions


def persona_clicks(pair: ListPair, pmf: F64, model: UserModel) -> tuple[F64, F64, float]:
    """Expected clicks per user of production's and the candidate's list, per persona row,
    averaged over the request counts ``pmf`` and the users' click factors; and the lift's
    change when the factor's grid has twice the step (the numerical error's estimate)."""
    factors, weights = click_factor_nodes(model)
    take = np.take_along_axis
    per_node = np.stack(
        [
            [
                expected_session_clicks(
                    np.minimum(f * take(pair.p_click, x, 1), 1.0),
                    take(pair.p_hide, x, 1),
                    pair.examine,
                    pmf,
                )
                for f in factors
            ]
            for x in (pair.a, pair.b)
        ]
    )  # (2, nodes, personas)
    a, b = weights @ per_node[0], weights @ per_node[1]
    coarse = 2 * weights[::2] @ per_node[:, ::2] @ pair.weights
    fine = np.array([a, b]) @ pair.weights
    error = 0.0 if factors.size == 1 else abs(fine[1] / fine[0] - coarse[1] / coarse[0])
    return a, b, float(error)


def true_effect(
    pair: ListPair,
    population: PopulationSettings,
    model: UserModel = HOMOGENEOUS,
    *,
    users: int = EFFECT_USERS,
) -> TrueEffect:
    """The expected clicks per user of both rankers over the persona mix: exact for the
    homogeneous users and for any activity (its negative binomial is summed exactly); a click
    factor is integrated numerically, its error estimated from a grid of twice the step.
    Fresh lists depend on what each user clicked before, so there it is a Monte Carlo over
    ``users`` users played under both rankers (``fresh_lists.fresh_effect``)."""
    pmf = request_pmf(population, model)
    impressions = pair.k * float(pmf @ np.arange(1, pmf.size + 1))
    if pair.deep is not None:
        drawn = draw_users(
            np.random.default_rng([0, _STREAMS["effect"]]), users, pair, population, model
        )
        mc = fresh_effect(
            pair.deep,
            pair.examine,
            drawn.persona,
            drawn.requests,
            drawn.click_factor,
            _STREAMS["effect"],
            pair.max_impressions,
        )
        method = (
            f"Monte Carlo over {mc.users:,} users played under both rankers with the same random"
            " numbers, each user's clicks given the lists shown; lift_error = its standard error"
        )
        return TrueEffect(mc.production, mc.candidate, impressions, method, mc.lift_se)
    per_a, per_b, error = persona_clicks(pair, pmf, model)
    a, b = float(pair.weights @ per_a), float(pair.weights @ per_b)
    if model.click_sd == 0:
        return TrueEffect(a, b, impressions)
    method = (
        "exact over tastes and request counts; click factor integrated by the trapezoid rule"
        f" ({FACTOR_Z_STEP} sd steps over +-{FACTOR_Z_WIDTH:.0f} sd); lift_error = |lift -"
        " lift at twice the step|"
    )
    return TrueEffect(a, b, impressions, method, error)


def variance_sources(
    pair: ListPair,
    population: PopulationSettings,
    model: UserModel = HOMOGENEOUS,
    *,
    users: int = 200_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Variances of production's expected clicks per user: between personas (tastes), what
    persists in a user (what a pre-period could predict), and for the homogeneous users
    between session lengths (redrawn for every session). Exact for homogeneous users; with
    heterogeneous ones the persistent part is a Monte Carlo over ``users`` drawn users of their
    exact expected clicks given taste, activity and click factor (``persistent_se``)."""
    if pair.deep is not None:
        return _repeat_covariance(pair, population, model, users, seed)
    pmf = request_pmf(population, model)
    per_persona = persona_clicks(pair, pmf, model)[0]
    mean = float(pair.weights @ per_persona)
    between_personas = float(pair.weights @ (per_persona - mean) ** 2)
    if model.homogeneous:
        p_click = np.take_along_axis(pair.p_click, pair.a, axis=1)
        p_hide = np.take_along_axis(pair.p_hide, pair.a, axis=1)
        by_length = np.stack(
            [
                expected_session_clicks(p_click, p_hide, pair.examine, one)
                for one in np.eye(pmf.size)
            ]
        )  # (lengths, personas)
        per_length = by_length @ pair.weights
        return {
            "between_personas": between_personas,
            "between_session_lengths": float(pmf @ (per_length - mean) ** 2),
            "persistent": between_personas,
            "persistent_se": 0.0,
            "method": "exact",
        }
    drawn = draw_users(
        np.random.default_rng([seed, _STREAMS["variance"]]), users, pair, population, model
    )
    expected = user_clicks(pair, drawn, population, model)
    persistent = float(expected.var())
    spread = ((expected - expected.mean()) ** 2).std() / math.sqrt(users)
    return {
        "between_personas": between_personas,
        "persistent": persistent,
        "persistent_se": float(spread),
        "method": f"between personas exact (click factor integrated numerically); persistent: "
        f"Monte Carlo over {users:,} users",
    }


def _repeat_covariance(
    pair: ListPair, population: PopulationSettings, model: UserModel, users: int, seed: int
) -> dict[str, Any]:
    """What persists in a user with fresh lists: the covariance of returning users' clicks in
    two independent windows under production (the experiment's and the pre-period's, which
    share only the user: taste, rate of requests, click factor)."""
    rng = np.random.default_rng([seed, _STREAMS["variance"]])
    drawn = draw_users(rng, users, pair, population, model)
    run = run_ab(pair, drawn, np.zeros(users, dtype=bool), rng)
    returning = drawn.pre_requests > 0
    x, y = run.clicks[returning], run.pre_clicks[returning]
    products = (x - x.mean()) * (y - y.mean())
    return {
        "persistent": float(products.mean()),
        "persistent_se": float(products.std() / math.sqrt(products.size)),
        "method": f"Monte Carlo over {users:,} users: the covariance of a returning user's clicks"
        " in two independent windows",
    }


def user_clicks(
    pair: ListPair,
    users: Users,
    population: PopulationSettings,
    model: UserModel,
    chunk: int = 50_000,
) -> F64:
    """Each user's expected clicks in the experiment under production, given their persona,
    mean requests and click factor (what persists in them)."""
    out = np.empty(users.persona.size)
    shared = None if model.persistent_activity else request_pmf(population, model)
    for start in range(0, out.size, chunk):
        rows = slice(start, start + chunk)
        persona = users.persona[rows]
        pmf = shared
        if pmf is None:
            pmf = requests_pmf_given(users.mean_requests[rows], model.activity_cap)
        shown = pair.a[persona]
        p_click = pair.p_click[persona[:, None], shown] * users.click_factor[rows, None]
        p_hide = pair.p_hide[persona[:, None], shown]
        out[rows] = expected_session_clicks(np.minimum(p_click, 1.0), p_hide, pair.examine, pmf)
    return out


@dataclass(frozen=True)
class Users:
    """Simulated users: persona, requests in the experiment and in the pre-period, their mean
    requests (a per-user rate when activity persists, else the population's mean) and their
    click factor (1 for everyone when ``click_sd`` is 0)."""

    persona: I64
    requests: I64
    pre_requests: I64  # 0 for new users: they have no pre-period
    mean_requests: F64
    click_factor: F64


def draw_users(
    rng: np.random.Generator,
    n: int,
    pair: ListPair,
    population: PopulationSettings,
    model: UserModel = HOMOGENEOUS,
) -> Users:
    """``n`` users with personas by their shares, their requests in both periods and their
    click factors; the homogeneous model draws exactly what the old benchmark drew."""
    persona = rng.choice(pair.weights.size, size=n, p=pair.weights)
    if model.persistent_activity:
        extra = population.session_mean_requests - 1
        mean = 1 + rng.gamma(model.activity_shape, extra / model.activity_shape, n)
        lengths = np.minimum(1 + rng.poisson(mean - 1, (2, n)), model.activity_cap)
    else:
        cap = population.session_max_requests
        lengths = np.minimum(rng.geometric(1.0 / population.session_mean_requests, (2, n)), cap)
        mean = np.full(n, float(request_pmf(population, model) @ np.arange(1, cap + 1)))
    factor = np.ones(n)
    if model.click_sd > 0:
        sigma = model.click_sigma
        factor = rng.lognormal(-(sigma**2) / 2, sigma, n)
    return Users(persona, lengths[0], np.where(pair.new[persona], 0, lengths[1]), mean, factor)


def play_sessions(
    pair: ListPair,
    persona: I64,
    requests: I64,
    rng: np.random.Generator,
    *,
    click_factor: F64 | None = None,
    treated: Bool | None = None,
    interleave: bool = False,
) -> Played:
    """Simulate each user's requests in the window: production's list, the candidate's where
    ``treated``, or a fresh team draft of both at every request; P(click) times the user's
    ``click_factor``. Fresh lists (``pair.deep``) are played by ``fresh_lists.play_fresh``."""
    if pair.deep is not None:
        return play_fresh(
            pair.deep,
            pair.examine,
            persona,
            requests,
            rng,
            click_factor=click_factor,
            treated=treated,
            interleave=interleave,
            max_impressions=pair.max_impressions,
        )
    n, k = persona.size, pair.k
    done = np.zeros((n, 2 * k), dtype=bool)  # union items clicked or hidden in the window
    tally = Tally(n)
    for request in range(int(requests.max(initial=0))):
        idx = np.flatnonzero(requests > request)
        who = persona[idx]
        teams = None
        if interleave:
            shown, by_b, neutral = _draft(pair, who, rng)
            teams = (by_b, neutral)
        elif treated is not None:
            shown = np.where(treated[idx, None], pair.b[who], pair.a[who])
        else:
            shown = pair.a[who]
        blocked = done[idx[:, None], shown]
        factor = None if click_factor is None else click_factor[idx]
        tables = (pair.p_click, pair.p_hide)
        clicked, hidden, p_click = respond(tables, who, shown, factor, pair.examine, rng, blocked)
        done[idx[:, None], shown] = blocked | clicked | hidden
        tally.add(idx, clicked, p_click * ~blocked * pair.examine, teams)
    return tally.played()


def _draft(pair: ListPair, who: I64, rng: np.random.Generator) -> tuple[I64, Bool, Bool]:
    """A fresh team draft per row: a random flip pattern looked up in the table of all drafts
    (the same thing, 5x cheaper), or drafted here when that table would be too large."""
    k = pair.k
    if (k + 1) // 2 <= MAX_TABLE_ROUNDS:
        items, by_b, neutral = pair.drafts
        pattern = rng.integers(0, items.shape[1], who.size)
        return items[who, pattern], by_b[who, pattern], neutral[who, pattern]
    return team_draft_batch(pair.a[who], pair.b[who], rng.random((who.size, k // 2 + 1)) < 0.5)


@dataclass(frozen=True)
class AbRun:
    """One seed's A/B users: clicks Y, pre-period clicks X, impressions, and the arm."""

    clicks: F64
    pre_clicks: F64
    impressions: F64
    treated: Bool
    short_requests: int = 0  # fresh lists: requests that found fewer than k eligible items


def run_ab(pair: ListPair, users: Users, treated: Bool, rng: np.random.Generator) -> AbRun:
    """The experiment sessions (arm by ``treated``) and each user's pre-period under production."""
    factor = users.click_factor
    played = play_sessions(
        pair, users.persona, users.requests, rng, click_factor=factor, treated=treated
    )
    pre = play_sessions(pair, users.persona, users.pre_requests, rng, click_factor=factor)
    impressions = (users.requests * pair.k).astype(np.float64)
    short = played.short_requests + pre.short_requests
    return AbRun(played.clicks, pre.clicks, impressions, treated, short)


def normal_p(estimate: float, std_error: float) -> float:
    """Two-sided p-value of a z statistic."""
    if not std_error > 0:
        return 1.0
    return 2 * NormalDist().cdf(-abs(estimate) / std_error)


def ab_p_value(run: AbRun, n: int, method: str) -> float:
    """The fixed-horizon two-sided p-value of ``method`` on the first ``n`` users."""
    t = run.treated[:n]
    y, x = run.clicks[:n], run.pre_clicks[:n]
    if method == "ab_ctr":
        est = difference(
            summarize(y[~t], run.impressions[:n][~t]),
            summarize(y[t], run.impressions[:n][t]),
            relative=False,
        )
        return normal_p(est.point, est.standard_error)
    # theta = 0 is the plain difference in means: cuped_estimate is then the z-test
    theta = None if method == "cuped" else 0.0
    return cuped_estimate(y[~t], x[~t], y[t], x[t], theta=theta).p_value


def sign_p_values(margin: F64, grid: Sequence[int]) -> F64:
    """The sign test's p-value on the first n interleaved users, for each n of ``grid``."""
    prefs_b = np.cumsum(margin > 0)
    prefs_a = np.cumsum(margin < 0)
    return np.array(
        [preference_test(int(prefs_a[n - 1]), int(prefs_b[n - 1])).p_value for n in grid]
    )


def graded_p_values(margin: F64, grid: Sequence[int]) -> F64:
    """The graded test's p-value (t-test of the mean margin) on the first n users, per n."""
    sums, squares = np.cumsum(margin), np.cumsum(margin * margin)
    return np.array(
        [
            graded_preference_test(ArmStats.from_sums(n, sums[n - 1], squares[n - 1])).p_value
            for n in grid
        ]
    )


def _margin_moments(margin: F64, expected: F64 | None) -> tuple[int, int, int, float, float]:
    """(prefer a, prefer b, ties, mean margin, its variance) of one seed's users; the mean from
    the margins' expectations given the lists shown when there are (the same mean, known to
    about a third of the drawn margins' standard error)."""
    a, b = int((margin < 0).sum()), int((margin > 0).sum())
    mean = float((margin if expected is None else expected).mean())
    return a, b, margin.size - a - b, mean, float(margin.var(ddof=1))


def _interleaving_users(moments: Sequence[tuple[int, int, int, float, float]]) -> dict[str, float]:
    """Users for 95 % power of the sign test and of the graded test, from moments over seeds."""
    a, b, ties = (int(v) for v in np.sum([m[:3] for m in moments], axis=0))
    share, tie_share = b / (a + b), ties / (a + b + ties)
    mean, var = (float(v) for v in np.mean([m[3:] for m in moments], axis=0))
    return {
        "effect": share,
        "effect_se": math.sqrt(share * (1 - share) / (a + b)),
        "tie_share": tie_share,
        "users": sample_size_preference(share, alpha=ALPHA, power=POWER, tie_share=tie_share),
        "margin_mean": mean,
        "margin_sd": math.sqrt(var),
        "graded_users": sample_size_paired(mean, math.sqrt(var), alpha=ALPHA, power=POWER),
    }


@dataclass
class Moments:
    """Per-seed effect and variance of each method at the largest grid point, for the
    analytical cross-check (averaged over seeds)."""

    diff: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in AB_METHODS})
    unit_var: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in AB_METHODS})
    # per seed (prefer a, prefer b, ties, mean margin, variance): neutral positions credited to
    # neither (the platform's credit), and team-draft's plain credit
    margins: list[tuple[int, int, int, float, float]] = field(default_factory=list)
    plain: list[tuple[int, int, int, float, float]] = field(default_factory=list)
    rho2: list[float] = field(default_factory=list)
    short_requests: int = 0  # fresh lists: requests that found fewer than k eligible items

    def add_ab(self, run: AbRun) -> None:
        """Effects and per-user variances of one seed's A/B users."""
        t = run.treated
        y, x = run.clicks, run.pre_clicks
        cuped = cuped_estimate(y[~t], x[~t], y[t], x[t])
        n_c, n_t = int((~t).sum()), int(t.sum())
        scale = 1 / (1 / n_c + 1 / n_t)  # Var(difference) = unit var (1/n_c + 1/n_t)
        self.diff["ab_clicks"].append(cuped.unadjusted_estimate)
        self.unit_var["ab_clicks"].append(cuped.unadjusted_std_error**2 * scale)
        self.diff["cuped"].append(cuped.estimate)
        self.unit_var["cuped"].append(cuped.std_error**2 * scale)
        self.rho2.append(cuped.variance_reduction)
        self.short_requests += run.short_requests
        ctr = difference(
            summarize(y[~t], run.impressions[~t]),
            summarize(y[t], run.impressions[t]),
            relative=False,
        )
        self.diff["ab_ctr"].append(ctr.point)
        self.unit_var["ab_ctr"].append(ctr.variance * scale)

    def add_interleaving(self, played: Played) -> None:
        """Preferences and margins of one seed's interleaved users, both credits."""
        self.margins.append(_margin_moments(played.margin, played.expected_margin))
        self.plain.append(_margin_moments(played.plain_margin, played.expected_plain_margin))
        self.short_requests += played.short_requests

    def analytical(self, truth: TrueEffect | None = None) -> dict[str, dict[str, float]]:
        """Users for 95 % power by ``shared.stats.power`` from the measured effects and variances;
        for the A/B methods also from the true effect (``users_true_effect``); for interleaving
        also with team-draft's plain credit (``interleaving_plain_credit``, not simulated)."""
        out: dict[str, dict[str, float]] = {}
        for m in AB_METHODS:
            diff, sd = float(np.mean(self.diff[m])), math.sqrt(float(np.mean(self.unit_var[m])))
            runs = len(self.diff[m])
            se = float(np.std(self.diff[m], ddof=1) / math.sqrt(runs)) if runs > 1 else math.nan
            users = sample_size_means(diff, sd, alpha=ALPHA, power=POWER).total
            out[m] = {"effect": diff, "effect_se": se, "unit_sd": sd, "users": float(users)}
            if truth is not None:
                true_diff = truth.ctr_difference if m == "ab_ctr" else truth.difference
                out[m]["true_effect"] = true_diff
                out[m]["users_true_effect"] = float(
                    sample_size_means(true_diff, sd, alpha=ALPHA, power=POWER).total
                )
        neutral = _interleaving_users(self.margins)
        out["interleaving"] = neutral
        out["interleaving_graded"] = {**neutral, "users": neutral["graded_users"]}
        out["interleaving_plain_credit"] = _interleaving_users(self.plain)
        return out


@dataclass(frozen=True)
class PowerFit:
    """Users for the target power from a probit fit Phi(a + b sqrt(n / n_ref)) of the simulated
    rejections, with a bootstrap interval over seeds."""

    users: float
    low: float
    high: float
    intercept: float
    slope: float
    n_ref: float

    def power(self, users: F64) -> F64:
        """The fitted power at ``users``."""
        from scipy import special

        out: F64 = special.ndtr(self.intercept + self.slope * np.sqrt(users / self.n_ref))
        return out


def fit_probit(users: F64, rejections: F64, trials: F64) -> tuple[float, float]:
    """(a, b) of power = Phi(a + b sqrt(users / median users)), binomial maximum likelihood by
    Fisher scoring (iteratively reweighted least squares)."""
    from scipy import special

    # A z-test's power is Phi(d sqrt(n) - z_alpha/2): linear in sqrt(n) on the probit scale.
    x = np.stack([np.ones_like(users), np.sqrt(users / np.median(users))], axis=1)
    share = np.clip(rejections / trials, 0.5 / trials, 1 - 0.5 / trials)
    theta = np.linalg.lstsq(x, special.ndtri(share), rcond=None)[0]
    for _ in range(50):
        eta = x @ theta
        mu = np.clip(special.ndtr(eta), 1e-12, 1 - 1e-12)
        density = np.maximum(np.exp(-0.5 * eta**2) / math.sqrt(2 * math.pi), 1e-300)
        weight = trials * density**2 / (mu * (1 - mu))
        working = eta + (rejections / trials - mu) / density
        try:
            step = np.linalg.solve(x.T @ (weight[:, None] * x), x.T @ (weight * working))
        except np.linalg.LinAlgError:  # every point at power 0 or 1: no curve to fit
            return math.nan, math.nan
        done = bool(np.abs(step - theta).max() < 1e-10)
        theta = step
        if done:
            break
    return float(theta[0]), float(theta[1])


def users_for_power(
    grid: Sequence[int],
    rejected: Bool,
    *,
    target: float = POWER,
    bootstrap: int = 200,
    rng: np.random.Generator | None = None,
) -> PowerFit:
    """Where the fitted power crosses ``target``; ``rejected`` is (seeds, len(grid))."""
    users = np.asarray(grid, dtype=np.float64)
    n_ref = float(np.median(users))
    z = NormalDist().inv_cdf(target)

    def solve(rows: Bool) -> tuple[float, float, float]:
        trials = np.full(users.size, float(rows.shape[0]))
        a, b = fit_probit(users, rows.sum(axis=0).astype(np.float64), trials)
        return (n_ref * ((z - a) / b) ** 2 if b > 0 else math.nan), a, b

    n, a, b = solve(rejected)
    rng = rng or np.random.default_rng(0)
    seeds = rejected.shape[0]
    boot = [solve(rejected[rng.integers(0, seeds, seeds)])[0] for _ in range(bootstrap)]
    low, high = (float(v) for v in np.nanpercentile(boot, [2.5, 97.5]))
    return PowerFit(n, low, high, a, b, n_ref)


def grid_around(users: float, factors: Sequence[float] = GRID_FACTORS) -> list[int]:
    """User counts at ``factors`` times ``users``, even (two equal arms by expectation)."""
    return sorted({max(20, 2 * round(users * f / 2)) for f in factors})


@dataclass(frozen=True)
class Config:
    """What one measurement simulates."""

    production_noise: float = 0.5
    candidate_noise: float = 0.45
    k: int = 10
    position_eta: float = 1.0
    model_seed: int = 0
    model_draws: int = 16
    population: PopulationSettings = PopulationSettings()
    activity_shape: float = UserModel.activity_shape
    activity_cap: int = UserModel.activity_cap
    click_sd: float = UserModel.click_sd
    lists: str = "fresh"  # or "fixed": the same top k at every request (fresh_lists explains)
    depth: int = DEFAULT_DEPTH
    max_impressions: int = MAX_IMPRESSIONS
    mean_requests: float = 3.0  # per user in the window (sets population.session_mean_requests)
    error_correlation: float = 0.0  # of the candidate's errors with production's

    def __post_init__(self) -> None:
        if self.lists not in ("fresh", "fixed"):
            raise ValueError(f"lists must be 'fresh' or 'fixed', got {self.lists!r}")
        if self.population.session_mean_requests != self.mean_requests:
            update = {"session_mean_requests": self.mean_requests}
            object.__setattr__(self, "population", self.population.model_copy(update=update))

    @property
    def users(self) -> UserModel:
        """How the simulated users differ beyond their taste."""
        return UserModel(self.activity_shape, self.activity_cap, self.click_sd)

    def pair(self, truth: GroundTruth, null: str | None = None) -> ListPair:
        """The two rankers' lists for this configuration; ``null`` "same": production twice,
        "equal": production and another ranker of production's noise (A/A experiments)."""
        behaviour = Behaviour(BehaviourSettings(position_eta=self.position_eta))
        candidate = {None: self.candidate_noise, "same": None}.get(null, self.production_noise)
        return build_pair(
            truth,
            self.production_noise,
            candidate,
            k=self.k,
            model_seed=self.model_seed,
            model_draws=self.model_draws,
            behaviour=behaviour,
            population=self.population,
            depth=self.depth if self.lists == "fresh" else None,
            max_impressions=self.max_impressions,
            candidate_seed_offset=20_000 if null == "equal" else 10_000,
            error_correlation=self.error_correlation if null is None else 0.0,
        )


def split(n: int) -> Bool:
    """The gateway's 50/50 salted-hash split of users ``user-0`` .. ``user-{n-1}``.

    One salt for every seed: a user index gets a fresh persona, session and clicks in each
    seed, so the fixed split is as random as a fresh one, and hashing is done once.
    """
    treated: Bool = assign_arms([f"user-{i}" for i in range(n)], SALT, [1.0, 1.0]) == 1
    return treated


def interleaved(pair: ListPair, users: Users, rng: np.random.Generator) -> Played:
    """Each user's window with every request drafted: the margins are the candidate's credited
    clicks minus production's."""
    return play_sessions(
        pair, users.persona, users.requests, rng, click_factor=users.click_factor, interleave=True
    )


def pilot(
    pair: ListPair,
    population: PopulationSettings,
    n_ab: int,
    n_il: int,
    seed: int,
    model: UserModel = HOMOGENEOUS,
) -> Moments:
    """One large run of each design: the effects and variances that place the power grids."""
    rng = np.random.default_rng([seed, _STREAMS["pilot"]])
    moments = Moments()
    users = draw_users(rng, n_ab, pair, population, model)
    moments.add_ab(run_ab(pair, users, split(n_ab), rng))
    moments.add_interleaving(interleaved(pair, draw_users(rng, n_il, pair, population, model), rng))
    return moments


@dataclass(frozen=True)
class PowerResult:
    """Simulated rejections per method and grid point, the fits and the analytical figures."""

    grids: dict[str, list[int]]
    rejected: dict[str, Bool]  # (seeds, grid points)
    fits: dict[str, PowerFit]
    analytical: dict[str, dict[str, float]]
    seconds: float


def simulate_power(
    pair: ListPair,
    population: PopulationSettings,
    grids: dict[str, list[int]],
    seeds: int,
    effect: TrueEffect | None = None,
    bootstrap: int = 200,
    model: UserModel = HOMOGENEOUS,
) -> PowerResult:
    """Power of every method at its grid over ``seeds`` seeds; one simulation per seed and design,
    the smaller counts are its first users (users arrive in order)."""
    started = time.perf_counter()
    n_ab = max(max(grids[m]) for m in AB_METHODS)
    treated = split(n_ab)
    rejected = {m: np.zeros((seeds, len(grids[m])), dtype=bool) for m in METHODS}
    moments = Moments()
    for seed in range(seeds):
        rng = np.random.default_rng([seed, _STREAMS["power"]])
        run = run_ab(pair, draw_users(rng, n_ab, pair, population, model), treated, rng)
        for m in AB_METHODS:
            rejected[m][seed] = [ab_p_value(run, n, m) <= ALPHA for n in grids[m]]
        moments.add_ab(run)
        # both interleaving tests read the same users' margins
        n_il = max(max(grids[m]) for m in INTERLEAVING_METHODS)
        played = interleaved(pair, draw_users(rng, n_il, pair, population, model), rng)
        for m, p_values in (
            ("interleaving", sign_p_values),
            ("interleaving_graded", graded_p_values),
        ):
            rejected[m][seed] = p_values(played.margin, grids[m]) <= ALPHA
        moments.add_interleaving(played)
    fits = {m: users_for_power(grids[m], rejected[m], bootstrap=bootstrap) for m in METHODS}
    return PowerResult(
        grids, rejected, fits, moments.analytical(effect), time.perf_counter() - started
    )


@dataclass(frozen=True)
class AaResult:
    """A/A experiments looked at daily: per seed and look, each test's p-value or verdict."""

    days: int
    users_per_day: int
    tau: float
    sequential_p: F64  # (seeds, days) always-valid p of msprt_relative (running minimum)
    sequential_decided: Bool  # (seeds, days) its decision is not "inconclusive"
    naive_p: F64  # (seeds, days) fixed-horizon z-test on clicks per user at each look
    sign_p: F64  # (seeds, days) interleaving sign test at each look
    sign_sequential_llr: F64  # (seeds, days) log mixture LR of the preference share vs 1/2
    graded_p: F64  # (seeds, days) interleaving graded t-test at each look
    graded_sequential_p: F64  # (seeds, days) always-valid p of sequential_graded_test
    graded_decided: Bool  # (seeds, days) its decision is not "inconclusive"
    seconds: float
    interleaving_null: str = "the same ranker twice"

    def rates(self) -> dict[str, dict[str, float]]:
        """False-positive rate of each test (any look, and the last look alone) with intervals."""
        threshold = math.log(1 / ALPHA)
        any_look = {
            "msprt_relative": self.sequential_decided.any(axis=1),
            "naive_z_daily": (self.naive_p <= ALPHA).any(axis=1),
            "naive_z_last_look": self.naive_p[:, -1] <= ALPHA,
            "sign_test_daily": (self.sign_p <= ALPHA).any(axis=1),
            "sign_test_last_look": self.sign_p[:, -1] <= ALPHA,
            "sequential_sign_test": (self.sign_sequential_llr >= threshold).any(axis=1),
            "graded_t_daily": (self.graded_p <= ALPHA).any(axis=1),
            "graded_t_last_look": self.graded_p[:, -1] <= ALPHA,
            "sequential_graded_test": self.graded_decided.any(axis=1),
        }
        return {name: binomial_rate(int(hits.sum()), hits.size) for name, hits in any_look.items()}


def binomial_rate(events: int, n: int) -> dict[str, float]:
    """A rate with its exact (Clopper-Pearson) 95 % interval."""
    from scipy import stats

    ci = stats.binomtest(events, n).proportion_ci(confidence_level=0.95, method="exact")
    return {
        "rate": events / n,
        "low": float(ci.low),
        "high": float(ci.high),
        "events": events,
        "n": n,
    }


def run_aa(
    pair: ListPair,
    population: PopulationSettings,
    seeds: int,
    days: int,
    users_per_day: int,
    tau: float,
    model: UserModel = HOMOGENEOUS,
    il_pair: ListPair | None = None,
) -> AaResult:
    """``seeds`` A/A experiments, A/B (``pair``: production against itself) and interleaved;
    daily looks. ``il_pair`` interleaves production with another ranker of its quality, each
    user's team labels swapped by a fair coin so that no ranker is favoured exactly: the same
    ranker twice leaves every position neutral and every margin 0, a null with nothing to test."""
    started = time.perf_counter()
    n = days * users_per_day
    treated = split(n)
    shape = (seeds, days)
    seq_p, naive_p, sign_p, llr = np.ones(shape), np.ones(shape), np.ones(shape), np.zeros(shape)
    graded_p, graded_seq_p = np.ones(shape), np.ones(shape)
    decided, graded_decided = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for seed in range(seeds):
        rng = np.random.default_rng([seed, _STREAMS["aa"]])
        users = draw_users(rng, n, pair, population, model)
        clicks = play_sessions(
            pair,
            users.persona,
            users.requests,
            rng,
            click_factor=users.click_factor,
            treated=treated,
        ).clicks
        seq_p[seed], decided[seed], naive_p[seed] = daily_ab_looks(clicks, treated, days, tau)
        against = il_pair or pair
        margin = interleaved(against, draw_users(rng, n, against, population, model), rng).margin
        if il_pair is not None:
            labels = np.random.default_rng([seed, _STREAMS["labels"]])
            margin = margin * np.where(labels.random(n) < 0.5, -1.0, 1.0)
        sign_p[seed], llr[seed] = daily_sign_looks(margin, days)
        graded_p[seed], graded_seq_p[seed], graded_decided[seed] = daily_graded_looks(margin, days)
    null = "the same ranker twice" if il_pair is None else "another ranker of production's noise"
    return AaResult(
        days,
        users_per_day,
        tau,
        seq_p,
        decided,
        naive_p,
        sign_p,
        llr,
        graded_p,
        graded_seq_p,
        graded_decided,
        time.perf_counter() - started,
        null,
    )


def daily_ab_looks(clicks: F64, treated: Bool, days: int, tau: float) -> tuple[F64, Bool, F64]:
    """Per look: msprt_relative's always-valid p and decision (chained through ``previous``, the
    day's users merged in), and a naive z-test's p on the users so far."""
    control = treatment = ArmStats(0, 0.0, 0.0)
    result = None
    out_p, out_naive, out_decided = np.ones(days), np.ones(days), np.zeros(days, dtype=bool)
    for day, (y, t) in enumerate(
        zip(np.array_split(clicks, days), np.array_split(treated, days), strict=True)
    ):
        control = control.merge(ArmStats.from_values(y[~t]))
        treatment = treatment.merge(ArmStats.from_values(y[t]))
        result = msprt_relative(control, treatment, tau=tau, previous=result)
        out_p[day], out_decided[day] = result.p_value, result.decision != "inconclusive"
        se = math.sqrt(control.var / control.n + treatment.var / treatment.n)
        out_naive[day] = normal_p(treatment.mean - control.mean, se)
    return out_p, out_decided, out_naive


def daily_sign_looks(margin: F64, days: int) -> tuple[F64, F64]:
    """Per look: the sign test's p on the interleaved users so far, and the log beta-binomial
    mixture LR of 'share preferring the candidate = 1/2' (a sequential sign test)."""
    ends = np.array([len(c) for c in np.array_split(margin, days)]).cumsum()
    prefs_b, prefs_a = np.cumsum(margin > 0)[ends - 1], np.cumsum(margin < 0)[ends - 1]
    p = np.array(
        [preference_test(int(a), int(b)).p_value for a, b in zip(prefs_a, prefs_b, strict=True)]
    )
    llr: F64 = beta_binomial_log_lr(prefs_b, prefs_a + prefs_b, 0.5, SIGN_PRIOR)
    return p, llr


def daily_graded_looks(margin: F64, days: int) -> tuple[F64, F64, Bool]:
    """Per look on the interleaved users so far: the graded t-test's p, and the analysis'
    always-valid ``sequential_graded_test`` (p and whether it decided), chained through looks."""
    ends = np.array([len(c) for c in np.array_split(margin, days)]).cumsum()
    sums, squares = np.cumsum(margin)[ends - 1], np.cumsum(margin * margin)[ends - 1]
    fixed, always, decided = np.ones(days), np.ones(days), np.zeros(days, dtype=bool)
    result = None
    for day, (n, total, square) in enumerate(zip(ends.tolist(), sums, squares, strict=True)):
        stats = ArmStats.from_sums(n, float(total), float(square))
        fixed[day] = graded_preference_test(stats).p_value
        result = sequential_graded_test(stats, previous=result)
        always[day], decided[day] = result.p_value, result.decision != "inconclusive"
    return fixed, always, decided


def sweep(
    truth: GroundTruth,
    base: Config,
    variants: Sequence[dict[str, Any]],
    n_users: int,
    seed: int,
    effect_users: int = EFFECT_USERS,
) -> list[dict[str, Any]]:
    """Analytical users per method as one setting at a time moves: A/B from the true effect and
    a pilot's variance, interleaving from a pilot of ``n_users`` users."""
    rows = []
    for change in variants:
        config = replace(base, **change)
        pair = config.pair(truth)
        effect = true_effect(pair, config.population, config.users, users=effect_users)
        n_ab = min(n_users, 200_000)  # variances settle long before preference shares do
        moments = pilot(pair, config.population, n_ab, n_users, seed, config.users)
        est = moments.analytical(effect)
        il, ab = est["interleaving"], est["ab_clicks"]
        users = {m: est[m].get("users_true_effect", est[m]["users"]) for m in METHODS}
        graded = users["interleaving_graded"]
        rows.append(
            {
                "change": change,
                "true_lift": effect.lift,
                "overlap": pair.overlap,
                "users": users,
                "ab_over_interleaving": users["ab_clicks"] / users["interleaving"],
                "ab_ctr_over_interleaving": users["ab_ctr"] / users["interleaving"],
                "ab_over_graded": users["ab_clicks"] / graded,
                # plain A/B: the better of its two metrics, without CUPED
                "best_plain_ab_over_graded": min(users["ab_clicks"], users["ab_ctr"]) / graded,
                "cuped_over_graded": users["cuped"] / graded,
                "plain_credit_graded_users": est["interleaving_plain_credit"]["graded_users"],
                "short_requests": moments.short_requests,
                "preference_share": il["effect"],
                "preference_share_se": il["effect_se"],
                "tie_share": il["tie_share"],
                # interleaving's signal and noise per user against the A/B effect and sd
                "margin_over_ab_effect": il["margin_mean"] / effect.difference,
                "margin_sd_over_ab_sd": il["margin_sd"] / ab["unit_sd"],
            }
        )
    return rows


SWEEP: tuple[dict[str, Any], ...] = (
    # the old session model: the same top k at every request, blocked in place
    {"lists": "fixed"},
    # a larger improvement, longer lists
    {"candidate_noise": 0.4},
    {"k": 20},
    # a retrained candidate as good, keeping 80 % of production's errors: the lists agree more
    {"error_correlation": 0.8},
    # longer windows: more requests per user (several sessions), the same users otherwise
    {"mean_requests": 6.0},
    {"mean_requests": 12.0},
    # the users: the old homogeneous ones, then heavier-tailed activity and more click spread
    {"activity_shape": 0.0, "click_sd": 0.0},
    {"activity_shape": 0.2},
    {"click_sd": 1.0},
    {"activity_shape": 0.2, "click_sd": 1.0},
)


def ratio_with_interval(num: PowerFit, den: PowerFit) -> dict[str, float]:
    """num.users / den.users, with the interval of the two bootstrap intervals' extremes."""
    return {"ratio": num.users / den.users, "low": num.low / den.high, "high": num.high / den.low}


def report(
    effect: TrueEffect,
    pair: ListPair,
    power: PowerResult,
    aa: AaResult,
    sweep_rows: list[dict[str, Any]],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Everything measured, as JSON-ready values."""
    methods = {}
    for m in METHODS:
        fit = power.fits[m]
        methods[m] = {
            "label": LABELS[m],
            "grid": power.grids[m],
            "power": power.rejected[m].mean(axis=0).round(4).tolist(),
            "users_for_95_power": {"fit": fit.users, "low": fit.low, "high": fit.high},
            "analytical": power.analytical[m],
        }
    fits, an = power.fits, power.analytical
    # plain A/B: the better of its two metrics, without CUPED (the yardstick)
    best = min(("ab_clicks", "ab_ctr"), key=lambda m: fits[m].users)
    pairs = (
        (best, "interleaving_graded"),
        ("ab_clicks", "interleaving_graded"),
        ("ab_ctr", "interleaving_graded"),
        ("cuped", "interleaving_graded"),
        ("interleaving", "interleaving_graded"),
        ("ab_clicks", "interleaving"),
        ("ab_ctr", "interleaving"),
        ("ab_clicks", "cuped"),
        ("ab_clicks", "ab_ctr"),
    )
    ratios = {
        ("best_plain_ab" if i == 0 else num) + f"_over_{den}": {
            **ratio_with_interval(fits[num], fits[den]),
            "analytical": an[num]["users"] / an[den]["users"],
            **({"method": num} if i == 0 else {}),
        }
        for i, (num, den) in enumerate(pairs)
    }
    return {
        "settings": settings,
        "true_effect": {
            "production_clicks_per_user": effect.production,
            "candidate_clicks_per_user": effect.candidate,
            "lift": effect.lift,
            "lift_numerical_error": effect.lift_error,
            "method": effect.method,
            "difference": effect.difference,
            "impressions_per_user": effect.impressions,
            "shared_items_per_list": pair.overlap,
        },
        "lists": pair.lists,
        "methods": methods,
        "ratios": ratios,
        "cuped_variance_reduction": 1 - (an["cuped"]["unit_sd"] / an["ab_clicks"]["unit_sd"]) ** 2,
        "aa": {
            "days": aa.days,
            "users_per_day": aa.users_per_day,
            "tau": aa.tau,
            "seeds": int(aa.naive_p.shape[0]),
            "false_positive_rates": aa.rates(),
            "interleaving_null": aa.interleaving_null,
            "seconds": round(aa.seconds, 1),
        },
        "interleaving_plain_credit": an["interleaving_plain_credit"],
        "sweep": sweep_rows,
        "power_seconds": round(power.seconds, 1),
    }


def _change(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row["change"].items())


def _variance_line(v: dict[str, Any]) -> str:
    total = v["total_per_user"]
    if "between_session_lengths" in v:
        return (
            f"  variance of clicks per user {total:.3f}: between personas "
            f"{v['between_personas'] / total:.1%}, between session lengths "
            f"{v['between_session_lengths'] / total:.1%}, the rest click noise"
        )
    share, se = v["persistent"] / total, v["persistent_se"] / total
    personas = v.get("between_personas")
    of_it = f", of it between personas {personas / total:.1%}" if personas is not None else ""
    return (
        f"  variance of clicks per user {total:.3f}: {share:.1%} (+- {se:.1%}, Monte Carlo) "
        f"persists in a user (taste, activity, click propensity){of_it}; the rest request-count "
        f"and click noise (an equally noisy pre-period explains at most ~{share**2:.1%})"
    )


def _lift_how(eff: dict[str, Any]) -> str:
    """How the true lift was computed, with its error."""
    if eff["method"] == "exact":
        return "exact"
    kind = "Monte Carlo" if eff["method"].startswith("Monte Carlo") else "numerical"
    return f"{kind}, +- {eff['lift_numerical_error']:.1e}"


def _lists_line(rep: dict[str, Any]) -> str:
    settings = rep["settings"]
    if rep.get("lists", "fixed") == "fixed":
        return "lists: fixed (the same top k at every request, clicked or hidden items blocked)"
    return (
        f"lists: fresh (each request the ranker's best items not clicked, hidden or shown "
        f"{settings.get('max_impressions')} times; rankings {settings.get('depth')} deep, "
        f"{rep.get('short_requests', 0):,} pilot requests ran short); "
        f"{settings.get('mean_requests')} requests per user on average"
    )


def _interleaving_lines(rep: dict[str, Any]) -> list[str]:
    """Interleaving's per-user signal and noise, and what each credit and test needs."""
    eff = rep["true_effect"]
    il, ab = rep["methods"]["interleaving"]["analytical"], rep["methods"]["ab_clicks"]["analytical"]
    plain = rep.get("interleaving_plain_credit", {})
    signal, noise = il["margin_mean"] / eff["difference"], il["margin_sd"] / ab["unit_sd"]
    lines = [
        f"  interleaving per user: E[margin] {il['margin_mean']:.4f} = {signal:.2f} x the A/B "
        f"difference, sd {il['margin_sd']:.3f} = {noise:.2f} x sd(clicks), so the graded test "
        f"needs 4 ({signal:.2f} / {noise:.2f})^2 = {4 * (signal / noise) ** 2:.2f}x fewer users "
        f"than A/B on clicks; {il['tie_share']:.0%} of users tie"
    ]
    if plain:
        lines.append(
            f"  credit (analytical users): plain team-draft credit sign {plain['users']:,.0f}, "
            f"graded {plain['graded_users']:,.0f}; neutral positions credited to neither sign "
            f"{il['users']:,.0f}, graded {il['graded_users']:,.0f}"
        )
    return lines


def summary_lines(rep: dict[str, Any]) -> list[str]:
    """The headline figures, one line each (printed, and the page's preformatted summary)."""
    eff, settings = rep["true_effect"], rep["settings"]
    lines = [
        f"users: activity shape {settings.get('activity_shape', 0)} (0: a session redrawn per "
        f"period), cap {settings.get('activity_cap', '-')}, click factor sd "
        f"{settings.get('click_sd', 0)}",
        _lists_line(rep),
        f"true lift {eff['lift']:+.2%} ({_lift_how(eff)}) in clicks per user "
        f"({eff['production_clicks_per_user']:.4f} -> {eff['candidate_clicks_per_user']:.4f}); "
        f"{eff['shared_items_per_list']:.1f} of {settings['k']} items shared; "
        f"{settings['seeds']} seeds per grid point",
        f"{'method':<32} {'users for 95% power (95% CI)':>30} {'analytical':>10}"
        f" {'(true eff.)':>11}",
    ]
    for r in rep["methods"].values():
        fit, an = r["users_for_95_power"], r["analytical"]
        ci = f"{fit['fit']:,.0f} ({fit['low']:,.0f}-{fit['high']:,.0f})"
        true_n = f"{an['users_true_effect']:,.0f}" if "users_true_effect" in an else "-"
        lines.append(f"{r['label']:<32} {ci:>30} {an['users']:>10,.0f} {true_n:>11}")
    for name, r in rep["ratios"].items():
        named = f" ({r['method']})" if "method" in r else ""
        lines.append(
            f"  {name:<40} {r['ratio']:6.2f} ({r['low']:.2f}-{r['high']:.2f}),"
            f" analytical {r['analytical']:.2f}{named}"
        )
    lines.append(f"  CUPED variance reduction {rep['cuped_variance_reduction']:.4f}")
    lines.extend(_interleaving_lines(rep))
    if "variance_of_expected_clicks" in rep:
        lines.append(_variance_line(rep["variance_of_expected_clicks"]))
    aa = rep["aa"]
    lines.append(
        f"A/A: {aa['seeds']} seeds, {aa['days']} daily looks x {aa['users_per_day']:,} users "
        f"(interleaving: production against {aa.get('interleaving_null', 'itself')});"
        " false-positive rate (95% CI)"
    )
    for name, r in aa["false_positive_rates"].items():
        lines.append(f"  {name:<28} {r['rate']:.3f} ({r['low']:.3f}-{r['high']:.3f})")
    if rep["sweep"]:
        lines.append(
            "what moves A/B / interleaving (analytical; A/B from the true effect; "
            "ratios: A/B clicks / sign test, A/B clicks / graded, best plain A/B / graded, CUPED / "
            "graded)"
        )
    for row in rep["sweep"]:
        lines.append(
            f"  {_change(row):<30} lift {row['true_lift']:+.2%}  share "
            f"{row['preference_share']:.4f}  E[margin]/A/B {row['margin_over_ab_effect']:.2f}  "
            f"ratios {row['ab_over_interleaving']:.2f} {row['ab_over_graded']:.2f} "
            f"{row['best_plain_ab_over_graded']:.2f} {row['cuped_over_graded']:.2f}"
        )
    return lines


def _svg(fig: Any) -> str:
    """A matplotlib figure as inline SVG (the page is one self-contained file)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def plot_power(power: PowerResult) -> str:
    """Simulated power (points, +-1.96 SE) and the probit fit per method against users."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for m in METHODS:
        grid = np.asarray(power.grids[m], dtype=np.float64)
        p = power.rejected[m].mean(axis=0)
        se = np.sqrt(p * (1 - p) / power.rejected[m].shape[0])
        marker, style = ("s", "--") if m == "cuped" else ("o", "-")  # CUPED lies on A/B here
        line = ax.errorbar(grid, p, yerr=1.96 * se, fmt=marker, ms=3, label=LABELS[m])
        xs = np.geomspace(grid.min(), grid.max(), 100)
        ax.plot(xs, power.fits[m].power(xs), color=line[0].get_color(), lw=1, ls=style)
    ax.axhline(POWER, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("users (both arms together)")
    ax.set_ylabel(f"power (alpha {ALPHA}, two-sided)")
    ax.legend(fontsize=8, loc="lower right")
    return _svg(fig)


def plot_aa(aa: AaResult) -> str:
    """Share of A/A runs that declared a difference by each look, and 40 p-value paths."""
    import matplotlib.pyplot as plt

    days = np.arange(1, aa.days + 1)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    ever = {
        "naive z-test, daily": np.maximum.accumulate(aa.naive_p <= ALPHA, axis=1),
        "msprt_relative": aa.sequential_decided,
        "sign test, daily": np.maximum.accumulate(aa.sign_p <= ALPHA, axis=1),
        "sequential sign test": np.maximum.accumulate(
            aa.sign_sequential_llr >= math.log(1 / ALPHA), axis=1
        ),
        "graded t-test, daily": np.maximum.accumulate(aa.graded_p <= ALPHA, axis=1),
        "sequential graded test": np.maximum.accumulate(aa.graded_decided, axis=1),
    }
    for name, hits in ever.items():
        ax.plot(days, hits.mean(axis=0), marker="o", ms=3, label=name)
    ax.axhline(ALPHA, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("day (look)")
    ax.set_ylabel("share of A/A runs declared different so far")
    ax.legend(fontsize=8)
    for seed in range(min(40, aa.naive_p.shape[0])):
        bx.plot(days, aa.naive_p[seed], color="tab:red", alpha=0.3, lw=0.8)
        bx.plot(days, aa.sequential_p[seed], color="tab:blue", alpha=0.5, lw=0.8)
    bx.axhline(ALPHA, color="grey", ls="--", lw=0.8)
    bx.set_yscale("log")
    bx.set_xlabel("day (look)")
    bx.set_ylabel("p-value (red: naive z, blue: always valid)")
    return _svg(fig)


def write_html(rep: dict[str, Any], power: PowerResult, aa: AaResult, path: Path) -> None:
    """The page: the printed summary, the figures and the sweep's table."""
    head = (
        "change",
        "true lift",
        "share preferring candidate",
        "E[margin] / A/B effect",
        "sd(margin) / sd(clicks)",
        "A/B clicks ÷ sign test",
        "A/B CTR ÷ sign test",
        "A/B clicks ÷ graded",
        "best plain A/B ÷ graded",
        "CUPED ÷ graded",
    )
    cells = [
        [
            _change(r),
            f"{r['true_lift']:+.2%}",
            f"{r['preference_share']:.4f}",
            f"{r['margin_over_ab_effect']:.2f}",
            f"{r['margin_sd_over_ab_sd']:.2f}",
            f"{r['ab_over_interleaving']:.2f}",
            f"{r['ab_ctr_over_interleaving']:.2f}",
            f"{r['ab_over_graded']:.2f}",
            f"{r['best_plain_ab_over_graded']:.2f}",
            f"{r['cuped_over_graded']:.2f}",
        ]
        for r in rep["sweep"]
    ]
    table = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    table += "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Experiment sensitivity on the simulator</title>
<style>body{{font-family:sans-serif;max-width:1050px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}</style>
</head><body><h1>Experiment sensitivity on the simulator</h1>
<pre>{html.escape(chr(10).join(summary_lines(rep)))}</pre>
<h2>Power against users (points: simulated, +-1.96 SE; lines: probit fit)</h2>
{_svg_block(plot_power(power))}
<h2>A/A experiments looked at daily</h2>
{_svg_block(plot_aa(aa))}
<h2>What moves the ratio (analytical, one pilot run each)</h2>
<table>{table}</table>
</body></html>
"""
    path.write_text(page)


def _svg_block(svg: str) -> str:
    return f"<figure>{svg}</figure>"


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write sensitivity.json and sensitivity.html under ``--out``."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--seeds", type=int, default=200, help="seeds per power grid point")
    parser.add_argument("--aa-seeds", type=int, default=500)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--aa-users-per-day", type=int, default=3000)
    parser.add_argument("--production-noise", type=float, default=0.5)
    parser.add_argument("--candidate-noise", type=float, default=0.45)
    parser.add_argument("--k", type=int, default=10, help="list length")
    parser.add_argument("--model-draws", type=int, default=16, help="draws of the rankers' errors")
    parser.add_argument(
        "--activity-shape",
        type=float,
        default=UserModel.activity_shape,
        help="gamma shape of a user's request rate (0: the old session redrawn per period)",
    )
    parser.add_argument("--activity-cap", type=int, default=UserModel.activity_cap)
    parser.add_argument(
        "--click-sd",
        type=float,
        default=UserModel.click_sd,
        help="sd of a user's P(click) factor, lognormal of mean 1 (0: everyone alike)",
    )
    parser.add_argument(
        "--lists",
        choices=("fresh", "fixed"),
        default="fresh",
        help="fresh: each request the ranker's best items the user can still see; fixed: the "
        "same top k at every request (the old model)",
    )
    parser.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="fresh lists' depth")
    parser.add_argument("--max-impressions", type=int, default=MAX_IMPRESSIONS)
    parser.add_argument(
        "--mean-requests", type=float, default=3.0, help="requests per user in the window"
    )
    parser.add_argument("--effect-users", type=int, default=EFFECT_USERS)
    parser.add_argument(
        "--error-correlation",
        type=float,
        default=0.0,
        help="correlation of the candidate's errors with production's (a retrained model)",
    )
    parser.add_argument("--pilot-users", type=int, default=600_000)
    # the sweep reads margins from their expectations: 200,000 users give them to a few percent
    parser.add_argument("--sweep-users", type=int, default=200_000, help="0: no sweep")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "ml-100k")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "simulator")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "experiments")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    truth = GroundTruth.load(args.data, args.cache)
    config = Config(
        args.production_noise,
        args.candidate_noise,
        args.k,
        model_draws=args.model_draws,
        activity_shape=args.activity_shape,
        activity_cap=args.activity_cap,
        click_sd=args.click_sd,
        lists=args.lists,
        depth=args.depth,
        max_impressions=args.max_impressions,
        mean_requests=args.mean_requests,
        error_correlation=args.error_correlation,
    )
    pair, model = config.pair(truth), config.users
    effect = true_effect(pair, config.population, model, users=args.effect_users)
    # Variances settle on 200,000 users; the preference share needs more (its SE ~ 0.0008 here).
    n_ab = min(args.pilot_users, 200_000)
    pilot_run = pilot(pair, config.population, n_ab, args.pilot_users, 0, model)
    estimate = pilot_run.analytical(effect)
    grids = {
        m: grid_around(estimate[m].get("users_true_effect", estimate[m]["users"])) for m in METHODS
    }
    power = simulate_power(pair, config.population, grids, args.seeds, effect, model=model)
    aa = run_aa(
        config.pair(truth, null="same"),
        config.population,
        args.aa_seeds,
        args.days,
        args.aa_users_per_day,
        tau=math.log1p(effect.lift),
        model=model,
        il_pair=config.pair(truth, null="equal"),
    )
    sweep_rows = []
    if args.sweep_users:
        sweep_rows = sweep(truth, config, SWEEP, args.sweep_users, 1, args.effect_users)
    settings = {
        **{k: v if isinstance(v, int | float) else str(v) for k, v in vars(args).items()},
        "alpha": ALPHA,
        "power": POWER,
        "grid_factors": list(GRID_FACTORS),
    }
    rep = report(effect, pair, power, aa, sweep_rows, settings)
    rep["short_requests"] = pilot_run.short_requests
    rep["variance_of_expected_clicks"] = {
        **variance_sources(pair, config.population, model),
        "total_per_user": power.analytical["ab_clicks"]["unit_sd"] ** 2,
    }
    rep["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sensitivity.json").write_text(json.dumps(rep, indent=2))
    write_html(rep, power, aa, args.out / "sensitivity.html")
    written = f"written: {args.out / 'sensitivity.json'}, {args.out / 'sensitivity.html'}"
    print("\n".join([*summary_lines(rep), f"{rep['seconds']:.0f} s; {written}"]))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
