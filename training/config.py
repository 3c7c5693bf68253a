"""Pipeline configuration: the full run (`make train`) and the tiny one used by tests."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RetrievalConfig:
    """Two-tower training knobs."""

    dim: int = 64
    epochs: int = 8
    batch_size: int = 1024
    lr: float = 3e-3
    weight_decay: float = 1e-4
    ema_decay: float = 0.99  # weights evaluated and kept: a per-step exponential moving average
    patience: int = 1  # epochs without a better validation score before stopping
    temperature: float = 0.07
    full_softmax: bool = False  # every item as a negative (no sampling, no logQ correction)
    separate_history: bool = False  # the history pools its own item table, not the item tower's
    n_uniform_negatives: int = 256
    max_train_rows: int | None = None
    user_time: str = "event"  # "event" (point-in-time) or "last" (see retrieval.example_times)


@dataclass
class RankerConfig:
    """Multi-task ranker training knobs."""

    holdout_frac: float = 0.125  # share of the training events the ranker learns from
    query_times: int = 3  # temporal split: times in the hold-out period its queries are asked at
    epochs: int = 2
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 0.0
    field_dropout: float = 0.3  # dropout on the field embeddings: the hold-out set is small
    evals_per_epoch: int = 4  # validation checkpoints per epoch (the best one is kept)
    n_random_negatives: int = 20  # per hold-out query, besides the retrieved candidates
    # never use the user's own validation/test items as negatives (False: the old rule)
    mask_held_out: bool = True
    focal_gamma: float = 0.0  # > 0 switches BCE to focal loss
    like_weight: float = 1.0


@dataclass
class PipelineConfig:
    """Everything a run depends on; logged to MLflow as params."""

    seed: int = 42
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    n_candidates: int = 200  # retrieval depth handed to the ranker
    hist_len: int = 50  # history items the towers and ranker read (the store keeps 100)
    refit_retrieval: bool = True  # fit the two-tower again on all training events (see protocol)
    rerank_depth: int = 50  # MMR re-ranks this many top-ranked items
    mmr_lambda: float = 0.9
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 100
    als_factors: int = 64
    als_iterations: int = 15
    als_regularization: float = 0.05
    knn_neighbours: int = 100
    ease_lambdas: tuple[float, ...] = (50.0, 100.0, 250.0, 500.0, 1000.0)  # chosen on validation
    item_item_top_n: int = 200  # EASE weights kept per item for serving (item_index/item_item.npz)
    ease_candidates: int = 100  # the served EASE source's quota (the pipeline ranks its items)
    ease_history: int = 2000  # latest items it scores from: the seen window (StoreConfig.seen_cap)
    max_eval_users: int | None = None
    protocols: tuple[str, ...] = ("temporal", "recbole")
    tiny: bool = False

    def flat(self) -> dict[str, Any]:
        """Flat dict for MLflow params."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            if isinstance(v, dict):
                out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
            else:
                out[k] = v
        return out


def tiny_config(seed: int = 42) -> PipelineConfig:
    """A config that exercises every stage in seconds (tests, smoke runs)."""
    return PipelineConfig(
        seed=seed,
        retrieval=RetrievalConfig(dim=32, epochs=2, n_uniform_negatives=64, max_train_rows=20_000),
        ranker=RankerConfig(epochs=1),
        n_candidates=100,
        als_iterations=3,
        max_eval_users=150,
        tiny=True,
    )
