"""Settings of every model-serving process: where models come from, which aliases it holds."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from shared.models.bundle import ModelBundle, RankerPrecision
from shared.models.locators import locate_models
from shared.models.model_set import ModelSet
from shared.platform.settings import platform


class ModelSettings(BaseModel):
    """The registry (or a local folder) and the aliases this process keeps loaded."""

    mlflow_uri: str = platform("http://127.0.0.1:5000", description="MLflow tracking URI")
    models_dir: str | None = platform(
        None, description="local bundle folder served as alias production (unset: MLflow)"
    )
    model_alias_dirs: str = platform(
        "", description="local folders of other aliases: canary=/path/a,shadow=/path/b"
    )
    model_aliases: str = platform(
        "production,canary,shadow", description="aliases kept loaded whenever they exist"
    )
    model_max_held: int = platform(3, ge=1, le=16, description="versions held at once")
    model_poll_s: float = platform(30.0, ge=0, description="hot-swap poll interval, 0 = off")
    model_cache_dir: str = platform(".cache/models", description="registry download cache")

    def alias_dirs(self) -> dict[str, str]:
        """``model_alias_dirs`` as alias -> folder."""
        pairs = (p.split("=", 1) for p in self.model_alias_dirs.split(",") if "=" in p)
        return {a.strip(): d.strip() for a, d in pairs if a.strip() and d.strip()}

    def followed(self) -> tuple[str, ...]:
        """``model_aliases`` as a tuple."""
        return tuple(a.strip() for a in self.model_aliases.split(",") if a.strip())


class RankerSettings(BaseModel):
    """The services that run the ranker choose its precision."""

    ranker_precision: RankerPrecision = platform(
        "int8", description="int8 (faster; float32 when the bundle has no int8 file) or fp32"
    )


def model_set_for(
    settings: ModelSettings,
    slot: str,
    parts: tuple[str, ...],
    service: str,
    prepare: Callable[[ModelBundle], None] | None = None,
) -> ModelSet:
    """A (not yet started) model set of ``parts`` from where the settings point."""
    locate = locate_models(
        settings.models_dir, settings.alias_dirs(), settings.mlflow_uri,
        settings.model_cache_dir, parts,
    )  # fmt: skip
    precision = str(getattr(settings, "ranker_precision", "int8"))
    return ModelSet(
        slot, locate, parts, follow=settings.followed(), max_held=settings.model_max_held,
        poll_s=settings.model_poll_s, prepare=prepare, ranker_precision=precision,
        service=service,
    )  # fmt: skip
