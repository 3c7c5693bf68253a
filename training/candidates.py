"""Derived candidate model versions with a known behaviour, for rollout tests and the demo.

From a trained model folder (docs/training.md layout) ``derive`` writes a candidate that is the
same (A/A), worse, slower, refused by the schema check, or noisier than its source; ``register``
makes it a new version of its MLflow registered model without moving any alias, so a rollout
decides whether it ever serves. The derived folder keeps the layout, so serving loads it as it
loads any version; its ``manifest.json`` gets a new ``bundle_id`` and a ``derived`` record
(source bundle id, kind, parameters, changed files, sha256 of every artifact).

    python -m training.candidates derive --from models/ranker --kind worse --out /tmp/worse
    python -m training.candidates register --folder /tmp/worse --part ranker --tag demo=1
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shared.models.bundle import PARTS, RANKER_FILES, ranker_file
from shared.models.onnx_model import (
    ModelLoadError,
    create_session,
    load_schema,
    read_json,
    warmup_feeds,
)
from shared.models.registry import RegistryUnavailableError

log = logging.getLogger(__name__)

KIND_NOTES = {
    "same": "model files byte-identical to the source: an A/A candidate (new version, same scores)",
    "worse": "ranker: every head logit negated, so the least likely items come first (same inputs, "
    "outputs and ranker_meta); user tower: user embedding negated, so the ANN returns the least "
    "similar items; item index: unchanged files under the derived bundle id, the partner the "
    "negated user tower needs (serving pairs a user tower only with an index of its bundle id)",
    "slower": "ranker with a chain of MatMul+Tanh on item_dense whose sum, times 0, is added to "
    "every head logit: identical scores, extra real work (calibrated on the deriving machine)",
    "bad_schema": "ranker whose ONNX input is renamed while feature_schema.json stays the serving "
    "schema: serving's schema check refuses it, naming the input",
    "noisy": "ranker with seeded pseudo-random noise (uniform, std --noise, logit units) added to "
    "every head logit; the noise is a hash of the user and item id buckets, so it is the same on "
    "every call",
}
KINDS = tuple(KIND_NOTES)
KIND_PARTS = {
    "same": PARTS,
    "worse": PARTS,
    "slower": ("ranker",),
    "bad_schema": ("ranker",),
    "noisy": ("ranker",),
}
PART_MARKERS = {
    "user_tower": "user_tower.onnx",
    "item_index": "hnsw_index.bin",
    "ranker": "ranker.onnx",
}
CANDIDATE_EXPERIMENT = "cascade-candidates"
PREFIX = "cascade_candidate/"  # names of everything added to a graph (no clash with the exporter's)
CALIBRATION_BATCH = 500  # `--extra-ms` is per batch of this many candidates
DEAD_WORK_WIDTH = 256
TIMING_RUNS = 25


class CandidateError(ValueError):
    """A candidate cannot be derived or registered from what was given; the message says why."""


@dataclass(frozen=True)
class DeriveOptions:
    """Parameters of the kinds that have any (the others ignore them)."""

    extra_ms: float = 20.0  # slower: extra time per 500-candidate batch, on the deriving machine
    noise: float = 0.5  # noisy: standard deviation of the noise, in logit units
    seed: int = 0  # noisy: which noise; slower: the dead-work weights
    input_name: str = "item_dense"  # bad_schema: the ranker input renamed
    bundle_id: str | None = None  # default: "<source bundle id>-<kind>[-<params>]"


def part_of(folder: Path) -> str:
    """Which model part a folder holds (``ranker``, ``user_tower``, ``item_index``)."""
    found = [p for p, marker in PART_MARKERS.items() if (folder / marker).is_file()]
    if len(found) != 1 or not (folder / "manifest.json").is_file():
        raise CandidateError(
            f"{folder} is not a model part folder (needs manifest.json and one of "
            f"{sorted(PART_MARKERS.values())})"
        )
    return found[0]


def is_bundle_root(folder: Path) -> bool:
    """A folder like ``models/``: one sub-folder per part."""
    return all((folder / p / "manifest.json").is_file() for p in PARTS)


def derive(src: Path, kind: str, out: Path, options: DeriveOptions | None = None) -> dict[str, Any]:
    """Write the ``kind`` candidate of ``src`` (a part folder, or a whole bundle) to ``out``.

    A bundle root derives every part the kind applies to and copies the others unchanged
    (their bundle id too, so they stay the version production serves). ``out`` is replaced
    atomically. Returns the ``derived`` record written into the manifest.
    """
    opts = options or DeriveOptions()
    if kind not in KINDS:
        raise CandidateError(f"unknown kind {kind!r}; known: {list(KINDS)}")
    src, out = src.resolve(), out.resolve()
    if out == src or src in out.parents or out in src.parents:
        raise CandidateError(f"--out {out} must be outside the source {src} and its parents")
    if out.exists() and any(out.iterdir()) and "derived" not in read_json(out / "manifest.json"):
        # Replacing is for re-deriving; never delete a trained bundle by a typo.
        raise CandidateError(f"refusing to replace {out}: it is not a derived candidate")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        if is_bundle_root(src):
            record = _derive_root(src, kind, tmp, opts)
        else:
            record = _derive_part(src, part_of(src), kind, tmp, opts)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("derived %r candidate %s from %s into %s", kind, record["bundle_id"], src, out)
    return record


def _derive_root(src: Path, kind: str, dst: Path, opts: DeriveOptions) -> dict[str, Any]:
    """Every part of a bundle: derived where the kind applies, else copied as it is."""
    bundle_id = opts.bundle_id or _default_bundle_id(_bundle_id(src), kind, opts)
    parts: dict[str, str] = {}
    for part in PARTS:
        if part in KIND_PARTS[kind]:
            sub = dataclasses.replace(opts, bundle_id=bundle_id)  # the parts pair with each other
            _derive_part(src / part, part, kind, dst / part, sub)
            parts[part] = kind
        else:
            shutil.copytree(src / part, dst / part)
            parts[part] = "unchanged"
    if (src / "feature_schema.json").is_file():
        shutil.copy2(src / "feature_schema.json", dst / "feature_schema.json")
    record = _record(src, kind, bundle_id, {"parts": parts}, [], dst)
    _write_manifest(src, dst, record)
    return record


def _derive_part(src: Path, part: str, kind: str, dst: Path, opts: DeriveOptions) -> dict[str, Any]:
    """One part folder: copy every file, then rewrite the model files the kind changes."""
    if part not in KIND_PARTS[kind]:
        raise CandidateError(
            f"kind {kind!r} applies to {list(KIND_PARTS[kind])}, not to a {part} ({src})"
        )
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file():
            shutil.copy2(f, dst / f.name)  # byte-identical unless rewritten below
    bundle_id = opts.bundle_id or _default_bundle_id(_bundle_id(src), kind, opts)
    params, changed = _apply(src, part, kind, dst, opts)
    record = _record(src, kind, bundle_id, params, changed, dst)
    _write_manifest(src, dst, record)
    return record


def _apply(
    src: Path, part: str, kind: str, dst: Path, opts: DeriveOptions
) -> tuple[dict[str, Any], list[str]]:
    """Rewrite the model files of ``dst`` for ``kind``; (parameters, changed files)."""
    if kind == "same" or (kind == "worse" and part == "item_index"):
        return {}, []
    if kind == "worse" and part == "user_tower":
        _rewrite(src, dst, ["user_tower.onnx"], lambda m: negate_output(m, "user_embedding"))
        return {"user_embedding": "negated"}, ["user_tower.onnx"]
    files = [f for f in RANKER_FILES.values() if (src / f).is_file()]
    heads = _heads(src)
    if kind == "worse":
        _rewrite(src, dst, files, lambda m: invert_heads(m, heads))
        return {"heads": "logits negated"}, files
    if kind == "noisy":
        if not opts.noise > 0:
            raise CandidateError(f"--noise must be > 0, got {opts.noise}")
        _rewrite(src, dst, files, lambda m: add_head_noise(m, heads, opts.noise, opts.seed))
        return {"noise_std_logit": opts.noise, "seed": opts.seed}, files
    if kind == "bad_schema":
        new = f"{opts.input_name}_v0"
        _rewrite(src, dst, files, lambda m: rename_input(m, opts.input_name, new))
        return {"renamed_input": {opts.input_name: new}}, files
    return _slow_down(src, dst, files, heads, opts), files


def _rewrite(
    src: Path, dst: Path, files: Sequence[str], change: Callable[[onnx.ModelProto], None]
) -> None:
    for f in files:
        model = onnx.load(str(src / f))
        change(model)
        onnx.checker.check_model(model)
        onnx.save(model, str(dst / f))


def _heads(folder: Path) -> list[str]:
    """The task heads: ranker_meta.json's list, else every ONNX output but ``score``."""
    meta = read_json(folder / "ranker_meta.json")
    heads = meta.get("heads")
    if isinstance(heads, list) and heads and all(isinstance(h, str) for h in heads):
        return list(heads)
    model = onnx.load(str(folder / "ranker.onnx"), load_external_data=False)
    return [o.name for o in model.graph.output if o.name != "score"]


