"""ONNX export with a parity check, the hnswlib index, and the on-disk model bundle."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from shared.features.schema import FeatureSchema
from training.models.factored_ranker import FactoredRanker
from training.models.ranker import HEADS, RANKER_INPUTS, MMoERanker
from training.models.two_tower import ITEM_INPUTS, USER_INPUTS, TwoTower

log = logging.getLogger(__name__)
OPSET = 17
PARITY_TOL = 1e-4


class ExportError(RuntimeError):
    """An exported model disagrees with its PyTorch source or the schema."""


def export_onnx(
    module: nn.Module,
    feeds: dict[str, np.ndarray],
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    dynamic: dict[str, dict[int, str]],
    path: Path,
) -> None:
    """Trace ``module`` on ``feeds`` and write ONNX with named inputs/outputs."""
    args = tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in input_names)
    module.eval()
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=list(input_names),
        output_names=list(output_names),
        dynamic_axes=dynamic,
        opset_version=OPSET,
        dynamo=False,
    )


@torch.no_grad()
def parity(
    module: nn.Module, path: Path, feeds: dict[str, np.ndarray], input_names: tuple[str, ...]
) -> float:
    """Max abs difference between onnxruntime and PyTorch outputs on ``feeds``."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: feeds[n] for n in input_names})
    ref = module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in input_names))
    ref_list = list(ref) if isinstance(ref, tuple) else [ref]
    return max(float(np.max(np.abs(g - r.numpy()))) for g, r in zip(got, ref_list, strict=True))


def export_two_tower(
    model: TwoTower, user_feeds: dict[str, np.ndarray], item_feeds: dict[str, np.ndarray], out: Path
) -> dict[str, float]:
    """user_tower.onnx + item_tower.onnx in ``out``; returns their parity figures."""
    ut, it = out / "user_tower.onnx", out / "item_tower.onnx"
    export_onnx(
        model.user_tower,
        user_feeds,
        USER_INPUTS,
        ("user_embedding",),
        {n: {0: "B"} for n in (*USER_INPUTS, "user_embedding")},
        ut,
    )
    export_onnx(
        model.item_tower,
        item_feeds,
        ITEM_INPUTS,
        ("item_embedding",),
        {n: {0: "B"} for n in (*ITEM_INPUTS, "item_embedding")},
        it,
    )
    return {
        "parity_user_tower": parity(model.user_tower, ut, user_feeds, USER_INPUTS),
        "parity_item_tower": parity(model.item_tower, it, item_feeds, ITEM_INPUTS),
    }


def export_ranker(model: MMoERanker, feeds: dict[str, np.ndarray], out: Path) -> dict[str, float]:
    """ranker.onnx (user inputs batch U ∈ {1, N}, item inputs batch N), exported from the
    model's serving form (``FactoredRanker``: same function, a third of the nodes); returns
    its parity with the trained module itself."""
    path = out / "ranker.onnx"
    dyn = {n: {0: "U"} for n in USER_INPUTS}
    dyn.update({n: {0: "N"} for n in (*RANKER_INPUTS[len(USER_INPUTS) :], *HEADS, "score")})
    export_onnx(FactoredRanker(model), feeds, RANKER_INPUTS, (*HEADS, "score"), dyn, path)
    return {"parity_ranker": parity(model, path, feeds, RANKER_INPUTS)}


INT8_MIN_TOP10_OVERLAP = 0.9  # below this the int8 ranker is not shipped (serving uses fp32)
# ... nor when it is not this much faster than float32 on the same batches. On the factored
# graph the two measured alike (500 candidates, one thread: 1.51 vs 1.54 ms CPU median), and
# an int8 copy that buys no time only costs score precision.
INT8_MIN_SPEEDUP = 1.1


