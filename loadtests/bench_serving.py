"""Serving benchmark: GET /v1/recommendations end to end, the in-process baseline, stage timings.

Starts Redis (MovieLens-100K loaded), the Kafka-protocol broker, the four stage services, a
gateway calling them (mode ``services``), a gateway running every stage itself (mode
``in_process``) and one calling the stage services but filtering itself
(``CASCADE_GATEWAY_FILTERING_IN_GATEWAY``), each its own process; models from ``--models``,
``models/``, or trained with ``python -m training.pipeline --tiny`` into a temporary folder.
Then measures:

- the gateways one request at a time, interleaved (same requests, same moment): p50/p99 and
  the microservice / in-process p50 ratios;
- CPU milliseconds per request of every process (from /proc) at ``CASCADE_BENCH_CPU_RATE``
  req/s (50), each path in ``CASCADE_BENCH_CPU_ROUNDS`` (3) alternating 20 s runs, the median
  run reported with every run's total;
- open-loop load at ``--rate`` requests/s for ``--duration`` s (k=20 from up to 500 candidates):
  p50/p99 from the scheduled send time (queueing counts), errors, degraded share;
- the highest rate whose p99 stays <= 50 ms with no errors and <= 1% of answers degraded
  (15 s steps; ``--no-search`` skips);
- per stage in isolation: ANN top-500, ranker on 500 candidates, features for 500 items;
- a synthetic 1M x 64 catalog: hnswlib recall@100 against exact search and query time per
  ``ef`` (building the index takes minutes; ``--no-ann-1m`` skips, ``--ann-1m-only`` runs it
  alone).

Prints tables and returns a dict; never asserts timings. The machine's load average is
recorded with the figures: on shared cores they move with what else runs.

    python -m loadtests.bench_serving [--duration 60] [--rate 200] [--models DIR] [--no-ann-1m]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: see services/*/__main__.py

import argparse  # noqa: E402
import asyncio  # noqa: E402
import dataclasses  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import AsyncExitStack, ExitStack, contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from deploy.local import infra  # noqa: E402
from deploy.local.processes import free_port, running  # noqa: E402
from loadtests.load_generator import (  # noqa: E402
    Client,
    LoadResult,
    open_loop,
    send_one,
    sequential,
)
from loadtests.machine_speed import reference_speed  # noqa: E402
from loadtests.serving_stack import serving_stack  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "ml-100k"
P99_TARGET_MS = 50.0
# A third gateway: services mode with the filtering stage in the gateway (one hop less).
LOCAL_FILTERING = "gateway_local_filtering"
MAX_DEGRADED_SHARE = 0.01


# ---- the benchmark


def _users(n: int, seed: int = 0) -> list[str]:
    """MovieLens user ids with 10% never-seen ids (the cold-start path)."""
    rng = np.random.default_rng(seed)
    known = rng.integers(1, 944, n)
    return [f"new-{i}" if rng.random() < 0.1 else str(u) for i, u in enumerate(known)]


def _paths(users: list[str], k: int = 20) -> list[str]:
    return [f"/v1/recommendations?user_id={u}&k={k}" for u in users]


@contextmanager
def _models(models_dir: str | Path | None, log_dir: Path) -> Iterator[Path]:
    """The given bundle (when it holds one), ``models/`` when trained, else a tiny bundle
    trained now with ``python -m training.pipeline --tiny`` (about 1.5 minutes)."""
    for candidate in (models_dir, REPO / "models"):
        if candidate and (Path(candidate) / "ranker" / "ranker.onnx").is_file():
            yield Path(candidate)
            return
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        out = Path(tmp) / "models"
        cmd = [sys.executable, "-m", "training.pipeline", "--tiny", "--no-register",
               "--out", str(out), "--reports", str(Path(tmp) / "reports")]  # fmt: skip
        with open(log_dir / "training.log", "wb") as log:
            subprocess.run(cmd, cwd=REPO, check=True, stdout=log, stderr=subprocess.STDOUT)
        yield out


def _bootstrap(redis_url: str, data_dir: Path) -> None:
    import redis

    from services.feature_store.bootstrap import bootstrap

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    bootstrap(client, str(data_dir), train_only=False, batch=5000)
    client.close()


@contextmanager
def _platform(
    log_dir: Path, models_dir: str | Path | None, data_dir: Path
) -> Iterator[tuple[dict[str, str], dict[str, int]]]:
    """Redis (MovieLens loaded), the broker and the models; yields the platform env vars and
    the infrastructure's pids (CPU per request counts them too)."""
    with ExitStack() as stack:
        rspec = infra.redis_spec(free_port(), log_dir / "redis")
        redis_proc = stack.enter_context(running(rspec, log_dir))
        kspec = infra.tansu_spec(free_port())
        broker = stack.enter_context(running(kspec, log_dir))
        _bootstrap(rspec.url, data_dir)
        models = stack.enter_context(_models(models_dir, log_dir))
        yield (
            {
                "CASCADE_REDIS_URL": rspec.url,
                "CASCADE_KAFKA_BOOTSTRAP": kspec.url,
                "CASCADE_MODELS_DIR": str(models),
                "CASCADE_MODEL_POLL_S": "0",
                "OPENBLAS_NUM_THREADS": "1",
            },
            {"redis": redis_proc.pid, "broker": broker.pid},
        )


