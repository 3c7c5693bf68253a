"""Drift monitors of the ranking stage: sampled bin counts over a sliding window, PSI against
the model's training reference, the served-feature sample log (docs/monitoring.md)."""