# ---- graph rewrites ---------------------------------------------------------------------------


def invert_heads(model: onnx.ModelProto, heads: Sequence[str]) -> None:
    """Negate each head's logit: p' = sigmoid(-x) = 1 - p, so every blend of the heads with
    positive weights (and the graph's own ``score``) ranks the candidates in reverse."""
    _rewrite_head_logits(model, heads, [], [], lambda x, y, _h: [_node("Neg", [x], [y])])


def add_head_noise(model: onnx.ModelProto, heads: Sequence[str], std: float, seed: int) -> None:
    """Add pseudo-random noise of standard deviation ``std`` to every head logit.

    The noise is an integer hash of the first user id bucket and both item id buckets (exact
    int64 arithmetic, so the same on every call, process and machine), mapped to a uniform
    value; the seed picks the hash constants. Onnxruntime's own random ops draw anew on every
    call, which would make one item's score change between requests.
    """
    rng = np.random.default_rng(seed)
    prime = 2_147_483_647  # 2**31 - 1: every product below stays under 2**63
    a, b, c, d, e, f, g = (int(v) for v in rng.integers(1, prime, 7))
    ints = {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g, "p": prime, "i0": 0, "i1": 1}
    inits = [numpy_helper.from_array(np.array(v, np.int64), PREFIX + k) for k, v in ints.items()]
    inits += [
        numpy_helper.from_array(np.array(v, np.float32), PREFIX + k)
        for k, v in {"pf": float(prime), "half": 0.5, "scale": std * 12**0.5}.items()
    ]

    def n(op: str, ins: Sequence[str], out: str, **kw: Any) -> onnx.NodeProto:
        return _node(op, [PREFIX + i for i in ins], [PREFIX + out], **kw)

    nodes = [
        _node("Gather", ["user_id_hash", PREFIX + "i0"], [PREFIX + "u"], axis=1),  # [U]
        _node("Gather", ["item_id_hash", PREFIX + "i0"], [PREFIX + "v"], axis=1),  # [N]
        _node("Gather", ["item_id_hash", PREFIX + "i1"], [PREFIX + "w"], axis=1),  # [N]
        n("Mul", ["u", "a"], "ua"),
        n("Mul", ["v", "b"], "vb"),
        n("Mul", ["w", "c"], "wc"),
        n("Add", ["ua", "vb"], "s"),
        n("Add", ["s", "wc"], "h0_"),
        n("Mod", ["h0_", "p"], "h0"),
    ]
    for r, (mul, add) in enumerate((("d", "e"), ("f", "g")), start=1):  # h = (h * m + k) mod p
        nodes += [
            n("Mul", [f"h{r - 1}", mul], f"h{r}m"),
            n("Add", [f"h{r}m", add], f"h{r}_"),
            n("Mod", [f"h{r}_", "p"], f"h{r}"),
        ]
    nodes += [
        n("Cast", ["h2"], "hf", to=TensorProto.FLOAT),
        n("Div", ["hf", "pf"], "unif"),
        n("Sub", ["unif", "half"], "centred"),
        n("Mul", ["centred", "scale"], "noise"),
    ]

    def per_head(x: str, y: str, head: str) -> list[onnx.NodeProto]:
        shape, noise = f"{PREFIX}{head}_shape", f"{PREFIX}{head}_noise"
        return [
            _node("Shape", [x], [shape]),  # the noise is [N]; the logit may be [N] or [N, 1]
            _node("Reshape", [PREFIX + "noise", shape], [noise]),
            _node("Add", [x, noise], [y]),
        ]

    _rewrite_head_logits(model, heads, nodes, inits, per_head)


