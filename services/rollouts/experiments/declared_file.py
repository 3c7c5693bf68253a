"""The declared experiments file (setting ``CASCADE_ROLLOUTS_EXPERIMENTS_FILE``).

Read once at start; each entry is created on the controller's first tick unless an
experiment of that name exists (idempotent by name: one stopped by hand stays stopped). A
file that is not YAML, or an entry that is not a valid plan, stops the controller at start
with one line naming it; an entry the controller refuses (a conflict, MLflow unreachable) is
logged with the reason, and tried again while the reason is a conflict or MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from services.rollouts.experiments.plan import ExperimentPlan
from shared.platform.settings import StartupError


def load_declared(path: str | Path | None) -> list[ExperimentPlan]:
    """The plans of ``path`` (``experiments: [plan, ...]``; None: no file, no plans)."""
    if not path:
        return []
    p = Path(path)
    try:
        data: Any = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise StartupError(f"experiments file not found: {p}") from None
    except yaml.YAMLError as exc:
        raise StartupError(f"experiments file {p} is not YAML: {exc}") from None
    entries = data.get("experiments") if isinstance(data, dict) else None
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise StartupError(f"{p}: 'experiments' must be a list of experiment plans")
    plans = []
    for i, entry in enumerate(entries):
        try:
            plans.append(ExperimentPlan.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "plan"
            raise StartupError(f"{p}: experiments[{i}].{where}: {first['msg']}") from None
    return plans
