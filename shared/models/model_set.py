"""ModelSet: the model versions one service holds at once, by registry alias, with hot swap.

Every request names the alias its variant uses for this slot (``production`` by default). The
set holds at most ``max_held`` loaded versions: ``production`` always, the aliases it follows
(``canary``, ``shadow``) whenever the registry has them, and any other alias a request asks
for, loaded in the background when first asked (that request is refused as "loading", and the
caller falls back). A service started while the registry is unreachable serves the
production versions it last resolved, from its download cache (labels and readiness say
"from cache"), and moves to the registry's once it answers. Every held or followed alias is
polled every ``poll_s``: a new version behind it is loaded beside the old one, checked
(feature schema, ONNX warm-up, the service's own ``prepare`` on production-size input) and
swapped in with one assignment, so a request
holding the old version finishes on it. A load that fails keeps what was held and is
remembered with its reason for ``retry_s``: a variant naming a model that cannot be loaded is
refused with that reason, without a reload storm. Two aliases at the same version share one
loaded copy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import Gauge

from shared.models.bundle import ModelBundle, load_bundle
from shared.models.locators import Locate, ModelLocator, ModelNotFoundError
from shared.models.registry import RegistryUnavailableError
from shared.pipeline.stage import Refused

log = logging.getLogger(__name__)

PRODUCTION = "production"
# An alias the registry does not have is asked again after this long (a cheap lookup); a
# version that failed to load waits ``retry_s`` (a reload downloads and warms up again).
NOT_FOUND_RETRY_S = 5.0
ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

MODELS_HELD = Gauge(
    "cascade_models_held",
    "1 for each model version a service holds loaded, by slot, alias and model label.",
    ["service", "slot", "alias", "model"],
)


class ModelNotHeld(Refused):
    """The alias a request asked for is not loaded here; ``reason`` says why.

    ``retry`` is True while it loads (a 503: asking again soon may succeed), False when it
    cannot be loaded (a 422 naming the variant's model: no such alias, a model that fails its
    checks, the set is full).
    """

    def __init__(self, slot: str, alias: str, reason: str, retry: bool) -> None:
        loc = ("context", "variant", "models", slot)
        super().__init__(503 if retry else 422, loc, f"{slot}@{alias}: {reason}", 2.0)
        self.slot = slot
        self.alias = alias
        self.retry = retry


@dataclass
class _Held:
    fingerprint: str
    bundle: ModelBundle
    used: float  # monotonic time of the last request that asked for it


class ModelSet:
    """Loaded model versions of one slot (``retrieval``, ``ranker``) by alias."""

    def __init__(
        self,
        slot: str,
        locate: Locate,
        parts: Iterable[str],
        *,
        follow: Iterable[str] = (PRODUCTION,),
        max_held: int = 3,
        poll_s: float = 30.0,
        prepare: Callable[[ModelBundle], None] | None = None,
        ranker_precision: str = "int8",
        service: str = "service",
        retry_s: float | None = None,
        idle_s: float = 600.0,
    ) -> None:
        self.slot = slot
        self.locate = locate
        self.parts = tuple(parts)
        self.follow = tuple(dict.fromkeys([PRODUCTION, *follow]))
        self.max_held = max(1, max_held)
        self.poll_s = poll_s
        self.prepare = prepare
        self.ranker_precision = ranker_precision
        self.service = service
        self.retry_s = retry_s if retry_s is not None else max(poll_s, 5.0)
        self.idle_s = idle_s
        self.error = "models not loaded yet"
        self._held: dict[str, _Held] = {}  # replaced whole on change (readers never lock)
        self._absent: dict[str, tuple[float, str]] = {}  # alias -> (retry after, reason)
        self._loading: set[str] = set()
        self._swap_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._gauges: set[tuple[str, str]] = set()

    # ---- the request path ------------------------------------------------------------
    def get(self, alias: str = PRODUCTION) -> ModelBundle:
        """The bundle behind ``alias``, or ModelNotHeld (a load is started when it may help)."""
        held = self._held.get(alias)
        if held is not None:
            held.used = time.monotonic()
            return held.bundle
        raise self._not_held(alias)

    def held(self) -> dict[str, ModelBundle]:
        """Alias -> bundle, of everything loaded now."""
        return {alias: h.bundle for alias, h in self._held.items()}

    def bundles(self) -> list[ModelBundle]:
        """The distinct loaded bundles (aliases at the same version count once)."""
        seen: dict[str, ModelBundle] = {}
        for h in self._held.values():
            seen.setdefault(h.fingerprint, h.bundle)
        return list(seen.values())

    def _not_held(self, alias: str) -> ModelNotHeld:
        if not ALIAS_PATTERN.fullmatch(alias):
            return ModelNotHeld(self.slot, alias, "not a valid alias name", retry=False)
        absent = self._absent.get(alias)
        if absent is not None and absent[0] > time.monotonic():
            return ModelNotHeld(self.slot, alias, absent[1], retry=False)
        if not self._request_load(alias):
            return ModelNotHeld(self.slot, alias, "not loaded in this process", retry=False)
        reason = self.error if alias == PRODUCTION else "loading, ask again shortly"
        return ModelNotHeld(self.slot, alias, reason, retry=True)

    def _request_load(self, alias: str) -> bool:
        """Start loading ``alias`` in the background (False when this set is not running)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        if alias not in self._loading:
            self._loading.add(alias)
            asyncio.run_coroutine_threadsafe(self._load_soon(alias), loop)
        return True

    async def _load_soon(self, alias: str) -> None:
        try:
            await asyncio.to_thread(self.load_now, alias)
        finally:
            self._loading.discard(alias)

    # ---- loading -----------------------------------------------------------------------
    def load_now(self, alias: str = PRODUCTION) -> bool:
        """Load (or reload when its version moved) ``alias``; True when a new bundle went live."""
        with self._swap_lock:
            try:
                return self._load(alias)
            except RegistryUnavailableError as exc:  # keep serving what is held
                if alias == PRODUCTION and alias not in self._held:
                    return self._load_cached(alias, exc)
                self._failed(alias, f"registry unreachable: {exc}", forget=False)
            except ModelNotFoundError as exc:  # the alias is gone: so is what it pointed to
                self._failed(alias, str(exc), forget=True, retry_s=NOT_FOUND_RETRY_S)
            except Exception as exc:  # any failed check keeps the old bundle serving
                self._failed(alias, f"model load failed: {exc}", forget=False)
            return False

    def _load_cached(self, alias: str, exc: RegistryUnavailableError) -> bool:
        """Start on the versions production last resolved to, when the registry is down at
        start (a service restarted during a registry outage must not stay unready)."""
        reason = f"registry unreachable: {exc}"
        try:
            cached = self.locate(alias).cached("registry unreachable")
            if cached is None:
                raise ModelNotFoundError("this model source has no local fallback")
            loaded = self._load(alias, cached)
        except Exception as cache_exc:  # no usable cached copy: wait for the registry
            self._failed(alias, f"{reason}; no cached copy to start from: {cache_exc}", False)
            return False
        log.warning(
            "registry unreachable: serving the cached production models",
            extra={"slot": self.slot, "error": str(exc), **self._held[alias].bundle.labels},
        )
        return loaded

    def _load(self, alias: str, locator: ModelLocator | None = None) -> bool:
        locator = locator or self.locate(alias)
        fingerprint = locator.fingerprint()
        current = self._held.get(alias)
        if current is not None and current.fingerprint == fingerprint:
            return False
        twin = next((h for h in self._held.values() if h.fingerprint == fingerprint), None)
        if twin is not None:  # the same version under another alias: share the loaded copy
            bundle = dataclasses.replace(twin.bundle, labels=_relabel(twin.bundle, alias))
        else:
            self._room_for(alias)  # refuse before loading when nothing may make way
            paths = locator.paths()
            bundle = load_bundle(paths, self.parts, self.ranker_precision)
            bundle.labels = locator.labels(paths)
            if self.prepare is not None:
                self.prepare(bundle)
            evict = self._room_for(alias)  # only a version that passed its checks makes room
            if evict is not None:
                self._drop(evict)
        held = dict(self._held)
        held[alias] = _Held(fingerprint, bundle, time.monotonic())
        self._held = held
        self._absent.pop(alias, None)
        if alias == PRODUCTION:
            self.error = ""
        self._update_gauges()
        log.info("models loaded", extra={"slot": self.slot, "alias": alias, **bundle.labels})
        return True

    def _room_for(self, alias: str) -> str | None:
        """The alias to unload for ``alias`` to fit (least recently used, neither production
        nor followed), None when it fits; RuntimeError when nothing may make way."""
        distinct = {h.fingerprint for a, h in self._held.items() if a != alias}
        if len(distinct) < self.max_held:
            return None
        spare = [a for a in self._held if a != alias and a not in self.follow]
        if not spare:
            raise RuntimeError(
                f"holds {self.max_held} versions already ({', '.join(self._held)}), the maximum"
            )
        return min(spare, key=lambda a: self._held[a].used)

    def _drop(self, alias: str) -> None:
        held = dict(self._held)
        gone = held.pop(alias, None)
        self._held = held
        if gone is not None:
            log.info("models unloaded", extra={"slot": self.slot, "alias": alias})
            self._update_gauges()

    def _failed(self, alias: str, reason: str, forget: bool, retry_s: float | None = None) -> None:
        self._absent[alias] = (time.monotonic() + (retry_s or self.retry_s), reason)
        if alias == PRODUCTION:
            self.error = reason
        elif forget:
            self._drop(alias)
        if alias == PRODUCTION or alias in self._held or alias not in self.follow:
            log.error(
                "model load failed", extra={"slot": self.slot, "alias": alias, "error": reason}
            )

    def _update_gauges(self) -> None:
        now = {(a, h.bundle.labels.get(self.parts[-1], "?")) for a, h in self._held.items()}
        for alias, label in self._gauges - now:
            MODELS_HELD.remove(self.service, self.slot, alias, label)
        for alias, label in now:
            MODELS_HELD.labels(self.service, self.slot, alias, label).set(1)
        self._gauges = now

    # ---- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load production in a worker thread, then keep every alias fresh in the background."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"models-{self.slot}")

    async def _run(self) -> None:
        while PRODUCTION not in self._held:
            await asyncio.to_thread(self.load_now, PRODUCTION)
            if PRODUCTION not in self._held:
                await asyncio.sleep(min(self.poll_s, 2.0) if self.poll_s > 0 else 2.0)
        for alias in self.follow[1:]:
            await asyncio.to_thread(self.load_now, alias)
        while self.poll_s > 0:
            await asyncio.sleep(self.poll_s)
            self._forget_idle()
            for alias in dict.fromkeys([*self.follow, *self._held]):
                await asyncio.to_thread(self.load_now, alias)

    def _forget_idle(self) -> None:
        cutoff = time.monotonic() - self.idle_s
        for alias, h in list(self._held.items()):
            if alias not in self.follow and h.used < cutoff:
                self._drop(alias)

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def check(self) -> tuple[bool, str]:
        """Readiness: ready once production passed its checks; the reason lists every alias."""
        parts = []
        for alias in dict.fromkeys([*self.follow, *self._held]):
            h = self._held.get(alias)
            if h is not None:
                files = [m.file for m in (h.bundle.ranker,) if m is not None and m.file]
                labels = ", ".join(h.bundle.labels.values()) + (f" ({files[0]})" if files else "")
                parts.append(f"{alias}: {labels}")
            elif alias in self._absent:
                parts.append(f"{alias}: none ({self._absent[alias][1][:160]})")
        ready = PRODUCTION in self._held
        return ready, ("ok; " if ready else f"{self.error}; ") + "; ".join(parts)


def _relabel(bundle: ModelBundle, alias: str) -> dict[str, str]:
    """The bundle's labels under another alias (``... (@production)`` -> ``... (@canary)``)."""
    return {p: re.sub(r"\(@[^)]*\)$", f"(@{alias})", label) for p, label in bundle.labels.items()}