def add_dead_work(
    model: onnx.ModelProto,
    heads: Sequence[str],
    layers: int,
    width: int,
    seed: int,
    source: str = "item_dense",
) -> None:
    """Make the ranker do ``layers`` [N, width] x [width, width] MatMuls more, same scores.

    The chain starts from a model input, so onnxruntime cannot constant-fold it; its sum is
    multiplied by 0 and added to every head logit, so it cannot be pruned as unused either
    (x * 0 = 0 is not an IEEE identity, and onnxruntime does not rewrite it). Orthogonal
    weights and Tanh keep every value finite: a NaN or inf times 0 would change the scores.
    """
    dim = _input_dim(model, source)
    nodes, inits, total = dead_work_chain(source, dim, layers, width, seed)
    zero = numpy_helper.from_array(np.array(0.0, np.float32), PREFIX + "zero")
    nodes.append(_node("Mul", [total, zero.name], [PREFIX + "nothing"]))  # a scalar 0
    inits.append(zero)

    def add(logit: str, new: str, _head: str) -> list[onnx.NodeProto]:
        return [_node("Add", [logit, PREFIX + "nothing"], [new])]

    _rewrite_head_logits(model, heads, nodes, inits, add)


def dead_work_chain(
    source: str, dim: int, layers: int, width: int, seed: int
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    """Nodes of Tanh(MatMul) x (1 + layers) from ``source`` [N, dim], summed to a scalar.

    Every layer after the first multiplies by the same orthogonal matrix: the work is the same
    as with a matrix per layer, the file grows by one (256 KB) instead of one per layer.
    """
    rng = np.random.default_rng(seed)
    w0 = (rng.standard_normal((dim, width)) / np.sqrt(dim)).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((width, width)))
    inits = [
        numpy_helper.from_array(w0, PREFIX + "w0"),
        numpy_helper.from_array(q.astype(np.float32), PREFIX + "q"),
    ]
    nodes = [
        _node("MatMul", [source, PREFIX + "w0"], [PREFIX + "z0"]),
        _node("Tanh", [PREFIX + "z0"], [PREFIX + "h0"]),
    ]
    for i in range(1, layers + 1):
        nodes.append(_node("MatMul", [f"{PREFIX}h{i - 1}", PREFIX + "q"], [f"{PREFIX}z{i}"]))
        nodes.append(_node("Tanh", [f"{PREFIX}z{i}"], [f"{PREFIX}h{i}"]))
    nodes.append(_node("ReduceSum", [f"{PREFIX}h{layers}"], [PREFIX + "total"], keepdims=0))
    return nodes, inits, PREFIX + "total"


