"""The simulator's hidden ground truth: its data, cache, calibration and priors."""

from __future__ import annotations

import numpy as np

from loadtests.simulator.ground_truth import (
    GroundTruth,
    cache_path,
    data_fingerprint,
)
from loadtests.simulator.settings import GroundTruthSettings
from shared.datasets.movielens import load_movielens
from shared.datasets.time_split import temporal_cutoffs
from tests.utils.simulator import cache_dir, data_dir, ground_truth


def test_fingerprint_is_the_loaders() -> None:
    assert data_fingerprint(data_dir()) == load_movielens(data_dir()).fingerprint


def test_fit_on_all_ratings_knows_every_user_and_item() -> None:
    truth = ground_truth()
    assert len(truth.known_users) == 943
    assert truth.tables.interest_z.shape == (943, 1682)
    assert int(truth.tables.user_activity.sum()) == 100_000


def test_the_fit_is_cached_and_reloaded_identically() -> None:
    truth = ground_truth()
    path = cache_path(data_dir(), cache_dir(), truth.settings)
    assert path.is_file()
    again = GroundTruth.load(data_dir(), cache_dir(), truth.settings)
    assert np.array_equal(again.tables.interest_z, truth.tables.interest_z)
    assert np.array_equal(again.tables.rating, truth.tables.rating)


def test_the_cache_key_holds_fit_settings_but_not_calibration() -> None:
    base = GroundTruthSettings()
    same = cache_path(data_dir(), cache_dir(), base.model_copy(update={"ctr_at_median": 0.05}))
    other = cache_path(data_dir(), cache_dir(), base.model_copy(update={"ease_lambda": 50.0}))
    assert same == cache_path(data_dir(), cache_dir(), base)
    assert other != same


def test_items_a_user_rated_highly_rank_above_those_rated_low_and_unrated() -> None:
    truth = ground_truth()
    inter = load_movielens(data_dir()).interactions
    rows = np.array([truth.user_row(u) for u in inter["user_id"]])
    z = truth.tables.interest_z
    cols = truth.item_columns(inter["item_id"].tolist())
    rated_z = z[rows, cols]
    liked = rated_z[inter["rating"].to_numpy() >= 4].mean()
    disliked = rated_z[inter["rating"].to_numpy() <= 2].mean()
    assert liked > disliked > 0.0  # 0: the mean over each user's whole catalogue
    assert abs(float(z.mean())) < 1e-3


def test_calibration_matches_the_documented_rates() -> None:
    truth = ground_truth()
    inter = load_movielens(data_dir()).interactions
    rated = np.zeros((943, 1682), dtype=bool)
    rated[[truth.user_row(u) for u in inter["user_id"]], truth.item_columns(inter["item_id"])] = 1
    p = truth.lookup(np.arange(943), np.tile(np.arange(1682), (943, 1))).p_click
    assert np.all((p > 0) & (p < 1))
    unrated = np.where(rated, np.nan, p)
    by_popularity = np.argsort(-truth.tables.item_popularity, kind="stable")
    popular = [
        np.nanmean(row[by_popularity][~np.isnan(row[by_popularity])][:10]) for row in unrated
    ]
    best = np.sort(np.where(rated, -1.0, p), axis=1)[:, -10:]
    assert 0.02 < np.nanmean(unrated) < 0.03  # a random unrated item
    assert 0.08 < np.mean(popular) < 0.10  # the ten most popular unrated items
    assert 0.13 < best.mean() < 0.15  # the user's ten best unrated items
    assert 0.38 < p.max(axis=1).mean() < 0.40  # the user's very top item


def test_unknown_items_get_the_prior_and_new_users_the_population() -> None:
    truth = ground_truth()
    popular, obscure = truth.popular_items(1)[0], truth.tables.item_ids[-1]
    lists = truth.for_list("sim-new-1", [popular, obscure, "added-at-run-time"])
    prior = GroundTruthSettings().ctr_at_median  # z = 0 for an unknown item
    assert lists.p_click.shape == (1, 3)
    assert lists.p_click[0, 0] > 0.15 > lists.p_click[0, 1]
    assert abs(lists.p_click[0, 2] - prior) < 1e-9
    assert truth.user_row("sim-new-1") == truth.user_row("sim-new-2") == -1
    assert truth.top_items("sim-new-1", 5) == truth.top_items("sim-new-2", 5)


def test_persona_new_users_take_a_known_users_taste_by_hash() -> None:
    truth = GroundTruth(ground_truth().tables, GroundTruthSettings(new_user_taste="persona"))
    rows = {truth.user_row(f"sim-new-{n}") for n in range(50)}
    assert all(0 <= r < 943 for r in rows) and len(rows) > 40
    assert truth.user_row("sim-new-7") == truth.user_row("sim-new-7")


def test_heldout_fit_uses_only_ratings_after_the_validation_cut() -> None:
    truth = ground_truth(GroundTruthSettings(fit_on="heldout"))
    inter = load_movielens(data_dir()).interactions
    t_val, _ = temporal_cutoffs(inter["timestamp"].to_numpy())
    held = inter[inter["timestamp"] >= t_val]
    assert int(truth.tables.user_activity.sum()) == len(held)
    assert set(truth.known_users) == set(held["user_id"])
    assert len(truth.known_users) < 943
