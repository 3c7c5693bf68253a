"""Filtering: removes restricted, blocked, seen and duplicate candidates."""

from __future__ import annotations

from services.filtering.pipeline import build_filtering
from services.filtering.settings import Settings
from shared.online_store.columns import STORE_COLUMN_NAMES
from shared.pipeline.components import check_wiring
from shared.pipeline.stage import stage_route
from shared.platform.service import Service, create_app


def build_app(settings: Settings) -> Service:
    """The filtering app (stateless: no connections, no models); WiringError if miswired."""
    stage = build_filtering(settings.disabled(), settings.plugins)
    check_wiring(STORE_COLUMN_NAMES, [("filtering", stage.components)])
    app = create_app(settings, None, description=__doc__ or "")
    app.add_fast_route(stage_route(stage))
    return app
