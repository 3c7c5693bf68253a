"""Kafka topic names, in one place so producers and consumers cannot disagree.

Names only: settings modules import them without loading kafka-python (creating topics is
``shared.stream.topic_keeper``'s job).
"""

from __future__ import annotations

EVENTS = "events"
"""User events from the events API, keyed by user_id (one user's events stay ordered)."""

SERVED = "served"
"""The lists the gateway served (for impressions, shadow analysis and training)."""

EVENTS_DLQ = "events.dlq"
"""Messages on ``events`` that could not be decoded, with the reason (dead letters)."""
