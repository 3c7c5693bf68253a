"""Variants as data: which model alias each slot uses and which knobs differ from production.

Declared in a YAML file (``config/variants.yaml``, setting ``CASCADE_GATEWAY_VARIANTS``)::

    variants:
      diverse:
        knobs: {mmr: {lambda: 0.5, genre_cap: 3}}
      canary:
        models: {ranker: canary}

Every request runs under exactly one variant (``production`` unless it names another);
rollouts and experiments only choose which. Each variant is checked at start against the
knobs every component declares, so a typo or an out-of-bounds value stops the gateway with
one line naming it, instead of failing requests later.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import yaml

from shared.pipeline.context import VariantSpec
from shared.pipeline.knobs import KnobError, KnobTable
from shared.platform.settings import StartupError

DEFAULT_VARIANTS_PATH = Path(__file__).resolve().parents[2] / "config" / "variants.yaml"
MODEL_SLOTS = ("retrieval", "ranker")


class VariantError(StartupError):
    """A declared variant does not fit the pipeline (names the variant and the field)."""


class VariantRegistry:
    """The declared variants by name (``production`` always exists)."""

    def __init__(self, variants: Iterable[VariantSpec], knobs: KnobTable) -> None:
        self.knobs = knobs
        self._variants: dict[str, VariantSpec] = {"production": VariantSpec()}
        for v in variants:
            self.add(v)

    def add(self, variant: VariantSpec) -> None:
        """Declare (or replace) a variant after checking its models and knobs."""
        unknown = set(variant.models) - set(MODEL_SLOTS)
        if unknown:
            raise VariantError(
                f"variant {variant.name}: models.{sorted(unknown)[0]} is not a model slot "
                f"(slots: {', '.join(MODEL_SLOTS)})"
            )
        try:
            self.knobs.check(variant)
        except KnobError as exc:
            raise VariantError(f"variant {variant.name}: {exc}") from None
        self._variants[variant.name] = variant

    def get(self, name: str) -> VariantSpec:
        """The variant called ``name`` (KeyError when none is declared)."""
        return self._variants[name]

    def names(self) -> list[str]:
        """Every declared variant."""
        return list(self._variants)

    @classmethod
    def from_file(cls, path: str | Path | None, knobs: KnobTable) -> VariantRegistry:
        """The variants of a YAML file (none declared: production only)."""
        p = Path(path) if path else DEFAULT_VARIANTS_PATH
        try:
            data: Any = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            if path:
                raise VariantError(f"variants file not found: {p}") from None
            data = {}
        except yaml.YAMLError as exc:
            raise VariantError(f"variants file {p} is not YAML: {exc}") from None
        declared = (data or {}).get("variants") or {}
        if not isinstance(declared, dict):
            raise VariantError(f"{p}: 'variants' must map names to variants")
        out = []
        for name, body in declared.items():
            try:
                out.append(msgspec.convert({"name": name, **(body or {})}, VariantSpec))
            except msgspec.ValidationError as exc:
                raise VariantError(f"{p}: variant {name}: {exc}") from None
        return cls(out, knobs)
