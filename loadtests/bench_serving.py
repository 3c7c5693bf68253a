"""Serving benchmark: GET /v1/recommendations end to end, the in-process baseline, stage timings.

Starts Redis, the Kafka-protocol broker, the four stage services and the gateway as local
processes (MovieLens catalog bootstrapped into Redis; models from ``--models`` or trained with
``python -m training.pipeline --tiny`` into a temporary folder), then measures:

- open-loop load at ``--rate`` requests/s for ``--duration`` s (k=20 from up to 500 candidates):
  p50/p99 (from the scheduled send time, so queueing counts), errors, degraded share;
- the highest rate whose p99 stays <= 50 ms with no errors (short steps, ``--no-search`` skips);
- the microservice path's p50 against the in-process pipeline's p50 (same models, same Redis,
  one request at a time for both, measured in the same run);
- per stage: ANN top-500, ranker on 500 candidates (encode + ONNX), features for 500 items;
- with ``--ann-1m``: a synthetic 1M x 64 clustered catalog, recall@100 against exact search and
  query time for a few hnswlib ef values (building the index takes minutes).

Prints tables and returns a dict; never asserts timings.

    python -m loadtests.bench_serving [--duration 60] [--rate 200] [--models DIR] [--ann-1m]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: see services/*/__main__.py

import argparse  # noqa: E402
import asyncio  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import ExitStack, contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from deploy.local import infra  # noqa: E402
from deploy.local.processes import free_port  # noqa: E402
from tests.utils.servers import running  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "ml-100k"
P99_TARGET_MS = 50.0


# ---- a lean HTTP/1.1 load generator (keep-alive; cheap enough not to steal the services' CPU)


@dataclass
class LoadResult:
    """Latencies (ms, from the scheduled send time) and counts of one load run."""

    rate: float
    latencies_ms: np.ndarray
    errors: int
    degraded: int
    n: int
    achieved_rps: float
    error_samples: list[str] = field(default_factory=list)


class _Conn:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, host: str, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)


class _Pool:
    """Connections to one host:port, opened on demand and reused."""

    def __init__(self, url: str) -> None:
        hostport = url.split("://", 1)[1]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.idle: list[_Conn] = []

    async def get(self, path: str) -> tuple[int, bytes]:
        conn = (
            self.idle.pop()
            if self.idle
            else _Conn(*await asyncio.open_connection(self.host, self.port))
        )
        try:
            result = await conn.get(self.host, path)
        except BaseException:
            conn.writer.close()
            raise
        self.idle.append(conn)
        return result

    def close(self) -> None:
        for conn in self.idle:
            conn.writer.close()


async def _one(pool: _Pool, path: str, t0: float, res: LoadResult, lat: list[float]) -> None:
    try:
        status, body = await asyncio.wait_for(pool.get(path), 10.0)
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
        res.errors += 1
        res.error_samples.append(repr(exc)[:200])
        return
    lat.append((time.perf_counter() - t0) * 1000.0)
    if status != 200:
        res.errors += 1
        res.error_samples.append(f"{status}: {body[:200]!r}")
    elif b'"degraded":true' in body:
        res.degraded += 1


async def open_loop(url: str, paths: list[str], rate: float, duration_s: float) -> LoadResult:
    """Send at a fixed rate whatever the answers' speed (no coordinated omission)."""
    pool, lat = _Pool(url), []
    n = int(rate * duration_s)
    res = LoadResult(rate, np.zeros(0), 0, 0, n, 0.0)
    start = time.perf_counter()
    tasks = []
    for i in range(n):
        t = start + i / rate
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(pool, paths[i % len(paths)], t, res, lat)))
    await asyncio.gather(*tasks)
    res.achieved_rps = n / (time.perf_counter() - start)
    res.latencies_ms = np.array(lat)
    pool.close()
    return res


