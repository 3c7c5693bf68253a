"""RequestContext: what every stage knows of a request besides its frame.

The gateway reads the user once and sends the same context with every stage call: the user's
features, the request's clock, list length and exploration seed, and the variant it runs
under (which model alias per slot, which knob overrides). The context is a msgspec struct, so
one declaration is both its MessagePack and its JSON form and is checked on decode.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec

from shared.features import N_GENRES, UserFeatures

# msgspec matches patterns with re.search, where "$" also matches before a final newline:
# "(?!\n)" rules that out (and stays a valid JSON-schema pattern for the OpenAPI document).
Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:\-]{1,64}(?!\n)$")]
Short = Annotated[str, msgspec.Meta(max_length=64)]
Alias = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}(?!\n)$")]
MAX_HISTORY = 2000  # the store's seen window (StoreConfig.seen_cap): the gateway sends all of it


class UserContext(msgspec.Struct, forbid_unknown_fields=True):
    """The user's features as the stages need them (history oldest to newest: the store's
    recent history last, the older part of the seen window before it)."""

    user_id: Id
    known: bool = False
    age: Annotated[int, msgspec.Meta(ge=0, le=150)] | None = None
    gender: Short | None = None
    occupation: Short | None = None
    zip_code: Short | None = None
    region: Short | None = None
    segment: Short = "unknown"
    history: Annotated[list[Id], msgspec.Meta(max_length=MAX_HISTORY)] = []
    genre_affinity: (
        Annotated[list[float], msgspec.Meta(min_length=N_GENRES, max_length=N_GENRES)] | None
    ) = None
    n_events: Annotated[int, msgspec.Meta(ge=0)] = 0
    rating_sum: float = 0.0
    n_ratings: Annotated[int, msgspec.Meta(ge=0)] = 0
    last_event_ts: Annotated[float, msgspec.Meta(ge=0)] | None = None

    def __post_init__(self) -> None:
        floats = [self.rating_sum, self.last_event_ts or 0.0, *(self.genre_affinity or ())]
        if not all(math.isfinite(f) for f in floats):
            raise ValueError("user numbers must be finite")

    def features(self) -> UserFeatures:
        """The feature record the encoders take."""
        return UserFeatures(
            user_id=self.user_id, age=self.age, gender=self.gender, occupation=self.occupation,
            zip_code=self.zip_code, history=tuple(self.history),
            genre_affinity=self.genre_affinity, n_events=self.n_events,
            rating_sum=self.rating_sum, n_ratings=self.n_ratings,
            last_event_ts=self.last_event_ts,
        )  # fmt: skip


class VariantSpec(msgspec.Struct, forbid_unknown_fields=True):
    """The variant a request runs under: a model alias per slot and knob overrides.

    ``models`` maps a slot (``retrieval``: user tower + item index, ``ranker``) to a registry
    alias; a slot not named uses ``production``. ``knobs`` maps a component name to the
    values it overrides (``{"mmr": {"lambda": 0.9}}``); each component checks its own.
    """

    name: Alias = "production"
    models: dict[Short, Alias] = {}
    knobs: dict[Short, dict[Short, Any]] = {}

    def alias(self, slot: str) -> str:
        """The alias this variant uses for ``slot``."""
        return self.models.get(slot, "production")


PRODUCTION = VariantSpec()


class RequestContext(msgspec.Struct, forbid_unknown_fields=True):
    """One request, as every stage sees it."""

    request_id: Annotated[str, msgspec.Meta(max_length=64)]
    now: Annotated[float, msgspec.Meta(gt=0)]
    user: UserContext
    k: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    seed: Annotated[int, msgspec.Meta(ge=0)] = 0  # exploration draws of this request
    variant: VariantSpec = msgspec.field(default_factory=VariantSpec)

    def __post_init__(self) -> None:
        if not math.isfinite(self.now):
            raise ValueError("now must be finite")
