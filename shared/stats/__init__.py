"""Statistics for rollouts (canary analysis) and experiments: tests valid under repeated looks.

- ``srm_check`` (srm.py): sample-ratio mismatch, chi-square goodness of fit of the units per arm
  against the planned shares; mismatch at p < 0.001. Valid for one look.
- ``srm_sequential_check`` (srm.py): the same question, always valid (Dirichlet-multinomial
  mixture; Lindon & Malek 2022, "Anytime-valid inference for multinomial count data").
- ``ArmStats`` (sequential.py): an arm's per-unit count, mean and variance; streamed by ``merge``.
- ``msprt`` / ``msprt_relative`` (sequential.py): always-valid p-value, interval and decision for
  treatment - control (or the lift treatment / control - 1), the normal-mixture sequential
  probability ratio test (Johari, Koomen, Pekelis & Walsh 2017/2022, "Always valid inference";
  Waudby-Smith et al. 2021, "Time-uniform central limit theory" for the plug-in variance).
- ``tau_for_sample_size`` (sequential.py): the mixing sd sharpest at a planned sample size.
- ``msprt_paired`` (sequential.py): the mSPRT for the mean of paired differences (one sample),
  e.g. interleaving's per-user credit margin.
- ``bernoulli_confidence_sequence`` (sequential.py): an exact always-valid interval for one rate,
  e.g. a canary's error rate against a guardrail (Robbins' beta-binomial mixture, 1970).
- ``mixture_log_lr`` / ``mixture_p_value`` / ``mixture_half_width`` / ``beta_binomial_log_lr``:
  the vectorised cores, for simulators that evaluate thousands of runs at once.

- ``ratio``: user-level ratio metrics (clicks per impression) with delta-method variances.
- ``ranking_diff``: overlap@k, Jaccard@k, recall, Kendall tau, rank-biased overlap and score
  deltas of two ranked lists (the gateway's shadow comparison; numpy only).

Experiments (docs/statistics.md, "Experiments: CUPED, power, interleaving, off-policy"):

- ``cuped_estimate`` / ``cuped_arm_stats`` / ``cuped_theta`` (cuped.py): variance reduction
  with a pre-experiment covariate (Deng, Xu, Kohavi & Walker 2013); the adjusted arms as
  ``ArmStats`` for ``msprt``.
- ``sample_size_means`` / ``mde_means``, ``sample_size_proportions`` / ``mde_proportions``,
  ``sample_size_preference`` / ``mde_preference``, ``sample_size_paired`` (power.py):
  fixed-horizon planning by the normal approximation, with an allocation ratio; ``SampleSize``.
- ``team_draft`` / ``team_draft_from_flips``, ``credit``, ``UserPreference``, ``tally``,
  ``count_preferences``, ``user_margins``, ``preference_test``, ``preference_delta``
  (interleaving.py): team-draft interleaving (Radlinski, Kurup & Joachims 2008) with neutral
  positions, and its sign test; numpy only at import, the gateway drafts with it.
- ``margin_stats``, ``graded_preference_test``, ``sequential_graded_test`` (interleaving_graded.py):
  the graded test of the per-user credit margin (a t-test) and its always-valid form.
- ``ips`` / ``snips`` / ``dr`` / ``ips_difference``, ``deterministic_target_probability``
  (off_policy.py): off-policy estimates from logged propensities with normal or bootstrap
  intervals and the effective sample size; ``PolicyEstimate``.

The names are loaded on first use (PEP 562; import from the submodules for static types):
the gateway imports ``ranking_diff`` and ``interleaving`` and must not pay scipy's import
(1-2 s, ~70 MB) for them.

Assumptions, defaults and measured error rates: docs/statistics.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "cuped": (
        "DEFAULT_CUPED_ALPHA", "CupedResult", "cuped_arm_stats", "cuped_estimate", "cuped_theta",
    ),
    "interleaving": (
        "DEFAULT_PREFERENCE_ALPHA", "Interleaved", "PreferenceCounts", "PreferenceDelta",
        "PreferenceTest", "UserPreference", "count_preferences", "credit", "preference_delta",
        "preference_test", "tally", "team_draft", "team_draft_from_flips", "user_margins",
    ),
    "interleaving_graded": (
        "GRADED_TAU_SD", "GradedPreferenceTest", "graded_preference_test", "margin_stats",
        "sequential_graded_test",
    ),
    "off_policy": (
        "DEFAULT_OPE_ALPHA", "DEFAULT_PROPENSITY_FLOOR", "PolicyEstimate",
        "deterministic_target_probability", "dr", "ips", "ips_difference", "snips",
    ),
    "power": (
        "DEFAULT_POWER", "DEFAULT_POWER_ALPHA", "SampleSize", "mde_means", "mde_preference",
        "mde_proportions", "sample_size_means", "sample_size_paired", "sample_size_preference",
        "sample_size_proportions",
    ),
    "sequential": (
        "DEFAULT_ALPHA", "DEFAULT_MIN_SAMPLE", "DEFAULT_RATE_PRIOR", "DEFAULT_STANDARDISED_TAU",
        "ArmStats", "Decision", "RateInterval", "RateVerdict", "SequentialResult",
        "bernoulli_confidence_sequence", "beta_binomial_log_lr", "mixture_half_width",
        "mixture_log_lr", "mixture_p_value", "msprt", "msprt_paired", "msprt_relative",
        "tau_for_sample_size",
    ),
    "srm": (
        "DEFAULT_CONCENTRATION", "DEFAULT_SRM_ALPHA", "SrmResult", "srm_check",
        "srm_sequential_check",
    ),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'shared.stats' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"shared.stats.{module}"), name)
    globals()[name] = value
    return value
