"""The one-method interfaces of the pipeline's components, and the wiring check.

A component has a name, the frame columns it ``needs`` and ``provides``, and its ``Knobs``. A
source finds candidates, a filter keeps some of them (its name is the removal reason), a
re-ranker reorders them. Implementations know nothing of HTTP or Kafka; the stage services
and the gateway's in-process mode run the same objects.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from shared.frame import Frame
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import Knobs
from shared.platform.settings import StartupError


class Component(Protocol):
    """What every component declares."""

    name: str
    needs: tuple[str, ...]  # frame columns it reads
    provides: tuple[str, ...]  # frame columns it writes
    Knobs: type[Knobs]


class CandidateFilter(Component, Protocol):
    """Keeps the rows it allows; whatever it drops is removed for the reason ``name``."""

    def keep(self, frame: Frame, ctx: RequestContext, knobs: Any) -> np.ndarray:
        """Bool mask over the frame's rows: True = kept."""
        ...


class WiringError(StartupError):
    """A component needs a column nothing before it provides (stops the service at start)."""


def check_wiring(available: Iterable[str], steps: Sequence[tuple[str, Sequence[Any]]]) -> set[str]:
    """Walk the steps in order: each component's needs must be available before it runs.

    ``steps`` is [(stage name, its components)]; returns every column available at the end.
    """
    have = set(available)
    for stage, components in steps:
        for comp in components:
            missing = [c for c in getattr(comp, "needs", ()) if c not in have]
            if missing:
                raise WiringError(
                    f"{stage}: {type(comp).__name__} {comp.name!r} needs column {missing[0]!r}, "
                    f"which nothing before it provides (available: {', '.join(sorted(have))})"
                )
        for comp in components:
            have.update(getattr(comp, "provides", ()))
    return have


def load_plugins(spec: str, role: str) -> list[Any]:
    """Instances of the classes ``module:Class,...`` in ``spec`` whose ``role`` is ``role``.

    Deployment-time additions to a declared list (``CASCADE_PLUGINS``): a plugin class says
    which list it joins (``role = "filter"``, ``"reranker"``, ``"source"``).
    """
    out = []
    for entry in (e.strip() for e in spec.split(",") if e.strip()):
        module, _, name = entry.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise WiringError(f"plugin {entry!r} cannot be imported: {exc}") from exc
        if getattr(cls, "role", None) == role:
            out.append(cls())
    return out
