"""Step item_features: the candidates' columns from the online store, one round trip.

Only the columns some component needs are read (``StepDeps.hydrated``, from the wiring).
"""

from __future__ import annotations

import numpy as np

from services.gateway.request_run import RequestRun
from services.gateway.request_state import RequestState
from services.gateway.steps.deps import StepDeps
from shared.online_store.columns import hydrate


async def read_items(req: RequestState, deps: StepDeps) -> None:
    """Catalog attributes, windowed counters and the user x item marks of the candidates (the
    items seen before the seen window checked in the same round trip, for users who have any)."""
    batch = await deps.store.get_items(req.frame.ids, req.now, req.user_state())
    for name, values in hydrate(batch, req.user_state(), deps.hydrated).items():
        req.frame.set(name, values)


async def cached_attributes(req: RequestState, deps: StepDeps, _run: RequestRun) -> str:
    """What this process cached of the catalog, counters zero; items it never saw are
    unknown (``found`` False), and the restriction filters drop unknown items."""
    batch = deps.store.cached_items(req.frame.ids, req.now)
    for name, values in hydrate(batch, req.user_state(), deps.hydrated).items():
        req.frame.set(name, values)
    known = int(np.count_nonzero(batch.found))
    return f"cached attributes of {known}/{len(batch)} items, counters zero"