async def sequential(url: str, paths: list[str]) -> LoadResult:
    """One request at a time (the per-request cost without queueing)."""
    pool, lat = _Pool(url), []
    res = LoadResult(0.0, np.zeros(0), 0, 0, len(paths), 0.0)
    start = time.perf_counter()
    for path in paths:
        await _one(pool, path, time.perf_counter(), res, lat)
    res.achieved_rps = len(paths) / (time.perf_counter() - start)
    res.latencies_ms = np.array(lat)
    pool.close()
    return res


# ---- the benchmark


def _users(n: int, seed: int = 0) -> list[str]:
    """MovieLens user ids with 10% never-seen ids (the cold-start path)."""
    rng = np.random.default_rng(seed)
    known = rng.integers(1, 944, n)
    return [f"new-{i}" if rng.random() < 0.1 else str(u) for i, u in enumerate(known)]


def _paths(users: list[str], k: int = 20) -> list[str]:
    return [f"/v1/recommendations?user_id={u}&k={k}" for u in users]


@contextmanager
def _models(models_dir: str | None, log_dir: Path) -> Iterator[Path]:
    """The given bundle, ``models/`` when trained, else a tiny bundle trained now."""
    if models_dir:
        yield Path(models_dir)
        return
    if (REPO / "models" / "ranker" / "ranker.onnx").is_file():
        yield REPO / "models"
        return
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        out = Path(tmp) / "models"
        cmd = [
            sys.executable,
            "-m",
            "training.pipeline",
            "--tiny",
            "--no-register",
            "--out",
            str(out),
        ]
        with open(log_dir / "training.log", "wb") as log:
            subprocess.run(cmd, cwd=REPO, check=True, stdout=log, stderr=subprocess.STDOUT)
        yield out


def _bootstrap(redis_url: str) -> None:
    import redis

    from services.feature_store.bootstrap import bootstrap

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    bootstrap(client, str(DATA), train_only=False, batch=5000)
    client.close()


@contextmanager
def _platform(log_dir: Path, models_dir: str | None) -> Iterator[dict[str, str]]:
    """Redis (bootstrapped), the broker and the models; yields the platform env vars."""
    with ExitStack() as stack:
        rspec = infra.redis_spec(free_port(), log_dir / "redis")
        stack.enter_context(running(rspec, log_dir))
        kspec = infra.tansu_spec(free_port())
        stack.enter_context(running(kspec, log_dir))
        _bootstrap(rspec.url)
        models = stack.enter_context(_models(models_dir, log_dir))
        yield {
            "CASCADE_REDIS_URL": rspec.url,
            "CASCADE_KAFKA_BOOTSTRAP": kspec.url,
            "CASCADE_MODELS_DIR": str(models),
            "CASCADE_MODEL_POLL_S": "0",
            "OPENBLAS_NUM_THREADS": "1",
        }


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
    }


