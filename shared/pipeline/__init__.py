"""The recommendation pipeline's vocabulary: stage interfaces, columnar types, tunables, budgets.

Stage implementations live in their services (``services/<stage>/``); everything here is
transport-agnostic so the same stages run in one process or behind HTTP.
"""