def negate_output(model: onnx.ModelProto, name: str) -> None:
    """Replace output ``name`` by its negation (the graph's own readers keep the original)."""
    nodes = [copy.deepcopy(n) for n in model.graph.node]
    orig = f"{PREFIX}{name}_orig"
    if not any(name in n.output for n in nodes):
        raise CandidateError(f"no node produces {name!r}")
    for n in nodes:
        for seq in (n.input, n.output):
            for i, v in enumerate(seq):
                if v == name:
                    seq[i] = orig
    nodes.append(_node("Neg", [orig], [name]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def rename_input(model: onnx.ModelProto, old: str, new: str) -> None:
    """Rename graph input ``old`` to ``new`` everywhere it is read."""
    graph = model.graph
    names = [i.name for i in graph.input]
    if old not in names:
        raise CandidateError(f"the graph has no input {old!r}; inputs: {names}")
    for i in graph.input:
        if i.name == old:
            i.name = new
    for n in graph.node:
        for k, v in enumerate(n.input):
            if v == old:
                n.input[k] = new


def _rewrite_head_logits(
    model: onnx.ModelProto,
    heads: Sequence[str],
    first: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    per_head: Callable[[str, str, str], list[onnx.NodeProto]],
) -> None:
    """Insert ``per_head(logit, new_logit, head)`` before each head's Sigmoid, which then reads
    the new logit; ``first`` (reading graph inputs only) goes at the top of the graph."""
    graph = model.graph
    nodes = [copy.deepcopy(n) for n in graph.node]
    sigmoids = _head_sigmoids(nodes, heads)
    _check_score_follows(nodes, [o.name for o in graph.output], heads)
    out = list(first)
    for i, n in enumerate(nodes):
        if i in sigmoids:
            new = f"{PREFIX}{sigmoids[i]}_logit"
            out.extend(per_head(n.input[0], new, sigmoids[i]))
            n.input[0] = new
        out.append(n)
    del graph.node[:]
    graph.node.extend(out)
    graph.initializer.extend(inits)


def _head_sigmoids(nodes: Sequence[onnx.NodeProto], heads: Sequence[str]) -> dict[int, str]:
    """Index of the Sigmoid producing each head."""
    found: dict[int, str] = {}
    for head in heads:
        idx = [i for i, n in enumerate(nodes) if head in n.output]
        if not idx:
            raise CandidateError(f"no node produces head {head!r}")
        if nodes[idx[0]].op_type != "Sigmoid":
            raise CandidateError(
                f"head {head!r} comes from {nodes[idx[0]].op_type}, not a Sigmoid of a logit: "
                "this graph is not supported"
            )
        found[idx[0]] = head
    return found


def _check_score_follows(
    nodes: Sequence[onnx.NodeProto], outputs: Sequence[str], heads: Sequence[str]
) -> None:
    """Serving blends the heads, or reads ``score`` when no blend is shipped: both must move."""
    if "score" not in outputs:
        return
    producer = {o: n for n in nodes for o in n.output}
    seen, todo = set(), ["score"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in producer:
            todo.extend(producer[name].input)
    if not seen & set(heads):
        raise CandidateError("the graph's 'score' does not depend on its heads: not supported")


def _input_dim(model: onnx.ModelProto, name: str) -> int:
    for i in model.graph.input:
        if i.name == name:
            dims = i.type.tensor_type.shape.dim
            if len(dims) == 2 and dims[1].dim_value > 0:
                return int(dims[1].dim_value)
    raise CandidateError(f"the graph has no float input {name!r} of shape [N, d]")


def _node(op: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: Any) -> onnx.NodeProto:
    name = f"{PREFIX}{op}_{outputs[0].removeprefix(PREFIX)}"
    return helper.make_node(op, list(inputs), list(outputs), name=name, **attrs)


# ---- slower: calibration by timing ------------------------------------------------------------


def _slow_down(
    src: Path, dst: Path, files: Sequence[str], heads: Sequence[str], opts: DeriveOptions
) -> dict[str, Any]:
    """Add dead work sized to ``opts.extra_ms`` per 500 candidates, timed on this machine."""
    if not opts.extra_ms > 0:
        raise CandidateError(f"--extra-ms must be > 0, got {opts.extra_ms}")
    feeds = warmup_feeds(load_schema(src), "ranker", batch=CALIBRATION_BATCH)
    dim = _input_dim(onnx.load(str(src / "ranker.onnx"), load_external_data=False), "item_dense")
    per_layer = layer_ms(dim, DEAD_WORK_WIDTH)
    layers = max(1, round(opts.extra_ms / per_layer))
    served = ranker_file(src, "int8")  # the file serving loads by default
    measured: dict[str, dict[str, float]] = {}
    for attempt in range(2):
        slow = functools.partial(
            add_dead_work, heads=heads, layers=layers, width=DEAD_WORK_WIDTH, seed=opts.seed
        )
        _rewrite(src, dst, files, slow)
        measured = {f: _timed_pair(src / f, dst / f, feeds) for f in files}
        extra = measured[served]["extra_ms"]
        # One correction: the chain shares caches with the ranker, so alone it times differently.
        if attempt == 0 and extra > 0 and not 0.75 <= extra / opts.extra_ms <= 1.33:
            layers = max(1, round(layers * opts.extra_ms / extra))
            continue
        break
    if measured[served]["extra_ms"] < 0.25 * opts.extra_ms:
        raise CandidateError(
            f"the slowed ranker is only {measured[served]['extra_ms']:.2f} ms slower per "
            f"{CALIBRATION_BATCH} candidates (asked {opts.extra_ms} ms): was the work removed?"
        )
    return {
        "extra_ms_target": opts.extra_ms,
        "batch": CALIBRATION_BATCH,
        "layers": layers,
        "width": DEAD_WORK_WIDTH,
        "calibration_layer_ms": round(per_layer, 3),
        "measured": measured,
        "measured_on": _machine(),
    }


def layer_ms(dim: int, width: int, probe_layers: int = 8) -> float:
    """Milliseconds one dead-work layer costs on a 500-candidate batch, with serving's session
    options (one thread): a chain of ``probe_layers`` timed against a chain of none."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for layers in (0, probe_layers):
            nodes, inits, total = dead_work_chain("x", dim, layers, width, seed=0)
            x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", dim])
            y = helper.make_tensor_value_info(total, TensorProto.FLOAT, [])
            graph = helper.make_graph(nodes, "dead_work", [x], [y], inits)
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            model.ir_version = 8
            paths.append(Path(tmp) / f"chain{layers}.onnx")
            onnx.save(model, str(paths[-1]))
        feeds = {"x": np.zeros((CALIBRATION_BATCH, dim), np.float32)}
        t = _timed_pair(paths[0], paths[1], feeds)
    return max(t["extra_ms"] / probe_layers, 1e-3)


def _timed_pair(base: Path, other: Path, feeds: dict[str, np.ndarray]) -> dict[str, float]:
    """Median ms of ``base`` and ``other`` on ``feeds``, runs interleaved so that load from
    other processes on these shared cores hits both alike."""
    sessions = [create_session(base), create_session(other)]
    for s in sessions:
        for _ in range(3):  # the first runs allocate arenas and pick kernels
            s.run(None, feeds)
    times: list[list[float]] = [[], []]
    for _ in range(TIMING_RUNS):
        for s, t in zip(sessions, times, strict=True):
            t0 = time.perf_counter()
            s.run(None, feeds)
            t.append((time.perf_counter() - t0) * 1e3)
    base_ms, other_ms = statistics.median(times[0]), statistics.median(times[1])
    return {
        "base_ms": round(base_ms, 3),
        "ms": round(other_ms, 3),
        "extra_ms": round(other_ms - base_ms, 3),
    }


def _machine() -> str:
    return " ".join(
        x for x in (platform.machine(), platform.processor(), f"{os.cpu_count()} cores") if x
    )


# ---- manifest ---------------------------------------------------------------------------------


def _bundle_id(folder: Path) -> str:
    manifest = read_json(folder / "manifest.json")
    return str(manifest.get("bundle_id") or folder.name)


def _default_bundle_id(source: str, kind: str, opts: DeriveOptions) -> str:
    """Deterministic, so that a user tower and an item index derived with the same kind from
    one bundle get one bundle id, which serving needs to pair them."""
    suffix = {
        "noisy": f"-{opts.noise:g}-seed{opts.seed}",
        "slower": f"-{opts.extra_ms:g}ms",
        "bad_schema": f"-{opts.input_name}",
    }.get(kind, "")
    return f"{source}-{kind}{suffix}"


def _record(
    src: Path, kind: str, bundle_id: str, params: dict[str, Any], changed: list[str], dst: Path
) -> dict[str, Any]:
    return {
        "bundle_id": bundle_id,
        "from_bundle_id": _bundle_id(src),
        "from_path": str(src),
        "kind": kind,
        "note": KIND_NOTES[kind]
        + ". Metrics and export figures in this manifest are the source's: not re-evaluated.",
        "params": params,
        "changed": changed,
        "sha256": _digests(dst),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every file of a part folder but the manifest (sub-folders: of a root)."""
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != "manifest.json":
            out[str(f.relative_to(folder))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _write_manifest(src: Path, dst: Path, record: dict[str, Any]) -> None:
    manifest = read_json(src / "manifest.json")
    manifest["bundle_id"] = record["bundle_id"]
    manifest["derived"] = {k: v for k, v in record.items() if k != "bundle_id"}
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


# ---- registry ---------------------------------------------------------------------------------


def registry_part(part: str) -> str:
    """Registered model suffix of a part: ``user_tower`` or ``user-tower`` -> ``user-tower``."""
    norm = part.replace("-", "_")
    if norm not in PARTS:
        raise CandidateError(f"unknown part {part!r}; known: {list(PARTS)}")
    return norm.replace("_", "-")


def candidate_tags(folder: Path) -> dict[str, str]:
    """The tags a derived version is registered with (the pipeline's, plus ``cascade.*``)."""
    manifest = read_json(folder / "manifest.json")
    derived = manifest.get("derived")
    if not isinstance(derived, dict):
        raise CandidateError(
            f"{folder} is not a derived candidate (its manifest has no 'derived'); "
            "trained bundles are registered by python -m training.pipeline"
        )
    tags = {
        "bundle_id": str(manifest["bundle_id"]),
        "feature_schema_version": load_schema(folder).version,
        "cascade.derived_from": str(derived["from_bundle_id"]),
        "cascade.kind": str(derived["kind"]),
        "cascade.params": json.dumps(derived.get("params", {}), sort_keys=True)[:4000],
    }
    if manifest.get("data_fingerprint"):
        tags["data_fingerprint"] = str(manifest["data_fingerprint"])
    return tags


def register(
    folder: Path,
    part: str | None = None,
    tags: dict[str, str] | None = None,
    uri: str | None = None,
) -> str:
    """Register ``folder`` as a new version of ``cascade-<part>``; no alias moves. Returns the
    version. ``uri`` defaults to $MLFLOW_TRACKING_URI."""
    from training.registry import register_version

    detected = part_of(folder)
    if part is not None and registry_part(part) != registry_part(detected):
        raise CandidateError(f"{folder} holds a {detected}, not a {part}")
    computed = candidate_tags(folder)
    clash = sorted(set(tags or {}) & set(computed))
    if clash:
        raise CandidateError(f"tags {clash} are set from the manifest; choose other names")
    return register_version(
        folder, registry_part(detected), {**(tags or {}), **computed}, uri, CANDIDATE_EXPERIMENT
    )


# ---- CLI --------------------------------------------------------------------------------------


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--tag wants key=value, got {text!r}")
    return key, value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="write a derived candidate folder")
    d.add_argument("--from", dest="src", type=Path, required=True, help="a part folder or models/")
    d.add_argument("--kind", choices=KINDS, required=True)
    d.add_argument("--out", type=Path, required=True)
    d.add_argument(
        "--extra-ms",
        type=float,
        default=DeriveOptions.extra_ms,
        help="slower: extra ms per 500 candidates on this machine",
    )
    d.add_argument(
        "--noise", type=float, default=DeriveOptions.noise, help="noisy: noise std in logit units"
    )
    d.add_argument("--seed", type=int, default=DeriveOptions.seed)
    d.add_argument(
        "--input",
        dest="input_name",
        default=DeriveOptions.input_name,
        help="bad_schema: the ranker input to rename",
    )
    d.add_argument("--bundle-id", default=None, help="default: <source id>-<kind>[-<params>]")
    r = sub.add_parser("register", help="register a derived folder as a new version, no alias")
    r.add_argument("--folder", type=Path, required=True)
    r.add_argument("--part", default=None, help="ranker, user-tower or item-index (checked)")
    r.add_argument("--tag", type=_tag, action="append", default=[], metavar="KEY=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI: ``derive`` prints the new bundle id, ``register`` the new version; exit 1 with one
    clear line when the input or the registry is wrong."""
    from training.registry import RegistrationError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "derive":
            opts = DeriveOptions(
                args.extra_ms, args.noise, args.seed, args.input_name, args.bundle_id
            )
            record = derive(args.src, args.kind, args.out, opts)
            sys.stdout.write(record["bundle_id"] + "\n")
        else:
            version = register(args.folder, args.part, dict(args.tag))
            sys.stdout.write(version + "\n")
    except (
        CandidateError,
        ModelLoadError,
        RegistryUnavailableError,
        RegistrationError,
    ) as e:
        log.error("%s failed: %s", args.command, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