def _stats(values_ms: np.ndarray) -> dict[str, float]:
    if values_ms.size == 0:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "n": 0}
    return {
        "p50_ms": round(float(np.percentile(values_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(values_ms, 99)), 3),
        "n": int(values_ms.size),
    }


def _load_summary(res: LoadResult) -> dict[str, Any]:
    return {
        **_stats(res.latencies_ms),
        "rate_rps": res.rate,
        "achieved_rps": round(res.achieved_rps, 1),
        "errors": res.errors,
        "degraded_share": round(res.degraded / max(res.n, 1), 4),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "error_samples": sorted(set(res.error_samples))[:3],
        "degraded_reasons": dict(res.degraded_reasons.most_common(5)),
    }


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_per_request(
    pids: dict[str, int], url: str, users: list[str], rate: float
) -> dict[str, Any]:
    """Open loop at a fixed ``rate`` through ``url``: CPU ms per request of every process
    (services, Redis, the broker), from /proc; the load generator's own CPU apart."""
    before = {name: _cpu_s(pid) for name, pid in pids.items()}
    me = _cpu_s(os.getpid())
    res = asyncio.run(open_loop(url, _paths(users), rate, len(users) / rate))
    generator_ms = (_cpu_s(os.getpid()) - me) * 1000.0 / len(users)
    cpu = {
        name: round((_cpu_s(pid) - before[name]) * 1000.0 / len(users), 2)
        for name, pid in pids.items()
    }
    cpu = {name: ms for name, ms in cpu.items() if ms > 0}
    return {**_load_summary(res), "cpu_ms_per_request": cpu,
            "cpu_ms_total": round(sum(cpu.values()), 2),
            "load_generator_cpu_ms_per_request": round(generator_ms, 2)}  # fmt: skip


def _cpu_rounds(
    pids: dict[str, int], urls: dict[str, str], users: list[str], rate: float, rounds: int
) -> dict[str, Any]:
    """CPU per request of each path, measured in ``rounds`` alternating runs: per path the
    run of median total, with every run's total beside it. The same code measured 4.9 to 6.3
    ms per request in-process in runs minutes apart on this machine; one run is one draw."""
    paths = {"cpu_microservice": urls["gateway"], "cpu_in_process": urls["gateway_in_process"],
             "cpu_local_filtering": urls[LOCAL_FILTERING]}  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in paths}
    for r in range(max(rounds, 1)):
        for key in list(paths) if r % 2 == 0 else list(reversed(paths)):
            runs[key].append(_cpu_per_request(pids, paths[key], users, rate))
    out = {}
    for key, measured in runs.items():
        median = sorted(measured, key=lambda m: m["cpu_ms_total"])[len(measured) // 2]
        out[key] = {**median, "rounds_cpu_ms_total": [m["cpu_ms_total"] for m in measured]}
    return out


async def _interleaved(urls: dict[str, str], users: list[str]) -> dict[str, np.ndarray]:
    """The same requests through each gateway in turn, one at a time (same load for both)."""
    lat: dict[str, list[float]] = {name: [] for name in urls}
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(Client(url)) for name, url in urls.items()}
        for path in _paths(users):
            for name, client in clients.items():
                res = LoadResult(0.0, np.zeros(0), 0, 0, 1, 0.0)
                await send_one(client, path, time.perf_counter(), res, lat[name])
                if res.errors:
                    raise RuntimeError(f"{name}: {res.error_samples}")
    return {name: np.array(v) for name, v in lat.items()}


