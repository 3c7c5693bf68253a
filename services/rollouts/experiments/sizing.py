"""Planning an experiment: users per arm for a lift, or the smallest lift a sample detects.

``python -m services.rollouts.cli experiment size`` (no controller needed). Three kinds of
metric, each with the formula of ``shared.stats.power``:

- a rate per impression or per user (``--rate``: the control's, e.g. CTR 0.05): Fleiss's
  two-proportion formula, lifts relative to the rate;
- a mean per user (``--mean`` and ``--sd`` of the control's users, e.g. clicks per user; read
  them from a running experiment's analysis or an A/A): the two-sample z formula, lifts
  relative to the mean;
- an interleaving preference (``--interleaving``; ``--preference``: the share of users with a
  preference who prefer the candidate, ``--ties`` the share with none): the sign test's
  binomial formula; or for the graded test (the analysis' verdict) ``--margin``, the mean
  credit margin per user to detect, with ``--margin-sd``, its per-user sd (a running
  interleaving's analysis, or the simulator, gives both): the paired-mean formula.

``--lift`` (or ``--preference``) gives users per arm (interleaving: users in all);
``--users`` the smallest lift (or preference share) detected with that many control users.
Two-sided ``--alpha``, ``--power``, and the treatment's share of the users
(``--treatment-share``) as ``shared.stats.power`` takes them.
A fixed-horizon calculation: the always-valid tests the analysis runs need more users for the
same power (about 1.5-2x at these settings; docs/statistics.md), which the output says.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from shared.stats.power import (
    mde_means,
    mde_preference,
    mde_proportions,
    sample_size_means,
    sample_size_paired,
    sample_size_preference,
    sample_size_proportions,
)

SEQUENTIAL_NOTE = ("fixed-horizon figures: the analysis' always-valid intervals need more "
                   "users for the same power (docs/statistics.md)")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``experiment size`` options."""
    metric = parser.add_mutually_exclusive_group(required=True)
    metric.add_argument("--rate", type=float, help="the control's rate (e.g. CTR 0.05)")
    metric.add_argument("--mean", type=float, help="the control's mean per user (with --sd)")
    metric.add_argument("--interleaving", action="store_true",
                        help="size a team-draft interleaving test (sign test)")  # fmt: skip
    parser.add_argument("--sd", type=float, help="the per-user sd of the metric (with --mean)")
    parser.add_argument("--ties", type=float, default=0.0,
                        help="interleaving: share of users with no preference")  # fmt: skip
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--lift", type=float, help="relative lift to detect (0.03: +3%%)")
    goal.add_argument(
        "--preference",
        type=float,
        help="interleaving: the share of users with a preference who prefer B",
    )
    goal.add_argument(
        "--margin",
        type=float,
        help="interleaving, graded test: the mean credit margin per user to detect (with "
        "--margin-sd)",
    )
    goal.add_argument("--users", type=float, help="control users available: the MDE")
    parser.add_argument("--margin-sd", type=float, help="interleaving: the margin's per-user sd")
    parser.add_argument("--alpha", type=float, default=0.05, help="two-sided error rate")
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument("--treatment-share", type=float, default=0.5,
                        help="the treatment's share of the experiment's users")  # fmt: skip


def size(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """(JSON answer, text) of one sizing; ValueError names a bad input."""
    if not 0 < args.treatment_share < 1:
        raise ValueError(f"--treatment-share must be in (0, 1), got {args.treatment_share}")
    ratio = args.treatment_share / (1 - args.treatment_share)
    common = {"alpha": args.alpha, "power": args.power}
    if args.interleaving:
        return _preference(args, common)
    if args.lift is None and args.users is None:
        raise ValueError("--preference and --margin are for --interleaving: give --lift or --users")
    if args.mean is not None:
        if args.sd is None:
            raise ValueError("--mean needs --sd (the per-user standard deviation)")
        if not args.mean > 0:
            raise ValueError(f"--mean must be > 0 for a relative lift, got {args.mean}")
        if args.lift is not None:
            n = sample_size_means(args.lift * args.mean, args.sd, ratio=ratio, **common)
            return _users({"metric": "mean", "lift": args.lift}, n.control, n.treatment)
        mde = mde_means(args.users, args.sd, ratio=ratio, **common) / args.mean
        return _mde({"metric": "mean", "users": args.users}, mde)
    if args.lift is not None:
        n = sample_size_proportions(args.rate, args.lift, ratio=ratio, **common)
        return _users({"metric": "rate", "lift": args.lift}, n.control, n.treatment)
    mde = mde_proportions(args.rate, args.users, ratio=ratio, **common)
    return _mde({"metric": "rate", "users": args.users}, mde)


def _graded(args: argparse.Namespace, common: dict[str, float]) -> tuple[dict[str, Any], str]:
    if args.margin_sd is None:
        raise ValueError("--margin needs --margin-sd (the margin's per-user sd)")
    users = math.ceil(sample_size_paired(args.margin, args.margin_sd, **common))
    answer = {"metric": "credit_margin", "margin": args.margin, "users": users}
    return answer, (
        f"{users:,} interleaved users to detect a mean credit margin of {args.margin:+.4f} "
        f"per user with the graded test ({SEQUENTIAL_NOTE})"
    )


def _preference(args: argparse.Namespace, common: dict[str, float]) -> tuple[dict[str, Any], str]:
    if args.margin is not None:
        return _graded(args, common)
    if args.users is None:
        if args.preference is None:
            raise ValueError("--interleaving needs --preference (or --users)")
        share = args.preference
        n = sample_size_preference(share, tie_share=args.ties, **common)
        answer = {"metric": "preference", "share": share, "users": math.ceil(n)}
        return answer, (f"{math.ceil(n):,} interleaved users to detect a preference share of "
                        f"{share:.3f} ({SEQUENTIAL_NOTE})")  # fmt: skip
    share = mde_preference(args.users, tie_share=args.ties, **common)
    answer = {"metric": "preference", "users": args.users, "mde_share": share}
    return answer, (f"{args.users:,.0f} users detect a preference share of {share:.4f} "
                    f"({SEQUENTIAL_NOTE})")  # fmt: skip


def _users(answer: dict[str, Any], control: float, treatment: float) -> tuple[dict[str, Any], str]:
    c, t = math.ceil(control), math.ceil(treatment)
    answer.update(control_users=c, treatment_users=t, total_users=c + t)
    return answer, (f"{c:,} control + {t:,} treatment users = {c + t:,} to detect a "
                    f"{answer['lift']:+.2%} lift ({SEQUENTIAL_NOTE})")  # fmt: skip


def _mde(answer: dict[str, Any], mde: float) -> tuple[dict[str, Any], str]:
    answer["mde_relative"] = None if math.isnan(mde) else mde
    if math.isnan(mde):
        return answer, "no lift reaches that power with so few users"
    return answer, (f"{answer['users']:,.0f} control users detect a {mde:+.2%} lift "
                    f"({SEQUENTIAL_NOTE})")  # fmt: skip
