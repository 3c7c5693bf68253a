"""Where the models behind an alias are: a local bundle folder, or the MLflow registry.

A locator answers three questions about one alias: a cheap ``fingerprint`` that changes when
the version behind it changes (polled for hot swap), the ``paths`` of its part folders
(downloading them first when they come from the registry), and a ``label`` per part for
answers and logs (``cascade-ranker/3 (@production)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from shared.models import registry
from shared.models.bundle import PARTS, version_of

ModelNotFoundError = registry.ModelNotFoundError


class ModelLocator:
    """The models behind one alias."""

    alias: str = "production"

    def paths(self) -> dict[str, Path]:
        """Folder of each model part (may download first)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Changes whenever the models behind this locator change."""
        raise NotImplementedError

    def labels(self, paths: Mapping[str, Path]) -> dict[str, str]:
        """How each part of ``paths`` reads in answers and logs."""
        return {part: f"{path} (@{self.alias})" for part, path in paths.items()}

    def cached(self, reason: str) -> ModelLocator | None:
        """What this alias last resolved to, from local copies, for when its source is down
        (``reason`` says why; it goes into the labels); None when there is no such fallback."""
        return None


class LocalModels(ModelLocator):
    """A plain bundle folder (``models/``): the parts are its sub-folders."""

    def __init__(self, root: str | Path, parts: Iterable[str] = PARTS, alias: str = "production"):
        self.root = Path(root)
        self.parts = tuple(parts)
        self.alias = alias

    def paths(self) -> dict[str, Path]:
        """Sub-folders of the bundle."""
        return {p: self.root / p for p in self.parts}

    def fingerprint(self) -> str:
        """Bundle ids of the parts (a re-published bundle has a new id)."""
        missing = [p for p in self.parts if not (self.root / p).is_dir()]
        if missing:
            raise ModelNotFoundError(f"no model folders {missing} under {self.root}")
        return "|".join(version_of(self.root / p) for p in self.parts)


def registered_name(part: str) -> str:
    """MLflow registered model name of a part (``item_index`` -> ``cascade-item-index``)."""
    return "cascade-" + part.replace("_", "-")


class RegistryModels(ModelLocator):
    """The versions behind an MLflow alias, downloaded into a local cache."""

    def __init__(
        self, uri: str, alias: str, cache_dir: str | Path, parts: Iterable[str] = PARTS
    ) -> None:
        self.uri = uri
        self.alias = alias
        self.cache_dir = Path(cache_dir)
        self.parts = tuple(parts)
        self._versions: dict[str, str] = {}

    def paths(self) -> dict[str, Path]:
        """Download (or reuse from the cache) the version behind the alias of each part."""
        out = {}
        for p in self.parts:
            got = registry.resolve_and_download(
                registered_name(p), self.alias, self.uri, self.cache_dir
            )
            self._versions[p] = got.version
            out[p] = got.path
        return out

    def labels(self, paths: Mapping[str, Path]) -> dict[str, str]:
        """``cascade-<part>/<version> (@alias)`` per part."""
        return {
            p: f"{registered_name(p)}/{self._versions.get(p, '?')} (@{self.alias})" for p in paths
        }

    def fingerprint(self) -> str:
        """The registry versions behind the alias (one cheap call per part)."""
        return "|".join(
            registry.current_version(registered_name(p), self.alias, self.uri) for p in self.parts
        )

    def cached(self, reason: str) -> ModelLocator:
        """The versions this alias last resolved to, from the download cache."""
        return CachedRegistryModels(self.alias, self.cache_dir, self.parts, reason)


class CachedRegistryModels(ModelLocator):
    """The versions an alias resolved to when the registry was last reachable, from the cache
    (each checked against its registered digest). Its fingerprint differs from the registry's
    for the same versions, so once the registry answers again the set reloads (from the same
    cached files) under the registry's labels: serving from the cache is never silent."""

    def __init__(self, alias: str, cache_dir: Path, parts: tuple[str, ...], reason: str) -> None:
        self.alias = alias
        self.cache_dir = cache_dir
        self.parts = parts
        self.reason = reason
        self._models = {
            p: registry.cached_alias(registered_name(p), alias, cache_dir) for p in parts
        }

    def paths(self) -> dict[str, Path]:
        """The cached folders."""
        return {p: m.path for p, m in self._models.items()}

    def fingerprint(self) -> str:
        """``cache:`` and the cached versions."""
        return "cache:" + "|".join(self._models[p].version for p in self.parts)

    def labels(self, paths: Mapping[str, Path]) -> dict[str, str]:
        """``cascade-<part>/<version> (@alias, from cache: <reason>)`` per part."""
        return {
            p: f"{registered_name(p)}/{self._models[p].version} (@{self.alias}, from cache: "
            f"{self.reason})"
            for p in paths
        }


Locate = Callable[[str], ModelLocator]


def locate_models(
    models_dir: str | None,
    alias_dirs: Mapping[str, str],
    mlflow_uri: str,
    cache_dir: str,
    parts: Iterable[str],
) -> Locate:
    """alias -> locator: local folders when ``models_dir`` is set (tests, no-MLflow runs;
    ``production`` is ``models_dir``, other aliases come from ``alias_dirs``), else MLflow."""
    parts = tuple(parts)

    def local(alias: str) -> ModelLocator:
        folder = models_dir if alias == "production" else alias_dirs.get(alias)
        if folder is None:
            known = ["production", *alias_dirs]
            raise ModelNotFoundError(f"no local bundle for alias {alias!r} (have {known})")
        return LocalModels(folder, parts, alias)

    def remote(alias: str) -> ModelLocator:
        return RegistryModels(mlflow_uri, alias, cache_dir, parts)

    return local if models_dir else remote
