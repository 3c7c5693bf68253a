"""Serving test support: model bundles, an in-memory online store, and real-model fixtures.

``write_synthetic_bundle`` writes a bundle in the docs/training.md layout whose ONNX graphs are
built with ``onnx.helper`` (small linear models, no torch), so stage tests run in milliseconds:
user and item towers share a genre projection, so a user who likes a genre retrieves items of
that genre. ``trained_models`` (session scope) runs the real ``python -m training.pipeline
--tiny`` into a tmp folder for the end-to-end tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import hnswlib
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.local.processes import ProcessSpec, RunningProcess, StartupError, start, stop, tail
from shared.features import DEFAULT_CONFIG, GENRES, ItemFeatures, build_schema, encode_item_tower
from shared.online_store.types import ItemBatch, ItemRecord, UserState
from tests.utils.servers import running, service_spec

REPO = Path(__file__).resolve().parents[2]
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
        helper.make_node("Reshape", ["cd", "flat"], ["logit_i"]),
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
    """Feature record of a catalog item (counters from ``total``)."""
    return ItemFeatures(
        item_id=rec.item_id, genres=rec.genres, release_year=rec.release_year,
        count_1h=total / 100, count_24h=total / 10, count_7d=total / 3, count_total=total,
        like_count=total / 4, rating_count=total / 2,
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
        self._feature_cache: dict[str, ItemFeatures] = {}

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail:
            raise ConnectionError(f"{method}: store unavailable")

    async def get_user(self, user_id: str, now: float) -> UserState:
        self._maybe_fail("get_user")
        from shared.features import UserFeatures

        return self.users.get(user_id) or UserState(UserFeatures(user_id=user_id), known=False)

    async def get_items(self, item_ids: Sequence[str], now: float) -> ItemBatch:
        self._maybe_fail("get_items")
        recs = [self.items.get(i) for i in item_ids]
        feats = [self._features(i, r) for i, r in zip(item_ids, recs, strict=True)]
        return ItemBatch(
            item_ids=list(item_ids),
            found=np.array([r is not None for r in recs], dtype=bool),
            features=feats,
            added_ts=np.array([r.added_ts if r else 0.0 for r in recs], dtype=np.float64),
            age_restricted=np.array([r is not None and r.age_restricted for r in recs], dtype=bool),
            regions=[r.regions if r else frozenset() for r in recs],
            ctr=np.zeros(len(recs), dtype=np.float32),
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
        self._maybe_fail("trending")
        return self._top(k)

    async def popular_in_segment(self, segment: str, k: int) -> list[tuple[str, float]]:
        self._maybe_fail("popular_in_segment")
        return self._top(k)[::-1][:k]

    async def fresh_items(self, k: int, now: float, max_age_s: float) -> list[tuple[str, float]]:
        self._maybe_fail("fresh_items")
        fresh = [r for r in self.items.values() if now - r.added_ts <= max_age_s]
        fresh.sort(key=lambda r: -r.added_ts)
        return [(r.item_id, r.added_ts) for r in fresh[:k]]

    async def put_items(self, items: Sequence[ItemRecord]) -> None:
        self._maybe_fail("put_items")
        for r in items:
            self.items[r.item_id] = r
            self._feature_cache.pop(r.item_id, None)


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real bundle from ``python -m training.pipeline --tiny --no-register`` (once a session)."""
    out = tmp_path_factory.mktemp("trained") / "models"
    proc = subprocess.run(
        [sys.executable, "-m", "training.pipeline", "--tiny", "--no-register", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"tiny training failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    yield out


STAGE_SERVICES = ("candidate_generation", "filtering", "ranking", "reranking")


@contextmanager
def serving_stack(
    env: dict[str, str],
    log_dir: Path,
    in_process_gateway: bool = False,
    gateway_env: dict[str, str] | None = None,
) -> Iterator[dict[str, RunningProcess]]:
    """The four stage services and a gateway pointed at them, each a real process.

    ``env`` carries the platform settings (CASCADE_REDIS_URL, CASCADE_MODELS_DIR, ...). With
    ``in_process_gateway`` a second gateway runs every stage itself (mode in_process). Every
    process is stopped on exit. Yields name -> RunningProcess (``.spec.url`` is its base URL).
    """
    with ExitStack() as stack:
        procs: dict[str, RunningProcess] = {}
        for name in STAGE_SERVICES:  # start all, then wait: the model loads overlap
            procs[name] = stack.enter_context(_started(service_spec(name, env), log_dir))
        for name in STAGE_SERVICES:
            _wait_http(procs[name], "/readyz")
        urls = {f"CASCADE_GATEWAY_{n.upper()}_URL": procs[n].spec.url for n in STAGE_SERVICES}
        genv = {**env, **urls, **(gateway_env or {})}
        procs["gateway"] = stack.enter_context(running(service_spec("gateway", genv), log_dir))
        if in_process_gateway:
            ienv = {**genv, "CASCADE_GATEWAY_MODE": "in_process"}
            spec = service_spec("gateway", ienv)
            spec.name = "gateway_in_process"
            procs["gateway_in_process"] = stack.enter_context(running(spec, log_dir))
            _wait_http(procs["gateway_in_process"], "/readyz")
        yield procs


@contextmanager
def _started(spec: ProcessSpec, log_dir: Path) -> Iterator[RunningProcess]:
    proc = start(spec, log_dir)
    try:
        yield proc
    finally:
        stop(proc)


def _wait_http(proc: RunningProcess, path: str, timeout_s: float = 120.0) -> None:
    """Wait until ``path`` answers 200 (readiness: models loaded and warmed up)."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            log = tail(proc.log_path)
            raise StartupError(f"{proc.spec.name} exited; log {proc.log_path}:\n{log}")
        try:
            if httpx.get(proc.spec.url + path, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise StartupError(f"{proc.spec.name} not ready; log {proc.log_path}:\n{tail(proc.log_path)}")
