"""Knobs: each component's tunables, typed and bounded beside the component itself.

A component declares ``Knobs``, a frozen msgspec struct whose defaults are what production
runs (``class Knobs(Knobs): lambda_: Annotated[float, Meta(ge=0, le=1)] = 0.7``). A variant
overrides some of them by component name; :class:`KnobTable` turns a variant's overrides into
each component's checked ``Knobs`` (cached per variant, so a request pays a dict lookup).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

import msgspec

from shared.pipeline.context import VariantSpec


class Knobs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of every component's knobs (no knobs: an empty struct)."""


class NoKnobs(Knobs, frozen=True):
    """The knobs of a component that has none."""


K = TypeVar("K", bound=Knobs)


class HasKnobs(Protocol):
    """A component with a name and a knob type."""

    name: str
    Knobs: type[Knobs]


class KnobError(ValueError):
    """A variant's override does not fit a component's knobs; ``loc`` names it."""

    def __init__(self, loc: tuple[str, ...], msg: str) -> None:
        super().__init__(f"{'.'.join(loc)}: {msg}")
        self.loc = loc
        self.msg = msg


def knob_fields(knobs: type[Knobs]) -> dict[str, Any]:
    """Knob name -> default, as variants spell them."""
    info = msgspec.structs.fields(knobs)
    return {f.encode_name: f.default for f in info}


class KnobTable:
    """The knobs of a set of components, resolved per variant."""

    def __init__(self, components: Iterable[Any]) -> None:
        self.types = {c.name: c.Knobs for c in components}
        self.defaults = {name: t() for name, t in self.types.items()}
        self._cache: dict[bytes, dict[str, Knobs]] = {}

    def resolve(self, variant: VariantSpec) -> dict[str, Knobs]:
        """Component name -> its knobs under ``variant`` (KnobError when one does not fit)."""
        if not variant.knobs:
            return self.defaults
        key = msgspec.msgpack.encode(variant.knobs)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._build(variant)
            if len(self._cache) > 256:  # variants are few; a flood of ad-hoc ones is bounded
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def _build(self, variant: VariantSpec) -> dict[str, Knobs]:
        out = dict(self.defaults)
        for name, overrides in variant.knobs.items():
            kind = self.types.get(name)
            if kind is not None:  # a knob of another stage's component: not ours to check
                out[name] = convert_knobs(kind, overrides, ("variant", "knobs", name))
        return out

    def check(self, variant: VariantSpec, known: Iterable[str] = ()) -> None:
        """Every override names a known component and fits its knobs (variant declaration)."""
        names = set(self.types) | set(known)
        for name in variant.knobs:
            if name not in names:
                raise KnobError(("variant", "knobs", name), f"no component {name!r}")
        self._build(variant)


def convert_knobs(kind: type[K], overrides: dict[str, Any], loc: tuple[str, ...]) -> K:
    """``kind`` with ``overrides`` applied and checked against its bounds."""
    try:
        return msgspec.convert(overrides, kind)
    except msgspec.ValidationError as exc:
        raise KnobError(loc, str(exc)) from None
