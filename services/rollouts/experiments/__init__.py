"""A/B and interleaving experiments declared as data, run by the rollout controller.

The controller is the one place that decides who gets which users: an experiment and a
rollout are checked against each other under one lock, and both are published in the one
document the gateways follow (``GET /v1/assignments``). docs/experiments.md.
"""
