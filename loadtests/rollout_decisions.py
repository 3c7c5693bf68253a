"""How often the rollout analysis decides wrong: A/A and known-worse canaries over many seeds.

``python -m loadtests.rollout_decisions [--seeds 300] [--out reports/rollouts]``

Each seed is one canary step judged exactly as the controller judges it (``services.rollouts.
analysis.judge`` on per-user units, looked at ``--looks`` times while users arrive, stopping at
the first fail or halt), over simulated users of the traffic simulator: the MovieLens users
with the hidden ground-truth preferences, position-biased examination and the click model of
``loadtests.simulator``. Production ranks by the true preference seen through noise
(``--production-noise``), a decent model; the candidates are:

- ``same``: production itself (A/A). Any rollback is a false rollback.
- ``slightly_worse`` and ``worse``: more noise (``--slightly-worse-noise``, ``--worse-noise``),
  about 10% and 30% fewer clicks per user. A pass is a miss.
- ``random``: random items, a clearly worse model.

Printed: per candidate, the share of seeds ending pass / fail / halt / inconclusive, the
false-rollback rate (A/A) or the miss rate, and the time to a decision (the share of the
step's users seen when it fell). Guardrails (errors, latency) are not simulated here: they
read the services' metrics, and ``tests/unit/test_rollout_analysis.py`` covers them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from loadtests.simulator.ground_truth import GroundTruth
from loadtests.simulator.offline import simulate_offline
from loadtests.simulator.rankers import Ranker, random_ranker
from services.rollouts.analysis import Look, judge
from services.rollouts.exposure_join import UnitArrays
from services.rollouts.plan import Analysis, Step

REPO = Path(__file__).resolve().parents[1]


def noisy_oracle(
    truth: GroundTruth,
    noise: float,
    seed: int,
    depth: int = 50,
    *,
    shared_with: tuple[int, float] | None = None,
) -> Ranker:
    """Rank by the true interest plus fixed Gaussian noise per (user, item): a model of a
    given quality (0: the oracle; more noise, a worse model), answering up to ``depth`` items
    (the noise drawn does not depend on it, so a deeper ranker orders its top alike).

    ``shared_with=(seed0, rho)``: the noise has correlation ``rho`` with that of the oracle of
    seed ``seed0`` (asked for users in the same order), at the same sd ``noise``: a retrained
    model that keeps most of its predecessor's errors, as good as an independent one of this
    noise but agreeing with it more."""
    t = truth.tables
    rng = np.random.default_rng(seed)
    base = None if shared_with is None else np.random.default_rng(shared_with[0])
    rho = 0.0 if shared_with is None else shared_with[1]
    cache: dict[str, list[str]] = {}

    def rank(user_id: str, k: int) -> list[str]:
        if user_id not in cache:
            row = truth.user_row(user_id)
            z = t.population_z if row < 0 else t.interest_z[row]
            error = rng.normal(0.0, 1.0, len(z))
            if base is not None:  # the other oracle's draw for this user, standardised
                error = rho * base.normal(0.0, 1.0, len(z)) + np.sqrt(1 - rho**2) * error
            cache[user_id] = t.item_ids[np.argsort(-(z + noise * error))[:depth]].tolist()
        return cache[user_id][:k]

    return rank


class RevealedExposure:
    """The simulated users of a step, revealed in arrival order up to a look."""

    def __init__(self, outcome: Any, requests_per_user: int, order: np.ndarray) -> None:
        self.o = outcome
        self.requests = requests_per_user
        self.order = order
        self.seen = 0

    def arm_units(self, _rollout_id: str, arm: str) -> UnitArrays:
        idx = self.order[: self.seen]
        arm_index = self.o.arms.index(arm)
        idx = idx[self.o.arm[idx] == arm_index]
        out = self.o.outcomes
        return UnitArrays.from_totals(np.full(len(idx), self.requests), out["impressions"][idx],
                     out["clicks"][idx], out["likes"][idx], out["watch_s"][idx])  # fmt: skip


def run_step(
    truth: GroundTruth, production: Ranker, candidate: Ranker, seed: int, share: float,
    looks: int, requests_per_user: int, analysis: Analysis,
) -> tuple[str, float]:  # fmt: skip
    """One canary step: (outcome, share of the step's users seen at the decision)."""
    users = truth.known_users
    outcome = simulate_offline({"production": production, "canary": candidate}, truth, users,
                               k=10, requests_per_user=requests_per_user, seed=seed,
                               salt=f"seed-{seed}", shares=[1 - share, share])  # fmt: skip
    order = np.random.default_rng(seed).permutation(len(users))
    exposure = RevealedExposure(outcome, requests_per_user, order)
    step = Step(kind="canary", share=share, duration_s=float(looks), min_sample=100)
    previous = None
    for look_i in range(1, looks + 1):
        exposure.seen = int(len(users) * look_i / looks)
        look = Look(now=float(look_i), elapsed_s=float(look_i), deadline_s=float(looks),
                    before=None, after=None, exposure=exposure, previous=previous)  # fmt: skip
        verdict = judge("offline", step, analysis, look)
        previous = verdict.test
        if verdict.outcome != "continue":
            return verdict.outcome, look_i / looks
    return "continue", 1.0


def measure(truth: GroundTruth, seeds: int, looks: int, share: float, requests_per_user: int,
            noise: dict[str, float], analysis: Analysis) -> dict[str, Any]:  # fmt: skip
    """Outcomes over ``seeds`` seeds for each candidate."""
    results: dict[str, Any] = {}
    for name in ("same", "slightly_worse", "worse", "random"):
        counts: Counter[str] = Counter()
        times: list[float] = []
        started = time.perf_counter()
        for seed in range(seeds):
            production = noisy_oracle(truth, noise["production"], seed)
            if name == "same":
                candidate = production
            elif name == "random":
                candidate = random_ranker(truth, seed)
            else:
                candidate = noisy_oracle(truth, noise[name], seed + 10_000)
            outcome, when = run_step(truth, production, candidate, seed, share, looks,
                                     requests_per_user, analysis)  # fmt: skip
            counts[outcome] += 1
            if outcome in ("fail", "halt"):
                times.append(when)
        wrong = counts["fail"] + counts["halt"] if name == "same" else counts["pass"]
        results[name] = {
            "seeds": seeds,
            "outcomes": dict(counts),
            "wrong_rate": wrong / seeds,
            "wrong_means": "false rollback" if name == "same" else "missed (passed)",
            "rollback_time_median": float(np.median(times)) if times else None,
            "seconds": round(time.perf_counter() - started, 1),
        }
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    """Outcome shares per candidate, one bar each (the report's picture)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    kinds = ("pass", "fail", "halt", "inconclusive")
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bottom = np.zeros(len(names))
    for kind in kinds:
        shares = np.array(
            [results[n]["outcomes"].get(kind, 0) / results[n]["seeds"] for n in names]
        )
        ax.bar(names, shares, bottom=bottom, label=kind)
        bottom += shares
    ax.set_ylabel("share of seeds")
    ax.set_title("canary step outcomes by candidate")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write JSON and a PNG under ``--out``."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--seeds", type=int, default=300)
    parser.add_argument("--looks", type=int, default=20)
    parser.add_argument("--share", type=float, default=0.5, help="the canary's share of users")
    parser.add_argument("--requests-per-user", type=int, default=3)
    parser.add_argument("--production-noise", type=float, default=0.5)
    parser.add_argument("--slightly-worse-noise", type=float, default=0.65)
    parser.add_argument("--worse-noise", type=float, default=1.0)
    parser.add_argument(
        "--require", default=Analysis().require, choices=["not_worse", "non_inferior", "better"]
    )
    parser.add_argument("--margin", type=float, default=Analysis().margin)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "ml-100k")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "simulator")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "rollouts")
    args = parser.parse_args(argv)
    truth = GroundTruth.load(args.data, args.cache)
    noise = {"production": args.production_noise, "slightly_worse": args.slightly_worse_noise,
             "worse": args.worse_noise}  # fmt: skip
    analysis = Analysis(require=args.require, margin=args.margin)
    results = measure(truth, args.seeds, args.looks, args.share, args.requests_per_user, noise,
                      analysis)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"settings": {k: str(v) for k, v in vars(args).items()}, "results": results,
              "analysis": analysis.model_dump()}  # fmt: skip
    (args.out / "decisions.json").write_text(json.dumps(report, indent=2))
    plot(results, args.out / "decisions.png")
    header = f"{'candidate':<10} {'pass':>6} {'fail':>6} {'halt':>6} {'incon.':>7}  wrong"
    print(header + "  median time to rollback")  # noqa: T201
    for name, r in results.items():
        o = r["outcomes"]
        t = r["rollback_time_median"]
        when = "-" if t is None else f"{t:.0%} of the step"
        cells = [o.get(kind, 0) for kind in ("pass", "fail", "halt", "inconclusive")]
        row = f"{name:<10} {cells[0]:>6} {cells[1]:>6} {cells[2]:>6} {cells[3]:>7}"
        row += f"  {r['wrong_rate']:.3f} ({r['wrong_means']})"
        print(f"{row}  {when}")  # noqa: T201
    print(f"written: {args.out / 'decisions.json'}, {args.out / 'decisions.png'}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
