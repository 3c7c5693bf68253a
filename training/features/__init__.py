"""Offline, point-in-time feature computation over an event log (uses shared.features)."""

from training.features.builder import FeatureBuilder

__all__ = ["FeatureBuilder"]
