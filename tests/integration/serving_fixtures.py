"""Serving test support: model bundles, an in-memory online store, and real-model fixtures.

``write_synthetic_bundle`` writes a bundle in the docs/training.md layout whose ONNX graphs are
built with ``onnx.helper`` (small linear models, no torch), so stage tests run in milliseconds:
user and item towers share a genre projection, so a user who likes a genre retrieves items of
that genre. ``MemoryStore`` is an in-memory stand-in of the online store for unit tests.

Real-model fixtures (session scope, shared by every serving integration test):
``trained_models`` runs the real ``python -m training.pipeline --tiny`` on the committed
MovieLens subset (``TRAINING_DATA``); ``registered_models`` registers that bundle in the
session's MLflow under the alias ``production``; ``live_stack`` starts a private Redis loaded
from the same data, the four stage services and two gateways (services and in_process mode) as
real processes that load their models from that alias.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.local import infra
from deploy.local.processes import RunningProcess, free_port, running, start, stop, wait_ready
from loadtests.serving_stack import STAGE_SERVICES, serving_stack
from shared.features import (
    DEFAULT_CONFIG,
    GENRES,
    ItemFeatures,
    UserFeatures,
    build_schema,
    encode_item_tower,
    genre_multi_hot,
)
from shared.models.item_item import SparseItemItem
from shared.online_store.types import ItemBatch, ItemRecord, UserState

__all__ = ["STAGE_SERVICES", "serving_stack"]  # re-exported: the stack starter lives in loadtests

REPO = Path(__file__).resolve().parents[2]
TRAINING_DATA = REPO / "tests" / "fixtures" / "ml100k_tiny" / "recbole"
DIM = 16
HEADS = ("p_interact", "p_like")


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def _vi(name: str, dtype: int, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, list(shape))


def _schema_inputs(model: str) -> list[onnx.ValueInfoProto]:
    schema = build_schema(DEFAULT_CONFIG, DIM)
    types = {"int64": TensorProto.INT64, "float32": TensorProto.FLOAT}
    return [_vi(i["name"], types[i["dtype"]], i["shape"]) for i in schema.models[model]["inputs"]]


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _tower(name: str, genre_in: str, extra_in: str, out: str, w_genre: np.ndarray,
           w_extra: np.ndarray, model: str) -> onnx.GraphProto:  # fmt: skip
    nodes = [
        helper.make_node("MatMul", [genre_in, "Wg"], ["g"]),
        helper.make_node("MatMul", [extra_in, "We"], ["e"]),
        helper.make_node("Add", ["g", "e"], ["s"]),
        helper.make_node("Add", ["s", "b"], ["z"]),
        helper.make_node("LpNormalization", ["z"], [out], axis=1, p=2),
    ]
    inits = [_init("Wg", w_genre), _init("We", w_extra), _init("b", np.full(DIM, 0.05))]
    return helper.make_graph(
        nodes, name, _schema_inputs(model), [_vi(out, TensorProto.FLOAT, ["B", DIM])], inits
    )


def _ranker_graph(rng: np.random.Generator) -> onnx.GraphProto:
    nodes = [
        helper.make_node("MatMul", ["cross", "Wc"], ["c"]),
        helper.make_node("MatMul", ["item_dense", "Wd"], ["d"]),
        helper.make_node("Add", ["c", "d"], ["cd"]),
        helper.make_node("Reshape", ["cd", "flat"], ["logit_c"]),
        helper.make_node("Add", ["logit_c", "ease_score"], ["logit_i"]),
        helper.make_node("Sigmoid", ["logit_i"], ["p_interact"]),
        helper.make_node("MatMul", ["item_dense", "Wl"], ["l"]),
        helper.make_node("Reshape", ["l", "flat"], ["logit_l"]),
        helper.make_node("Sigmoid", ["logit_l"], ["p_like"]),
        helper.make_node("Mul", ["p_interact", "w1"], ["a"]),
        helper.make_node("Mul", ["p_like", "w2"], ["bb"]),
        helper.make_node("Add", ["a", "bb"], ["score"]),
    ]
    inits = [
        _init("Wc", [[4.0], [2.0]]), _init("Wd", rng.normal(0, 0.3, (6, 1))),
        _init("Wl", rng.normal(0, 0.3, (6, 1))), _init("w1", [0.7]), _init("w2", [0.3]),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"),
    ]  # fmt: skip
    outs = [_vi(n, TensorProto.FLOAT, ["N"]) for n in (*HEADS, "score")]
    return helper.make_graph(nodes, "ranker", _schema_inputs("ranker"), outs, inits)


def catalog(n_items: int = 300, seed: int = 0, added_ts: float = 1.0) -> list[ItemRecord]:
    """A synthetic catalog: 1–2 genres per item, years 1950–2000, every 10th item restricted."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_items):
        genres = tuple(
            GENRES[j]
            for j in sorted(rng.choice(np.arange(1, 19), rng.integers(1, 3), replace=False))
        )
        items.append(
            ItemRecord(
                item_id=str(i + 1), title=f"item {i + 1}", genres=genres,
                release_year=int(rng.integers(1950, 2000)), added_ts=added_ts,
                age_restricted=(i % 10 == 9),
                regions=frozenset({"EU"}) if i % 25 == 24 else frozenset(),
            )
        )  # fmt: skip
    return items


