"""Off-policy figures of a shadow step: the candidate's click rate at production's exploration
slots, estimated before any user sees the candidate.

The slots come from OffPolicySlots (services/rollouts/off_policy_join.py): each shown item
was drawn uniformly from an exploration pool, with its propensity; the candidate's and
production's rankers each pick their best item of the same pool. SNIPS and IPS give each
pick's click rate (``shared.stats.off_policy``), and the paired IPS difference says whether
the candidate's pick is clicked less than production's. A gate (``ShadowGates.
off_policy_not_worse``) fails the shadow step when that difference's interval lies below 0.
"""

from __future__ import annotations

import math
from typing import Any

from services.rollouts.off_policy_join import SlotArrays
from shared.stats.off_policy import PolicyEstimate, ips, ips_difference, snips

MIN_MATCHED = 20  # slots where a policy's pick was the item shown, before it is estimated


def off_policy_figures(slots: SlotArrays, alpha: float) -> dict[str, Any] | None:
    """Estimates per policy and their paired difference (None: no slot logged yet)."""
    if len(slots) < 2:
        return None
    out: dict[str, Any] = {"slots": len(slots), "clicked": int(slots.clicked.sum()),
                           "min_matched": MIN_MATCHED}  # fmt: skip
    for name, target in (("candidate", slots.candidate), ("production", slots.production)):
        matched = int(target.sum())
        out[name] = {"matched": matched}
        if matched >= MIN_MATCHED:
            args = (slots.clicked, slots.propensity, target)
            out[name]["snips"] = _json(snips(*args, alpha=alpha))
            out[name]["ips"] = _json(ips(*args, alpha=alpha))
    if min(out["candidate"]["matched"], out["production"]["matched"]) >= MIN_MATCHED:
        d = ips_difference(slots.clicked, slots.propensity, slots.candidate, slots.production,
                           alpha=alpha)  # fmt: skip
        out["difference"] = _json(d)
    return out


def shown_worse(figures: dict[str, Any] | None) -> str | None:
    """Why the candidate's pick is clicked less than production's (None: not shown)."""
    d = (figures or {}).get("difference")
    if d is None or not d["ci_high"] < 0:
        return None
    return (f"off-policy: the candidate's exploration-slot click rate is lower than "
            f"production's by {-d['value']:.4f} [{-d['ci_high']:.4f}, {-d['ci_low']:.4f}] "
            f"over {figures['slots'] if figures else 0} randomised slots")  # fmt: skip


def _json(e: PolicyEstimate) -> dict[str, float | None]:
    def num(x: float) -> float | None:
        return round(x, 6) if math.isfinite(x) else None

    return {"value": num(e.value), "ci_low": num(e.ci_low), "ci_high": num(e.ci_high),
            "effective_sample_size": num(e.effective_sample_size)}  # fmt: skip
