"""ItemIndex: the hnswlib ANN index over item embeddings, with id mapping and online adds."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np


# Below this many items a query is answered exactly, from the embedding table (one product
# and a partial sort), instead of by the HNSW graph. Measured on the 1,682 MovieLens items
# (64 dims, one thread): exact top-200 with 300 history rows masked 37 µs; hnswlib 75 µs for
# k=200 and 475 µs for k=900, the depth a heavy user's query needs once the items already seen
# are over-fetched. The crossover is past 10,000 items (docs/serving.md); above it, and for
# any real catalogue, the ANN graph answers.
EXACT_MAX_ITEMS = 10_000
NEIGHBOUR_MEMO_ROWS = 50_000  # 50,000 rows x 35 neighbours x 12 bytes: about 21 MB at most


class ItemIndex:
    """Inner-product HNSW index; label r is row r of ``item_ids`` and of the embedding table.

    Items added at run time get the next labels; the index and the embedding table grow by half
    when full (hnswlib ``resize_index``), so no rebuild is ever needed. Catalogues of at most
    ``exact_max_items`` are searched exactly (see ``EXACT_MAX_ITEMS``).
    """

    def __init__(
        self,
        index: hnswlib.Index,
        item_ids: list[str],
        embeddings: np.ndarray,
        meta: dict[str, Any],
    ) -> None:
        self.index = index
        self.meta = meta
        self.dim = int(embeddings.shape[1])
        self.ef_search = int(meta.get("ef_search", 100))
        self._ids = list(item_ids)
        self._row = {item_id: r for r, item_id in enumerate(self._ids)}
        self._emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        self._lock = threading.Lock()  # adds (and resizes) are serialised; queries are not
        self.exact_max_items = EXACT_MAX_ITEMS
        # row -> (labels, sims) of its nearest items, best first: item-to-item asks the same
        # recent items' neighbours request after request, and they change only through add().
        self._neighbours: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def load(cls, folder: Path) -> ItemIndex:
        """Read item_ids.json, item_embeddings.npy, index_meta.json and hnsw_index.bin."""
        meta = json.loads((folder / "index_meta.json").read_text())
        ids = [str(i) for i in json.loads((folder / "item_ids.json").read_text())]
        emb = np.load(folder / "item_embeddings.npy").astype(np.float32)
        if emb.shape != (len(ids), int(meta["dim"])):
            raise ValueError(
                f"{folder}: embeddings {emb.shape} do not match {len(ids)} ids × dim {meta['dim']}"
            )
        index = hnswlib.Index(space=str(meta.get("space", "ip")), dim=int(meta["dim"]))
        index.load_index(str(folder / "hnsw_index.bin"), max_elements=len(ids))
        index.set_num_threads(1)
        return cls(index, ids, emb, meta)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def exact(self) -> bool:
        """Whether queries are answered from the embedding table (a small catalogue)."""
        return len(self._ids) <= self.exact_max_items

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels and cosine similarities for each query row, best first."""
        queries = np.asarray(queries, dtype=np.float32)
        k = min(k, len(self._ids))
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.int64), empty.astype(np.float32)
        if self.exact:
            return _top_k(queries @ self._emb[: len(self._ids)].T, k)
        self.index.set_ef(max(self.ef_search, k))
        labels, dist = self.index.knn_query(queries, k=k)
        return labels.astype(np.int64), (1.0 - dist).astype(np.float32)

    def search_excluding(
        self, query: np.ndarray, k: int, exclude: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels and similarities of one query vector among items not in ``exclude``
        (labels; -1 entries ignored), best first. Exact search masks them; the ANN graph is
        asked for ``k`` more per excluded item, then they are dropped."""
        exclude = exclude[exclude >= 0]
        if not self.exact:
            exclude = np.unique(exclude)
            labels, sims = self.search(query.reshape(1, -1), k + len(exclude))
            keep = np.flatnonzero(~np.isin(labels[0], exclude))[:k]
            return labels[0][keep], sims[0][keep]
        sims = (self._emb[: len(self._ids)] @ query.reshape(-1)).reshape(1, -1)
        sims[0, exclude] = -np.inf  # repeats are harmless here, so no np.unique (a sort)
        left = len(self._ids) - int(np.count_nonzero(np.isneginf(sims)))
        labels, top = _top_k(sims, min(k, left))
        return labels[0], top[0]

    def neighbours(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For each label in ``rows``, the ``k`` nearest items' labels and similarities, best
        first (an item is usually its own first neighbour): ``search`` on the items' own
        embeddings, remembered per row until the next ``add`` (at most
        ``NEIGHBOUR_MEMO_ROWS`` rows; the memo starts over when full)."""
        k = min(k, len(self._ids))
        wanted = rows.tolist()
        memo = self._neighbours
        missing = [r for r in wanted if r not in memo or len(memo[r][0]) < k]
        if len(memo) + len(missing) > NEIGHBOUR_MEMO_ROWS:
            memo = self._neighbours = {}
            missing = wanted
        if missing:
            labels, sims = self.search(self._emb[missing], k)
            for j, r in enumerate(missing):
                memo[r] = (labels[j], sims[j])
        if not wanted:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        pairs = [memo[r] for r in wanted]
        return np.stack([p[0][:k] for p in pairs]), np.stack([p[1][:k] for p in pairs])

    def ids(self, labels: np.ndarray) -> list[str]:
        """Item ids of labels."""
        ids = self._ids
        rows = np.asarray(labels).tolist()
        if len(rows) > 1:  # itemgetter: one C call instead of a Python loop
            return list(itemgetter(*rows)(ids))
        return [ids[i] for i in rows]

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Labels of item ids (-1 for items not in the index)."""
        get = self._row.get
        return np.fromiter(map(get, item_ids, repeat(-1)), np.int64, len(item_ids))

    def embeddings(self, item_ids: Sequence[str]) -> np.ndarray:
        """[n, dim] embeddings of item ids; zero rows for items not in the index."""
        rows = self.rows(item_ids)
        out: np.ndarray = self._emb[np.maximum(rows, 0)].copy()
        out[rows < 0] = 0.0
        return out

    def add(self, item_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """Insert (or replace) items; returns their labels. Searchable as soon as this returns."""
        vecs = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(item_ids), self.dim)
        with self._lock:
            labels = np.empty(len(item_ids), dtype=np.int64)
            for j, item_id in enumerate(item_ids):
                row = self._row.get(item_id)
                if row is None:
                    row = len(self._ids)
                    self._ids.append(item_id)
                    self._row[item_id] = row
                labels[j] = row
            self._grow(len(self._ids))
            self._emb[labels] = vecs
            self.index.add_items(vecs, labels, replace_deleted=False)
            self._neighbours = {}  # any row's neighbours may now include the new items
        return labels

    def _grow(self, needed: int) -> None:
        if needed > self.index.get_max_elements():
            self.index.resize_index(max(needed, int(self.index.get_max_elements() * 1.5) + 16))
        if needed > len(self._emb):
            bigger = np.zeros((max(needed, int(len(self._emb) * 1.5) + 16), self.dim), np.float32)
            bigger[: len(self._emb)] = self._emb
            self._emb = bigger


def _top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``sims`` [q, n], the ``k`` largest (labels, values), best first."""
    if k <= 0:
        return np.zeros((len(sims), 0), np.int64), np.zeros((len(sims), 0), np.float32)
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else None
    labels = np.broadcast_to(np.arange(sims.shape[1]), sims.shape) if part is None else part
    values = np.take_along_axis(sims, labels, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    labels = np.take_along_axis(labels, order, axis=1).astype(np.int64)
    return labels, np.take_along_axis(values, order, axis=1).astype(np.float32)