def quantize_ranker(out: Path, batches: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """``ranker_int8.onnx`` beside ``ranker.onnx``: int8 weights (onnxruntime dynamic
    quantization of Gemm/MatMul), kept only when its top-10 agrees with float32's on
    ``batches`` (one user × many candidates each) and it runs at least ``INT8_MIN_SPEEDUP``
    times faster on them. Returns the agreement and speed figures."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not batches:
        raise ValueError("no batch to compare the int8 ranker with float32 on")
    fp32, int8 = out / "ranker.onnx", out / "ranker_int8.onnx"
    cpu = ["CPUExecutionProvider"]
    logging.disable(logging.INFO)  # the quantizer logs a line per tensor on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            untied = Path(tmp) / "ranker_untied.onnx"
            _untie_gemm_weights(fp32, untied)
            quantize_dynamic(
                untied, int8, weight_type=QuantType.QInt8, op_types_to_quantize=["Gemm", "MatMul"]
            )
        sessions = [ort.InferenceSession(str(p), providers=cpu) for p in (fp32, int8)]
    except Exception as exc:  # an optional speed-up: float32 serves if it cannot be built
        int8.unlink(missing_ok=True)
        log.warning("int8 ranker not built", extra={"error": f"{type(exc).__name__}: {exc}"})
        return {"ranker_int8_shipped": 0.0}
    finally:
        logging.disable(logging.NOTSET)
    overlaps, diffs = [], []
    for feeds in batches:
        ref, got = (s.run(["score"], feeds)[0].reshape(-1) for s in sessions)
        k = min(10, len(ref))
        top_ref, top_got = np.argsort(-ref)[:k], np.argsort(-got)[:k]
        overlaps.append(len(set(top_ref.tolist()) & set(top_got.tolist())) / k)
        diffs.append(float(np.max(np.abs(ref - got))))
    overlap = float(np.mean(overlaps))
    fp32_ms, int8_ms = _cpu_ms_per_run(sessions, batches)
    shipped = overlap >= INT8_MIN_TOP10_OVERLAP and fp32_ms >= INT8_MIN_SPEEDUP * int8_ms
    if not shipped:
        int8.unlink()
        figures = {"top10_overlap": overlap, "fp32_ms": fp32_ms, "int8_ms": int8_ms}
        log.info("int8 ranker not shipped", extra=figures)
    return {
        "ranker_int8_top10_overlap": round(overlap, 4),
        "ranker_int8_max_abs_score_diff": round(max(diffs), 5),
        "ranker_fp32_cpu_ms": round(fp32_ms, 4),
        "ranker_int8_cpu_ms": round(int8_ms, 4),
        "ranker_int8_shipped": float(shipped),
    }


def _cpu_ms_per_run(
    sessions: list[ort.InferenceSession], batches: list[dict[str, np.ndarray]], rounds: int = 7
) -> tuple[float, float]:
    """Median CPU ms per run of each session over ``batches``, the sessions interleaved
    round by round so both see the same machine."""
    per: list[list[float]] = [[] for _ in sessions]
    for _ in range(rounds):
        for times, sess in zip(per, sessions, strict=True):
            start = time.thread_time()
            for feeds in batches:
                sess.run(["score"], feeds)
            times.append((time.thread_time() - start) * 1000.0 / len(batches))
    fp32, int8 = (float(np.median(t)) for t in per)
    return fp32, int8


def _untie_gemm_weights(src: Path, dst: Path) -> None:
    """Copy of ``src`` where every Gemm owns its weight tensor.

    The exporter stores identical tensors once: a weight equal to another reaches its Gemm
    through an Identity, or two Gemms read one initializer. onnxruntime's quantizer rewrites
    each Gemm into a MatMul by transposing its weight *in place*, assuming nobody else reads it;
    a tied weight is then transposed twice and the int8 model fails to load.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    tensors = {t.name: t for t in graph.initializer}
    alias = {
        n.output[0]: n.input[0]
        for n in graph.node
        if n.op_type == "Identity" and n.input[0] in tensors
    }
    readers: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            readers[alias.get(name, name)] = readers.get(alias.get(name, name), 0) + 1
    for n in graph.node:
        if n.op_type != "Gemm" or len(n.input) < 2:
            continue
        source = alias.get(n.input[1], n.input[1])
        if source in tensors and (n.input[1] in alias or readers[source] > 1):
            own = numpy_helper.from_array(numpy_helper.to_array(tensors[source]), f"{n.name}/B")
            graph.initializer.append(own)
            n.input[1] = own.name
    onnx.save(model, str(dst))


def build_hnsw(
    emb: np.ndarray, m: int, ef_construction: int, ef_search: int, path: Path, seed: int
) -> dict[str, Any]:
    """Inner-product hnswlib index over L2-normalised rows (label = row); returns index_meta."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=emb.shape[1])
    index.init_index(max_elements=len(emb), ef_construction=ef_construction, M=m, random_seed=seed)
    index.add_items(emb, np.arange(len(emb)), num_threads=1)  # 1 thread: deterministic build
    index.set_ef(ef_search)
    index.save_index(str(path))
    return {
        "library": "hnswlib",
        "space": "ip",
        "dim": int(emb.shape[1]),
        "n_items": int(len(emb)),
        "M": m,
        "ef_construction": ef_construction,
        "ef_search": ef_search,
        "label": "row index into item_ids.json / item_embeddings.npy",
        "distance": "1 - inner product (= 1 - cosine: rows are L2-normalised)",
    }


def ann_recall(path: Path, emb: np.ndarray, queries: np.ndarray, k: int, ef: int) -> float:
    """Recall of the saved index against exact inner-product search."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=emb.shape[1])
    index.load_index(str(path))
    index.set_ef(max(ef, k))
    labels, _ = index.knn_query(queries, k=k)
    exact = np.argsort(-(queries @ emb.T), axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(labels, exact, strict=True)]))


@dataclass
class Bundle:
    """Where each artifact of one training run lives before it is published."""

    root: Path

    @property
    def user_tower(self) -> Path:
        return self.root / "user_tower"

    @property
    def item_index(self) -> Path:
        return self.root / "item_index"

    @property
    def ranker(self) -> Path:
        return self.root / "ranker"

    def parts(self) -> dict[str, Path]:
        """Registered model name suffix → folder."""
        return {"user-tower": self.user_tower, "item-index": self.item_index, "ranker": self.ranker}


def new_bundle(parent: Path) -> Bundle:
    """An empty bundle in a temporary folder next to ``parent`` (same filesystem for rename)."""
    parent.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{parent.name}.tmp-", dir=parent.parent))
    b = Bundle(tmp)
    for p in b.parts().values():
        p.mkdir()
    return b


def finish_bundle(b: Bundle, schema: FeatureSchema, manifest: dict[str, Any]) -> None:
    """Write schema and manifest into the bundle root and each part."""
    manifest = {**manifest, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for folder in (b.root, *b.parts().values()):
        schema.save(folder / "feature_schema.json")
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def publish_bundle(b: Bundle, out: Path) -> Path:
    """Replace ``out`` with the finished bundle (rename: readers never see half a bundle)."""
    old = out.with_name(f".{out.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    b.root.rename(out)
    if old.exists():
        shutil.rmtree(old)
    return out