async def _in_process_library(env: dict[str, str], users: list[str]) -> dict[str, Any]:
    """The same stage code called in this process, no HTTP at all (for reference)."""
    from services.gateway.pipeline import GATEWAY_KNOBS, PIPELINE
    from services.gateway.request_state import RequestState
    from services.gateway.runner import Runner
    from services.gateway.settings import Settings
    from services.gateway.stage_clients import LocalStage
    from services.gateway.stages import in_process_stages
    from services.gateway.steps.deps import StepDeps
    from shared.online_store.reader import OnlineStore
    from shared.pipeline.budget import load_budget
    from shared.pipeline.context import VariantSpec
    from shared.pipeline.knobs import KnobTable
    from shared.platform.redis_client import create_async_redis

    redis = create_async_redis(env["CASCADE_REDIS_URL"])
    store = OnlineStore(redis, cache_ttl_s=1.0)
    await store.preload_catalog()
    budget = load_budget()
    settings = Settings(models_dir=env["CASCADE_MODELS_DIR"], model_poll_s=0)
    stages = in_process_stages(settings, store, budget, "bench")
    for models in stages.models:
        if not models.load_now():
            raise RuntimeError(models.error)
    clients = {n: LocalStage(s) for n, s in stages.by_name().items()}
    deps = StepDeps(store, dict(clients), stages.filtering, stages.hydrated(),
                    KnobTable(GATEWAY_KNOBS))  # fmt: skip
    runner = Runner(PIPELINE, deps, budget, "bench")
    lat, degraded, cpu0 = [], 0, time.process_time()
    for i, user in enumerate(users):
        start = time.perf_counter()
        req = await runner.run(RequestState(f"bench-{i}", user, 20, time.time(), VariantSpec()))
        lat.append((time.perf_counter() - start) * 1000.0)
        degraded += bool(req.run.degraded)
    cpu_ms = (time.process_time() - cpu0) * 1000.0 / max(len(users), 1)
    await redis.aclose()
    return {**_stats(np.array(lat[len(lat) // 10 :])), "degraded": degraded,
            "cpu_ms_per_request": round(cpu_ms, 2)}  # fmt: skip


def _max_rate(url: str, users: list[str], rates: list[float], step_s: float) -> dict[str, Any]:
    """Step the rate up; the highest one with p99 <= target, no errors, <= 1% degraded."""
    steps, best = [], 0.0
    for rate in rates:
        res = asyncio.run(open_loop(url, _paths(users), rate, step_s))
        summary = _load_summary(res)
        steps.append(summary)
        # A degraded answer is a fallback, not the service working: it does not count as kept up.
        failed = summary["errors"] or summary["degraded_share"] > MAX_DEGRADED_SHARE
        if summary["p99_ms"] > P99_TARGET_MS or failed:
            break
        best = rate
    return {"max_rate_rps": best, "step_s": step_s, "steps": steps}


def _timed(fn: Any, n: int) -> dict[str, float]:
    lat = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        lat.append((time.perf_counter() - start) * 1000.0)
    return _stats(np.array(lat[n // 10 :]))


async def _timed_async(fn: Any, n: int) -> dict[str, float]:
    lat = []
    for i in range(n):
        start = time.perf_counter()
        await fn(i)
        lat.append((time.perf_counter() - start) * 1000.0)
    return _stats(np.array(lat[n // 10 :]))


async def stage_timings(env: dict[str, str], n: int = 500) -> dict[str, Any]:
    """ANN top-500, the ranker on 500 candidates and the 500-item feature read, in isolation,
    and the stage wire: encoding and checking a 500-item frame."""
    from services.candidate_generation.ease_score import EaseScore
    from services.candidate_generation.sources.base import SourceCall
    from services.gateway.request_state import full_history, request_context
    from services.ranking.item_table import item_table
    from services.ranking.scorer import MultiTaskRanker, RankerKnobs
    from services.ranking.stage import RankingStage
    from shared.features import encode_ranker, encode_user_tower
    from shared.frame import Frame
    from shared.models.bundle import PARTS
    from shared.models.locators import locate_models
    from shared.models.model_set import ModelSet
    from shared.models.onnx_model import create_session
    from shared.online_store.columns import STORE_COLUMN_NAMES, hydrate
    from shared.online_store.reader import OnlineStore
    from shared.pipeline.stage import StageCodec
    from shared.platform.redis_client import create_async_redis

    models = ModelSet("bench", locate_models(env["CASCADE_MODELS_DIR"], {}, "", "", PARTS),
                      PARTS, poll_s=0)  # fmt: skip
    if not models.load_now():
        raise RuntimeError(models.error)
    bundle = models.get()
    assert bundle.user_tower and bundle.index and bundle.ranker
    redis = create_async_redis(env["CASCADE_REDIS_URL"])
    store, cached, now = OnlineStore(redis), OnlineStore(redis, cache_ttl_s=1.0), time.time()
    users = [await store.get_user(str(u), now) for u in range(1, 201)]
    tower, index, onnx_ranker = bundle.user_tower, bundle.index, bundle.ranker
    cfg = onnx_ranker.config
    emb = tower.run(encode_user_tower([u.features for u in users], now, cfg))["user_embedding"]
    rng = np.random.default_rng(1)
    samples = [index.ids(rng.choice(len(index), min(500, len(index)), replace=False))
               for _ in range(20)]  # fmt: skip
    batch = await store.get_items(samples[0], now)
    frame = Frame(list(batch.item_ids), hydrate(batch, users[0], STORE_COLUMN_NAMES))
    full = dataclasses.replace(users[0].features, history=tuple(full_history(users[0])))
    call = SourceCall(request_context(users[0], now), full, bundle, store)  # the ease column
    frame = EaseScore().annotate(frame, call)
    ranker = MultiTaskRanker()
    rfeeds = encode_ranker(users[0].features, item_table(frame, cfg), now, cfg)
    fp32_session = create_session(Path(env["CASCADE_MODELS_DIR"]) / "ranker" / "ranker.onnx")
    user_feeds = [encode_user_tower([u.features], now, cfg) for u in users]
    codec = StageCodec(RankingStage(None))
    ctx = request_context(users[0], now)
    body = codec.encode_request(ctx, frame)
    out: dict[str, Any] = {
        "user tower (1 user)": _timed(lambda i: tower.run(user_feeds[i % 200]), n),
        "ANN top-500": {
            **_timed(lambda i: index.search(emb[i % 200 : i % 200 + 1], 500), n),
            "target": "<= 2 ms",
            "hnsw": {k: index.meta.get(k) for k in ("M", "ef_construction", "ef_search")},
            "items": len(index),
        },
        f"ranker on 500 (ONNX only, {onnx_ranker.file})": _timed(
            lambda i: onnx_ranker.run(rfeeds), n
        ),
        # The float32 file of the same bundle, timed in the same run: what int8 weights buy.
        "ranker on 500 (ONNX only, ranker.onnx)": _timed(
            lambda i: fp32_session.run(None, rfeeds), n
        ),
        "ranker on 500 (encode + ONNX + blend)": {
            **_timed(
                lambda i: ranker.score(bundle, users[i % 200].features, frame, now, RankerKnobs()),
                n,
            ),  # fmt: skip
            "target": "<= 3 ms",
        },
        "features for 500 items (Redis every read)": {
            **(await _timed_async(lambda i: store.get_items(samples[i % 20], now), n)),
            "target": "<= 3 ms",
        },
        "features for 500 items (1 s read cache)": await _timed_async(
            lambda i: cached.get_items(samples[i % 20], now), n
        ),
        "frame columns from the batch (500)": _timed(
            lambda i: hydrate(batch, users[0], STORE_COLUMN_NAMES), n
        ),
        "ranking request: encode 500 items (MessagePack)": _timed(
            lambda i: codec.encode_request(ctx, frame), n
        ),
        "ranking request: decode + check 500 items": _timed(
            lambda i: codec.decode_request(body, True), n
        ),
        "user state (OnlineStore.get_user)": await _timed_async(
            lambda i: store.get_user(str(i % 943 + 1), now), n
        ),
    }
    await redis.aclose()
    return out


def ann_1m_recall(
    n: int = 1_000_000, dim: int = 64, m: int = 32, ef_construction: int = 200,
    efs: tuple[int, ...] = (200, 400, 450, 800), n_queries: int = 200, seed: int = 0,
    per_cluster: int = 20,
) -> dict[str, Any]:  # fmt: skip
    """hnswlib on synthetic clustered unit vectors: recall@100 vs exact search, query time.

    The catalog is a Gaussian mixture with ``per_cluster`` items per centre on average and
    noise of 0.6 per dimension (centres N(0, 1)): a query's 100 true neighbours then span
    several clusters, as in learned embeddings. Fewer, bigger clusters make the search easy
    (2,000 centres gave recall 0.998 at ef=100); isotropic noise with no structure at all is
    the worst case (0.81 at ef=400 on 100k items) and unlike any trained embedding.
    """
    import hnswlib

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(n // per_cluster, 1), dim)).astype(np.float32)

    def sample(count: int) -> np.ndarray:
        x = centers[rng.integers(0, len(centers), count)] + 0.6 * rng.normal(size=(count, dim))
        x = x.astype(np.float32)
        return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)

    data, queries = sample(n), sample(n_queries)
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, ef_construction=ef_construction, M=m, random_seed=seed)
    start = time.perf_counter()
    index.add_items(data, np.arange(n), num_threads=2)
    build_s = time.perf_counter() - start
    exact = np.empty((n_queries, 100), dtype=np.int64)
    for s in range(0, n_queries, 50):
        sims = queries[s : s + 50] @ data.T
        exact[s : s + 50] = np.argpartition(-sims, 100, axis=1)[:, :100]
    rows = []
    index.set_num_threads(1)
    for ef in efs:
        index.set_ef(max(ef, 100))
        labels = np.empty((n_queries, 100), dtype=np.int64)

        def query(i: int, labels: np.ndarray = labels) -> None:
            labels[i] = index.knn_query(queries[i : i + 1], k=100)[0][0]

        timing = _timed(query, n_queries)
        for i in range(n_queries // 10):  # _timed skipped the first tenth's timings, not labels
            query(i)
        recall = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(labels, exact, strict=True)])
        rows.append({"ef": ef, "recall_at_100": round(float(recall), 4), **timing})
    return {"n": n, "dim": dim, "M": m, "ef_construction": ef_construction,
            "clusters": len(centers), "build_s": round(build_s, 1), "ef": rows}  # fmt: skip


def _measure_stack(
    env: dict[str, str], infra_pids: dict[str, int], log_dir: Path, users: list[str],
    duration_s: float, rate: float, search: bool, calls: int,
) -> dict[str, Any]:  # fmt: skip
    """Everything measured through the gateways (real processes, real HTTP)."""
    result: dict[str, Any] = {}
    more = {LOCAL_FILTERING: {"CASCADE_GATEWAY_FILTERING_IN_GATEWAY": "true"}}
    with serving_stack(env, log_dir, in_process_gateway=True, more_gateways=more) as procs:
        urls = {name: procs[name].spec.url for name in ("gateway", "gateway_in_process",
                                                        LOCAL_FILTERING)}  # fmt: skip
        for url in urls.values():
            asyncio.run(sequential(url, _paths(users[:50])))  # page in code paths and caches
        lat = asyncio.run(_interleaved(urls, users[:calls]))
        result["sequential"] = {name: _stats(v[len(v) // 10 :]) for name, v in lat.items()}
        ms, ip = (result["sequential"][n]["p50_ms"] for n in ("gateway", "gateway_in_process"))
        result["p50_ratio_microservice_vs_in_process"] = round(ms / ip, 2)
        local = result["sequential"][LOCAL_FILTERING]["p50_ms"]
        result["p50_ratio_local_filtering_vs_in_process"] = round(local / ip, 2)
        pids = {name: p.pid for name, p in procs.items()}
        pids.update(infra_pids)
        cpu_rate = _env_float("CASCADE_BENCH_CPU_RATE", 50.0)
        cpu_users = users[: max(calls, int(cpu_rate * 20))]
        result["cpu_rate_rps"] = cpu_rate
        rounds = int(_env_float("CASCADE_BENCH_CPU_ROUNDS", 3))
        result.update(_cpu_rounds(pids, urls, cpu_users, cpu_rate, rounds))
        result["load"] = _load_summary(
            asyncio.run(open_loop(urls["gateway"], _paths(users), rate, duration_s))
        )
        if search:
            rates = [25.0, 50.0, 75.0, 100.0, 125.0, 150.0, 200.0, 250.0, 300.0]
            result["max_rate"] = _max_rate(urls["gateway"], users, rates, min(duration_s, 15.0))
        # A stage that died mid-run makes every answer a fast fallback: say so next to the figures.
        result["exited_during_run"] = sorted(n for n, p in procs.items() if not p.alive())
    return result


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def run(
    duration_s: float | None = None,
    rate: float | None = None,
    models_dir: str | Path | None = None,
    search: bool = True,
    ann_1m: bool | None = None,
    calls: int = 300,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Run every measurement; returns the figures (also printed as tables).

    Under ``make bench`` (no arguments) the environment may shorten it:
    CASCADE_BENCH_SERVING_DURATION_S (60), CASCADE_BENCH_SERVING_RATE (200),
    CASCADE_BENCH_ANN_1M (1; 0 skips the minutes-long 1M-item index build).
    """
    duration_s = duration_s or _env_float("CASCADE_BENCH_SERVING_DURATION_S", 60.0)
    rate = rate or _env_float("CASCADE_BENCH_SERVING_RATE", 200.0)
    if ann_1m is None:
        ann_1m = os.environ.get("CASCADE_BENCH_ANN_1M", "1") != "0"
    users = _users(max(int(rate * duration_s), 2000))
    data = Path(data_dir or REPO / "data") / "ml-100k"
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
            "speed_at_start": reference_speed(),
        }
    }
    # Kept after the run (git-ignored): when a figure surprises, the services' logs say why.
    log_dir = REPO / ".run" / "bench" / "serving"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    result["log_dir"] = str(log_dir)
    with _platform(log_dir, models_dir, data) as (env, infra_pids):
        result.update(
            _measure_stack(env, infra_pids, log_dir, users, duration_s, rate, search, calls)
        )
        result["in_process_library_call"] = asyncio.run(_in_process_library(env, users[:calls]))
        result["stages"] = asyncio.run(stage_timings(env))
    if ann_1m:
        result["ann_1m"] = ann_1m_recall()
    result["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    result["machine"]["speed_at_end"] = reference_speed()  # the host's speed moves too
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    out = sys.stdout.write
    out(f"\nmachine: {r['machine']}\n")
    out("\nGET /v1/recommendations (k=20)                  p50 ms   p99 ms  errors  degraded\n")
    load = r["load"]
    out(f"{'open loop @ ' + format(load['rate_rps'], '.0f') + ' rps':<45} {load['p50_ms']:>8.2f} "
        f"{load['p99_ms']:>8.2f} {load['errors']:>7} {load['degraded_share']:>9.2%}\n")  # fmt: skip
    if load["degraded_reasons"]:
        out(f"  degraded reasons (requests): {load['degraded_reasons']}\n")
    for name, s in r["sequential"].items():
        out(f"{name + ', one at a time':<45} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}\n")
    lib = r["in_process_library_call"]
    out(f"{'in-process pipeline, no HTTP':<45} {lib['p50_ms']:>8.2f} {lib['p99_ms']:>8.2f}\n")
    out(
        f"p50 ratio microservice / in-process gateway: {r['p50_ratio_microservice_vs_in_process']}"
        f" (filtering in the gateway: {r['p50_ratio_local_filtering_vs_in_process']})\n"
    )
    out(f"CPU per request at {r['cpu_rate_rps']:.0f} rps (every process, /proc):\n")
    for key in ("cpu_microservice", "cpu_local_filtering", "cpu_in_process"):
        c = r[key]
        out(f"  {key}: {c['cpu_ms_total']} ms, median of rounds {c['rounds_cpu_ms_total']}\n"
            f"    {c['cpu_ms_per_request']} (p99 {c['p99_ms']} ms, "
            f"degraded {c['degraded_share']:.1%}; load generator "
            f"{c['load_generator_cpu_ms_per_request']} ms)\n")  # fmt: skip
    out(f"  in-process pipeline without HTTP: {lib['cpu_ms_per_request']} ms (this process)\n")
    if "max_rate" in r:
        out(f"highest rate with p99 <= {P99_TARGET_MS:.0f} ms, no errors, "
            f"<= {MAX_DEGRADED_SHARE:.0%} degraded: "
            f"{r['max_rate']['max_rate_rps']} rps\n")  # fmt: skip
        for s in r["max_rate"]["steps"]:
            out(f"  {s['rate_rps']:>6.0f} rps: p50 {s['p50_ms']:.2f}  p99 {s['p99_ms']:.2f}  "
                f"errors {s['errors']}  degraded {s['degraded_share']:.1%}  "
                f"achieved {s['achieved_rps']}  {s['degraded_reasons'] or ''}\n")  # fmt: skip
    out("\nstage                                          p50 ms   p99 ms   target\n")
    for name, s in r["stages"].items():
        out(f"{name:<44} {s['p50_ms']:>8.3f} {s['p99_ms']:>8.3f}   {s.get('target', '')}\n")
    if "ann_1m" in r:
        a = r["ann_1m"]
        out(f"\nANN 1M x {a['dim']}: build {a['build_s']:.0f} s (M={a['M']}, ef_construction="
            f"{a['ef_construction']})\n")  # fmt: skip
        for row in a["ef"]:
            out(f"  ef={row['ef']:<5} recall@100 {row['recall_at_100']:.4f}  "
                f"p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms\n")  # fmt: skip
    if r.get("exited_during_run"):
        out(f"WARNING: exited during the run, figures are of fallbacks: {r['exited_during_run']}\n")
    out(f"\nservice logs: {r['log_dir']}\n")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load at --rate")
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second")
    ap.add_argument("--models", default=None, help="model bundle folder (default: train tiny)")
    ap.add_argument("--calls", type=int, default=300, help="sequential requests per gateway")
    ap.add_argument("--no-search", action="store_true", help="skip the max-rate search")
    ap.add_argument("--no-ann-1m", action="store_true", help="skip the 1M-item ANN recall run")
    ap.add_argument("--ann-1m-only", action="store_true", help="only the 1M-item ANN run")
    # M=32 with ef=450 was the cheapest setting measured at recall@100 >= 0.95 (docs/serving.md).
    ap.add_argument("--hnsw-m", type=int, default=32, help="1M-item run: hnswlib M")
    ap.add_argument("--ef-construction", type=int, default=200, help="1M-item run")
    ap.add_argument("--efs", type=int, nargs="+", default=[200, 400, 450, 800],
                    help="1M-item run: query ef values")  # fmt: skip
    args = ap.parse_args(argv)
    if args.ann_1m_only:
        load = round(os.getloadavg()[0], 2)
        efs = tuple(args.efs)
        ann = ann_1m_recall(m=args.hnsw_m, ef_construction=args.ef_construction, efs=efs)
        result = {"load_avg_1m_at_start": load, **ann}
        result["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
        sys.stdout.write(f"{orjson.dumps(result).decode()}\n")
        return 0
    run(args.duration, args.rate, args.models, not args.no_search, not args.no_ann_1m, args.calls)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