def item_features(rec: ItemRecord, total: float = 0.0) -> ItemFeatures:
    """Feature record of a catalog item (counters from ``total``; as in the online store,
    every interaction counts as a rating, so ``rating_count`` equals ``count_total``)."""
    return ItemFeatures(
        item_id=rec.item_id, genres=rec.genres, release_year=rec.release_year,
        count_1h=total / 100, count_24h=total / 10, count_7d=total / 3, count_total=total,
        like_count=total / 4, rating_count=total,
    )  # fmt: skip


def write_synthetic_bundle(out: Path, items: Sequence[ItemRecord], bundle_id: str = "synthetic-1",
                           seed: int = 0) -> Path:  # fmt: skip
    """A complete model bundle (docs/training.md layout) over ``items``."""
    rng = np.random.default_rng(seed)
    w_genre = rng.normal(0, 1, (len(GENRES), DIM))
    schema = build_schema(DEFAULT_CONFIG, DIM)
    manifest = {"bundle_id": bundle_id}
    for part in ("user_tower", "item_index", "ranker"):
        (out / part).mkdir(parents=True, exist_ok=True)
        schema.save(out / part / "feature_schema.json")
        (out / part / "manifest.json").write_text(json.dumps(manifest))
    schema.save(out / "feature_schema.json")
    (out / "manifest.json").write_text(json.dumps(manifest))
    user_path = out / "user_tower" / "user_tower.onnx"
    _save(_tower("user_tower", "user_genre_affinity", "user_dense", "user_embedding", w_genre,
                 rng.normal(0, 0.1, (3, DIM)), "user_tower"), user_path)  # fmt: skip
    item_path = out / "item_index" / "item_tower.onnx"
    _save(_tower("item_tower", "item_genres", "item_year", "item_embedding", w_genre,
                 rng.normal(0, 0.1, (2, DIM)), "item_tower"), item_path)  # fmt: skip
    _save(_ranker_graph(rng), out / "ranker" / "ranker.onnx")
    (out / "ranker" / "ranker_meta.json").write_text(
        json.dumps({"heads": list(HEADS), "blend_weights": {"p_interact": 0.7, "p_like": 0.3}})
    )
    _write_index(out / "item_index", item_path, items)
    return out


def _write_index(folder: Path, item_tower: Path, items: Sequence[ItemRecord]) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(item_tower), providers=["CPUExecutionProvider"])
    feeds = encode_item_tower([item_features(r) for r in items])
    emb = sess.run(None, feeds)[0].astype(np.float32)
    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=len(items), ef_construction=100, M=16, random_seed=1)
    index.add_items(emb, np.arange(len(items)))
    index.save_index(str(folder / "hnsw_index.bin"))
    np.save(folder / "item_embeddings.npy", emb)
    (folder / "item_ids.json").write_text(json.dumps([r.item_id for r in items]))
    meta = {"space": "ip", "dim": DIM, "M": 16, "ef_construction": 100, "ef_search": 64,
            "n_items": len(items)}  # fmt: skip
    (folder / "index_meta.json").write_text(json.dumps(meta))
    _write_item_item(folder, emb)


def _write_item_item(folder: Path, emb: np.ndarray, top_n: int = 20) -> None:
    """Item-item weights (item_item.npz): each item's ``top_n`` most similar items."""
    top_n = min(top_n, len(emb) - 1)
    if top_n < 1:
        return
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    cols = np.sort(np.argpartition(-sim, top_n - 1, axis=1)[:, :top_n], axis=1)
    indptr = np.arange(0, len(emb) * top_n + 1, top_n, dtype=np.int64)
    data = np.take_along_axis(sim, cols, axis=1).astype(np.float32).ravel()
    SparseItemItem(indptr, cols.astype(np.int32).ravel(), data, {"model": "synthetic"}).save(folder)


