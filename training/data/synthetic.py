"""Synthetic catalogues for scale tests (up to 1M items): numpy only, no torch, no pandas.

Items and users live in a hidden latent space tied to their genres, item popularity follows a Zipf
law, and interactions are sampled from popularity × affinity, so models have structure to learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.features.item import N_GENRES


@dataclass
class SyntheticCatalog:
    """Items, users and their hidden factors."""

    item_ids: list[str]
    item_genres: np.ndarray  # [n_items, N_GENRES] float32 multi-hot
    item_year: np.ndarray  # [n_items] float64
    popularity: np.ndarray  # [n_items] Zipf probabilities (sum 1)
    item_latent: np.ndarray  # [n_items, latent_dim] float32
    user_ids: list[str]
    user_latent: np.ndarray  # [n_users, latent_dim] float32
    user_age: np.ndarray  # [n_users] int
    user_gender: np.ndarray  # [n_users] str


def generate_catalog(
    n_items: int, n_users: int, latent_dim: int = 16, zipf_a: float = 1.1, seed: int = 0
) -> SyntheticCatalog:
    """A catalogue whose item factors are genre centroids plus noise (1M items: about 1 s)."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(N_GENRES, latent_dim)).astype(np.float32)
    main = rng.integers(1, N_GENRES, n_items)
    genres = np.zeros((n_items, N_GENRES), dtype=np.float32)
    genres[np.arange(n_items), main] = 1.0
    extra = rng.random(n_items) < 0.4
    genres[np.flatnonzero(extra), rng.integers(1, N_GENRES, int(extra.sum()))] = 1.0
    item_latent = (genres @ centroids) / genres.sum(axis=1, keepdims=True)
    item_latent += 0.5 * rng.normal(size=item_latent.shape).astype(np.float32)
    ranks = rng.permutation(n_items) + 1
    pop = 1.0 / ranks**zipf_a
    fav = rng.integers(1, N_GENRES, n_users)
    user_latent = centroids[fav] + 0.7 * rng.normal(size=(n_users, latent_dim)).astype(np.float32)
    return SyntheticCatalog(
        item_ids=[f"s{i}" for i in range(n_items)],
        item_genres=genres,
        item_year=rng.integers(1950, 2025, n_items).astype(np.float64),
        popularity=pop / pop.sum(),
        item_latent=item_latent.astype(np.float32),
        user_ids=[f"su{u}" for u in range(n_users)],
        user_latent=user_latent.astype(np.float32),
        user_age=rng.integers(15, 70, n_users),
        user_gender=rng.choice(np.array(["M", "F"]), n_users),
    )


def sample_interactions(
    cat: SyntheticCatalog, n: int, t0: int = 1_700_000_000, span_s: int = 30 * 86_400, seed: int = 0
) -> dict[str, np.ndarray]:
    """``n`` (user, item, rating, timestamp) events: items drawn by popularity, kept by affinity."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, len(cat.user_ids), 3 * n)
    items = rng.choice(len(cat.item_ids), 3 * n, p=cat.popularity)
    aff = np.einsum("nd,nd->n", cat.user_latent[users], cat.item_latent[items])
    keep = rng.random(3 * n) < 1.0 / (1.0 + np.exp(-(aff - 1.0)))
    users, items, aff = users[keep][:n], items[keep][:n], aff[keep][:n]
    rating = np.clip(np.round(3.0 + aff / 4.0 + rng.normal(0, 0.7, len(aff))), 1, 5)
    ts = np.sort(rng.integers(t0, t0 + span_s, len(users)))
    return {"user": users, "item": items, "rating": rating.astype(np.float32), "timestamp": ts}


def item_embeddings(cat: SyntheticCatalog, dim: int = 64, seed: int = 0) -> np.ndarray:
    """[n_items, dim] float32 L2-normalised embeddings (random projection of the hidden factors):
    cheap stand-ins with real neighbourhood structure for ANN benchmarks."""
    rng = np.random.default_rng(seed + 1)
    proj = rng.normal(size=(cat.item_latent.shape[1], dim)).astype(np.float32)
    e = cat.item_latent @ proj
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return e.astype(np.float32)


def user_embeddings(cat: SyntheticCatalog, dim: int = 64, seed: int = 0) -> np.ndarray:
    """[n_users, dim] query vectors in the same space as :func:`item_embeddings`."""
    rng = np.random.default_rng(seed + 1)
    proj = rng.normal(size=(cat.user_latent.shape[1], dim)).astype(np.float32)
    e = cat.user_latent @ proj
    return np.asarray(e / np.linalg.norm(e, axis=1, keepdims=True), dtype=np.float32)
