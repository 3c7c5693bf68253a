"""HTTP routes of the rollout controller."""