class MemoryStore:
    """An in-memory stand-in for OnlineStore's read API (unit tests only)."""

    def __init__(
        self, items: Sequence[ItemRecord], popularity: dict[str, float] | None = None
    ) -> None:
        self.items = {r.item_id: r for r in items}
        self.popularity = popularity or {
            r.item_id: float(len(items) - i) for i, r in enumerate(items)
        }
        self.users: dict[str, UserState] = {}
        self.fail: set[str] = set()  # method names that raise (to test fail-open)
        self.delay_s: dict[str, float] = {}  # method name -> seconds it sleeps (to test timeouts)
        self.segments: dict[str, list[tuple[str, float]]] | None = None  # per-segment popularity
        self.calls: list[str] = []  # method names, in call order
        self._feature_cache: dict[str, ItemFeatures] = {}

    def _maybe_fail(self, method: str) -> None:
        self.calls.append(method)
        if method in self.fail:
            raise ConnectionError(f"{method}: store unavailable")

    async def _maybe_wait(self, method: str) -> None:
        import asyncio

        self._maybe_fail(method)
        if method in self.delay_s:
            await asyncio.sleep(self.delay_s[method])

    async def get_user(self, user_id: str, now: float) -> UserState:
        await self._maybe_wait("get_user")
        from shared.features import UserFeatures

        return self.users.get(user_id) or UserState(UserFeatures(user_id=user_id), known=False)

    async def get_items(
        self, item_ids: Sequence[str], now: float, user: UserState | None = None
    ) -> ItemBatch:
        await self._maybe_wait("get_items")
        return self._batch(item_ids, with_counts=True)

    async def remember_arms(self, user_id: str, arms: dict[str, str]) -> None:
        await self._maybe_wait("remember_arms")
        state = await self.get_user(user_id, 0.0)
        self.users[user_id] = state
        for experiment_id, arm in arms.items():
            state.arms.setdefault(experiment_id, arm)

    def cached_items(self, item_ids: Sequence[str], now: float) -> ItemBatch:
        """Attributes without counters (as the real store's catalog cache gives them)."""
        return self._batch(item_ids, with_counts=False)

    def _batch(self, item_ids: Sequence[str], with_counts: bool) -> ItemBatch:
        """An ItemBatch with the same columns the Redis-backed store fills."""
        recs = [self.items.get(i) for i in item_ids]
        feats = [self._features(i, r) for i, r in zip(item_ids, recs, strict=True)]
        counts = np.array(
            [[f.count_1h, f.count_24h, f.count_7d, f.count_total] for f in feats], np.float64
        ).reshape(len(feats), 4) * float(with_counts)
        years = [np.nan if f.release_year is None else f.release_year for f in feats]
        return ItemBatch(
            item_ids=list(item_ids),
            found=np.array([r is not None for r in recs], dtype=bool),
            features=feats,
            added_ts=np.array([r.added_ts if r else 0.0 for r in recs], dtype=np.float64),
            age_restricted=np.array([r is not None and r.age_restricted for r in recs], dtype=bool),
            regions=[r.regions if r else frozenset() for r in recs],
            ctr=np.zeros(len(recs), dtype=np.float32),
            counts=counts,
            like_count=np.array([f.like_count for f in feats], np.float64) * float(with_counts),
            release_year=np.array(years, dtype=np.float64),
            genres=np.array([genre_multi_hot(f.genres) for f in feats], np.float32).reshape(
                len(feats), len(GENRES)
            ),
        )

    def _features(self, item_id: str, rec: ItemRecord | None) -> ItemFeatures:
        cached = self._feature_cache.get(item_id)
        if cached is None:
            base = rec or ItemRecord(item_id=item_id)
            cached = item_features(base, self.popularity.get(item_id, 0.0))
            self._feature_cache[item_id] = cached
        return cached

    def _top(self, k: int, ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        pool = ids if ids is not None else list(self.popularity)
        ranked = sorted(pool, key=lambda i: -self.popularity.get(i, 0.0))
        return [(i, self.popularity.get(i, 0.0)) for i in ranked[:k]]

    async def trending(self, k: int, now: float) -> list[tuple[str, float]]:
        await self._maybe_wait("trending")
        return self._top(k)

    async def popular_in_segment(
        self, segment: str, k: int, now: float | None = None
    ) -> list[tuple[str, float]]:
        await self._maybe_wait("popular_in_segment")
        if self.segments is not None:
            return self.segments.get(segment, [])[:k]
        return self._top(k)[::-1][:k]

    async def fresh_items(self, k: int, now: float, max_age_s: float) -> list[tuple[str, float]]:
        await self._maybe_wait("fresh_items")
        fresh = [r for r in self.items.values() if now - r.added_ts <= max_age_s]
        fresh.sort(key=lambda r: -r.added_ts)
        return [(r.item_id, r.added_ts) for r in fresh[:k]]

    async def put_items(self, items: Sequence[ItemRecord]) -> None:
        await self._maybe_wait("put_items")
        for r in items:
            self.items[r.item_id] = r
            self._feature_cache.pop(r.item_id, None)


def user_state(user_id: str, history: Sequence[str] = (), **kw: Any) -> UserState:
    """A known user's state for unit tests (``kw`` goes to UserState: seen, blocked, ...)."""
    profile = {k: kw.pop(k) for k in ("age", "gender", "genre_affinity") if k in kw}
    feats = UserFeatures(user_id=user_id, history=tuple(history), n_events=len(history), **profile)
    return UserState(features=feats, known=True, **kw)


# ---- real models, real processes -------------------------------------------------------------


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real bundle: ``python -m training.pipeline --tiny`` on ``TRAINING_DATA``, once per
    run: under pytest-xdist the workers share it (the first to ask trains, under a lock)."""
    root = shared_tmp(tmp_path_factory) / "trained"
    out = root / "models"
    with exclusive(root.parent / "trained.lock"):
        if not (out / "manifest.json").is_file():
            staging = root / "staging"
            cmd = [
                sys.executable, "-m", "training.pipeline", "--tiny", "--no-register",
                "--data", str(TRAINING_DATA), "--out", str(staging),
                "--reports", str(root / "reports"),
            ]  # fmt: skip
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, (
                f"tiny training failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
            staging.rename(out)  # complete, or not there: a worker never sees half a bundle
    yield out


def shared_tmp(factory: pytest.TempPathFactory) -> Path:
    """This run's temporary root, the same for every pytest-xdist worker (each worker's own
    base is a ``popen-gwN`` folder under it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """An exclusive lock on ``lock`` (flock) for the block, across processes."""
    import fcntl

    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def registered_models(trained_models: Path, mlflow_tracking_uri: str) -> dict[str, str]:
    """``trained_models`` registered in the session's MLflow, alias ``production`` moved to it.

    Returns {registered model name: version}.
    """
    from training.registry import log_and_register

    names = ("user_tower", "item_index", "ranker")
    parts = {p.replace("_", "-"): trained_models / p for p in names}
    manifest = json.loads((trained_models / "manifest.json").read_text())
    tags = {"bundle_id": manifest["bundle_id"], "feature_schema_version": "1"}
    return log_and_register(parts, [], {}, {}, tags, mlflow_tracking_uri, "production")


def load_store(redis_url: str, data_dir: Path = TRAINING_DATA) -> None:
    """Flush ``redis_url`` and load the catalog, profiles and ratings of ``data_dir``."""
    import redis

    from services.feature_store.bootstrap import bootstrap

    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
        bootstrap(client, str(data_dir), train_only=False, batch=5000)
    finally:
        client.close()


def write_budget(path: Path, stage_ms: float = 1500.0) -> Path:
    """A latency budget with generous deadlines: functional tests on a busy machine must not
    see a stage miss its deadline unless the test makes it miss (a killed or hung process).

    Stage and source names come from the budget model and the source list, so a new stage or
    source is covered without editing this."""
    from services.candidate_generation.pipeline import SOURCES
    from shared.pipeline.budget import StageBudgets

    budget = {
        "total_ms": stage_ms * 4,
        "stages": dict.fromkeys(StageBudgets.model_fields, stage_ms),
        "sources": {cls.name: stage_ms * 0.6 for cls in SOURCES},
    }
    path.write_text(json.dumps(budget))  # JSON is YAML
    return path


@dataclass
class LiveStack:
    """The running serving processes of ``live_stack`` and ways to break them."""

    procs: dict[str, RunningProcess]
    redis: RunningProcess
    env: dict[str, str]
    log_dir: Path

    def url(self, name: str = "gateway") -> str:
        """Base URL of a service."""
        return self.procs[name].spec.url

    def recommend(self, gateway: str = "gateway", **params: Any) -> Any:
        """GET /v1/recommendations on a gateway; the httpx response."""
        import httpx

        return httpx.get(f"{self.url(gateway)}/v1/recommendations", params=params, timeout=30)

    @contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """The process hung for real (SIGSTOP) for the block, then resumed (SIGCONT)."""
        proc = self.redis if name == "redis" else self.procs[name]
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(proc.pid, signal.SIGCONT)

    @contextmanager
    def killed(self, name: str) -> Iterator[None]:
        """The process SIGKILLed for the block, then started again (same port) and ready."""
        proc = self.redis if name == "redis" else self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.popen.wait(10)
        try:
            yield
        finally:
            fresh = start(proc.spec, self.log_dir)
            wait_ready(fresh)
            if name == "redis":
                self.redis = fresh
            else:
                self.procs[name] = fresh


@pytest.fixture(scope="session")
def live_stack(
    registered_models: dict[str, str],
    kafka_bootstrap: str,
    mlflow_tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveStack]:
    """Redis (its own, persistent, loaded with ``TRAINING_DATA``), four stage services and two
    gateways (services mode, in_process mode) as real processes on models from MLflow."""
    root = tmp_path_factory.mktemp("serving")
    log_dir = root / "logs"
    rspec = infra.redis_spec(free_port(), root / "redis", persist=True)
    with running(rspec, log_dir) as redis_proc:
        load_store(rspec.url)
        env = {
            "CASCADE_REDIS_URL": rspec.url,
            "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "CASCADE_MLFLOW_URI": mlflow_tracking_uri,
            "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
            "CASCADE_MODEL_CACHE_DIR": str(root / "model_cache"),
            # Other modules move the session registry's production alias (the local runtime's
            # `up` registers a bundle, the rollouts move it) and put it back: follow it quickly.
            "CASCADE_MODEL_POLL_S": "2",
            "CASCADE_LATENCY_BUDGET": str(write_budget(root / "budget.yaml")),
            "CASCADE_CANDIDATE_GENERATION_INDEX_SYNC_S": "0.5",
            "OPENBLAS_NUM_THREADS": "1",
        }
        with serving_stack(env, log_dir, in_process_gateway=True) as procs:
            stack = LiveStack(procs, redis_proc, env, log_dir)
            yield stack
            if stack.redis is not redis_proc:  # restarted by a test: stop that one too
                stop(stack.redis)


def set_production(mlflow_uri: str, versions: dict[str, str]) -> None:
    """Point the ``production`` alias of each registered model at its version in ``versions``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    for name, version in versions.items():
        client.set_registered_model_alias(name, "production", version)


def wait_serving(stack: LiveStack, versions: dict[str, str], timeout_s: float = 60.0) -> None:
    """Until both gateways of ``stack`` answer with the models of ``versions`` in production."""
    import httpx

    want = {name.removeprefix("cascade-").replace("-", "_"): f"{name}/{v} (@production)"
            for name, v in versions.items()}  # fmt: skip
    deadline = time.monotonic() + timeout_s
    for gateway in ("gateway", "gateway_in_process"):
        while True:
            resp = httpx.get(f"{stack.url(gateway)}/v1/recommendations",
                             params={"user_id": "1", "k": 5}, timeout=10)  # fmt: skip
            got = resp.json().get("model_versions") if resp.status_code == 200 else None
            if got == want:
                break
            assert time.monotonic() < deadline, f"{gateway} serves {got}, not {want}"
            time.sleep(0.5)


def load_models(
    bundle: Path, parts: Sequence[str] = ("user_tower", "item_index", "ranker"),
    slot: str = "models", alias_dirs: dict[str, str] | None = None,
) -> Any:  # fmt: skip
    """A ModelSet with ``bundle`` loaded as production (schema-checked, warm), no polling."""
    from shared.models.locators import locate_models
    from shared.models.model_set import ModelSet

    locate = locate_models(str(bundle), alias_dirs or {}, "", "", parts)
    models = ModelSet(slot, locate, parts, poll_s=0)
    assert models.load_now(), models.error
    return models


def context(
    state: UserState, now: float = 1_700_000_000.0, k: int = 10, seed: int = 7,
    variant: Any = None, request_id: str = "test",
) -> Any:  # fmt: skip
    """The RequestContext the gateway would send for ``state``."""
    from services.gateway.request_state import request_context

    return request_context(state, now, k, seed, variant, request_id)


def hydrated_frame(store: MemoryStore, item_ids: Sequence[str], state: UserState,
                   now: float = 1_700_000_000.0) -> Any:  # fmt: skip
    """The frame the gateway's item step builds: every store column of ``item_ids``, and
    candidate generation's ``ease_score`` (0 here)."""
    from shared.frame import Frame
    from shared.online_store.columns import STORE_COLUMN_NAMES, hydrate

    batch = store._batch(list(item_ids), with_counts=True)
    frame = Frame(list(item_ids), hydrate(batch, state, STORE_COLUMN_NAMES))
    frame.columns["ease_score"] = np.zeros(len(item_ids), dtype=np.float32)
    return frame
