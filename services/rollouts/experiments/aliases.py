"""Whether the registry has every alias an experiment's arms name, for every part of the slot.

A slot is served by one or more registered models (``ranker`` by ``cascade-ranker``,
``retrieval`` by ``cascade-user-tower`` and ``cascade-item-index`` together): an alias must
exist on each, or the gateway's arm would ask the services for a model they cannot load.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from services.gateway.experiments.assignment import ArmSpec
from services.rollouts.plan import PARTS_OF
from shared.models.locators import registered_name


class AliasReader(Protocol):
    """What this check needs of the registry (services/rollouts/registry_ops.py)."""

    def alias_version(self, part: str, alias: str) -> str | None: ...


def missing_aliases(registry: AliasReader, arms: Iterable[ArmSpec]) -> list[str]:
    """One reason per arm model whose alias a registered model lacks (empty: all exist).

    Raises RegistryUnavailableError when MLflow cannot be reached (nothing can be checked)."""
    seen: dict[tuple[str, str], str | None] = {}
    reasons = []
    for i, arm in enumerate(arms):
        for slot, alias in arm.models.items():
            for part in PARTS_OF[slot]:
                if (part, alias) not in seen:
                    seen[(part, alias)] = registry.alias_version(part, alias)
                if seen[(part, alias)] is None:
                    reasons.append(
                        f"arms[{i}].models.{slot}: {registered_name(part)} has no alias @{alias}"
                    )
    return reasons
