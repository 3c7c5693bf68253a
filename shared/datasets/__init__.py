"""Datasets both training and serving jobs read: MovieLens-100K and its temporal cut-offs.

The modules use pandas (a training and job dependency, not a service one): import them from
jobs such as the feature-store bootstrap, never from a service app. This package itself is
light, so the event type below can be imported anywhere.
"""

from __future__ import annotations

from shared.events import EventType

MOVIELENS_EVENT_TYPE: EventType = "rate"
"""What a MovieLens rating is among the platform's events (the event's value is the rating)."""
