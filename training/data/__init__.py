"""Datasets: MovieLens-100K (GroupLens and RecBole formats), synthetic catalogs, splits."""

from training.data.movielens import DataError, MovieLens, load_movielens

__all__ = ["DataError", "MovieLens", "load_movielens"]
