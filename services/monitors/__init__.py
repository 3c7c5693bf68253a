"""Offline model monitors: the training-serving skew job (``python -m services.monitors.skew``)."""