async def _in_process_baseline(env: dict[str, str], users: list[str]) -> dict[str, Any]:
    """The same stages, models and Redis, called in this process one request at a time."""
    from services.gateway.pipeline import ALL_MODEL_PARTS, build_in_process
    from shared.model_loading import LocalModels, ModelHolder
    from shared.online_store import OnlineStore
    from shared.pipeline.budget import load_budget
    from shared.pipeline.orchestrator import RecommendRequest
    from shared.redis_client import create_async_redis

    holder = ModelHolder(LocalModels(env["CASCADE_MODELS_DIR"]), ALL_MODEL_PARTS, poll_s=0)
    if not holder.load_now():
        raise RuntimeError(holder.error)
    redis = create_async_redis(env["CASCADE_REDIS_URL"])
    pipeline = build_in_process(OnlineStore(redis), holder, load_budget())
    lat, degraded = [], 0
    for i, user in enumerate(users):
        start = time.perf_counter()
        rec = await pipeline.recommend(RecommendRequest(user, 20, f"bench-{i}"))
        lat.append((time.perf_counter() - start) * 1000.0)
        degraded += bool(rec.degraded)
    await redis.aclose()
    return {**_stats(np.array(lat[len(lat) // 10 :])), "degraded": degraded}


def _max_rate(url: str, users: list[str], rates: list[float], step_s: float) -> dict[str, Any]:
    """Step the rate up; the highest one with p99 <= target and no errors."""
    steps, best = [], 0.0
    for rate in rates:
        res = asyncio.run(open_loop(url, _paths(users), rate, step_s))
        summary = _load_summary(res)
        steps.append(summary)
        if summary["p99_ms"] > P99_TARGET_MS or summary["errors"]:
            break
        best = rate
    return {"max_rate_rps": best, "steps": steps}


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


async def stage_timings(env: dict[str, str], n: int = 500) -> dict[str, dict[str, Any]]:
    """ANN top-500, the ranker on 500 candidates and the 500-item feature read, in isolation."""
    from services.ranking.ranker import MultiTaskRanker
    from shared.features import encode_ranker, encode_user_tower
    from shared.model_loading import PARTS, LocalModels, ModelHolder
    from shared.online_store import OnlineStore
    from shared.pipeline.items import ItemColumns
    from shared.redis_client import create_async_redis

    holder = ModelHolder(LocalModels(env["CASCADE_MODELS_DIR"]), PARTS, poll_s=0)
    if not holder.load_now():
        raise RuntimeError(holder.error)
    bundle = holder.require()
    assert bundle.user_tower and bundle.index and bundle.ranker
    redis = create_async_redis(env["CASCADE_REDIS_URL"])
    store, now = OnlineStore(redis), time.time()
    users = [await store.get_user(str(u), now) for u in range(1, 201)]
    feeds = encode_user_tower([u.features for u in users], now, bundle.user_tower.config)
    emb = bundle.user_tower.run(feeds)["user_embedding"]
    index, cfg = bundle.index, bundle.ranker.config
    ids = index.ids(np.arange(min(500, len(index))))
    batch = await store.get_items(ids, now)
    cols = ItemColumns.from_batch(batch)
    ranker = MultiTaskRanker(holder.require)
    rfeeds = encode_ranker(users[0].features, cols.to_table(cfg), now, cfg)
    out = {
        "user tower (1 user)": _timed(
            lambda i: bundle.user_tower.run(  # type: ignore[union-attr]
                encode_user_tower([users[i % 200].features], now, cfg)
            ),
            n,
        ),  # fmt: skip
        "ANN top-500": {
            **_timed(lambda i: index.search(emb[i % 200 : i % 200 + 1], 500), n),
            "target": "<= 2 ms",
        },  # fmt: skip
        "ranker on 500 (ONNX only)": _timed(lambda i: bundle.ranker.run(rfeeds), n),  # type: ignore[union-attr]
        "ranker on 500 (columns+encode+ONNX)": {
            **_timed(lambda i: ranker.score(users[i % 200].features, cols, now), n),
            "target": "<= 3 ms",
        },  # fmt: skip
        "features for 500 items (OnlineStore)": {
            **(await _timed_async(lambda i: store.get_items(ids, now), n)),
            "target": "<= 3 ms",
        },
        "ItemColumns.from_batch (500)": _timed(lambda i: ItemColumns.from_batch(batch), n),
        "user state (OnlineStore.get_user)": await _timed_async(
            lambda i: store.get_user(str(i % 943 + 1), now), n
        ),  # fmt: skip
    }
    await redis.aclose()
    return out


def ann_1m_recall(
    n: int = 1_000_000, dim: int = 64, m: int = 16, ef_construction: int = 100,
    efs: tuple[int, ...] = (100, 200, 400), n_queries: int = 200, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """hnswlib on synthetic clustered unit vectors: recall@100 vs exact search, query time."""
    import hnswlib

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(2000, dim)).astype(np.float32)

    def sample(count: int) -> np.ndarray:
        x = centers[rng.integers(0, len(centers), count)] + 0.6 * rng.normal(size=(count, dim))
        x = x.astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

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
            "build_s": round(build_s, 1), "ef": rows}  # fmt: skip


def run(
    duration_s: float = 60.0,
    rate: float = 200.0,
    models_dir: str | None = None,
    search: bool = True,
    ann_1m: bool = False,
    baseline_calls: int = 300,
) -> dict[str, Any]:
    """Run every measurement; returns the figures (also printed as tables)."""
    users = _users(max(int(rate * duration_s), 2000))
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        log_dir = Path(tmp)
        with _platform(log_dir, models_dir) as env:
            from tests.integration.serving_fixtures import serving_stack

            with serving_stack(env, log_dir) as procs:
                url = procs["gateway"].spec.url
                asyncio.run(sequential(url, _paths(users[:50])))  # warm connections and caches
                seq = asyncio.run(sequential(url, _paths(users[:baseline_calls])))
                result["microservice_sequential"] = _load_summary(seq)
                result["in_process_sequential"] = asyncio.run(
                    _in_process_baseline(env, users[:baseline_calls])
                )
                result["load"] = _load_summary(
                    asyncio.run(open_loop(url, _paths(users), rate, duration_s))
                )
                if search:
                    rates = [100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0]
                    result["max_rate"] = _max_rate(url, users, rates, min(duration_s, 15.0))
            result["stages"] = asyncio.run(stage_timings(env))
    ms, ip = result["microservice_sequential"]["p50_ms"], result["in_process_sequential"]["p50_ms"]
    result["p50_ratio_microservice_vs_in_process"] = round(ms / ip, 2) if ip else None
    if ann_1m:
        result["ann_1m"] = ann_1m_recall()
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    out = sys.stdout.write
    out("\nGET /v1/recommendations (k=20)                     p50 ms   p99 ms  errors  degraded\n")
    rows = [(f"open loop @ {r['load']['rate_rps']:.0f} rps", r["load"])]
    rows += [("microservice, one at a time", r["microservice_sequential"])]
    for label, s in rows:
        out(f"{label:<48} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {s.get('errors', 0):>7} "
            f"{s.get('degraded_share', 0):>9.2%}\n")  # fmt: skip
    ip = r["in_process_sequential"]
    out(f"{'in-process pipeline, one at a time':<48} {ip['p50_ms']:>8.2f} {ip['p99_ms']:>8.2f}\n")
    out(f"p50 ratio microservice / in-process: {r['p50_ratio_microservice_vs_in_process']}\n")
    if "max_rate" in r:
        out(
            f"highest rate with p99 <= {P99_TARGET_MS:.0f} ms: "
            f"{r['max_rate']['max_rate_rps']} rps\n"
        )
        for s in r["max_rate"]["steps"]:
            out(f"  {s['rate_rps']:>6.0f} rps: p50 {s['p50_ms']:.2f}  p99 {s['p99_ms']:.2f}  "
                f"errors {s['errors']}  achieved {s['achieved_rps']}\n")  # fmt: skip
    out("\nstage                                  p50 ms   p99 ms   target\n")
    for name, s in r["stages"].items():
        out(f"{name:<38} {s['p50_ms']:>8.3f} {s['p99_ms']:>8.3f}   {s.get('target', '')}\n")
    if "ann_1m" in r:
        a = r["ann_1m"]
        out(f"\nANN 1M x {a['dim']}: build {a['build_s']:.0f} s (M={a['M']}, ef_construction="
            f"{a['ef_construction']})\n")  # fmt: skip
        for row in a["ef"]:
            out(f"  ef={row['ef']:<5} recall@100 {row['recall_at_100']:.4f}  "
                f"p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms\n")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load at --rate")
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second")
    ap.add_argument("--models", default=None, help="model bundle folder (default: train tiny)")
    ap.add_argument("--no-search", action="store_true", help="skip the max-rate search")
    ap.add_argument("--ann-1m", action="store_true", help="also the 1M-item ANN recall run")
    args = ap.parse_args(argv)
    run(args.duration, args.rate, args.models, not args.no_search, args.ann_1m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
