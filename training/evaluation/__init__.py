"""Offline metrics and the evaluation report."""
