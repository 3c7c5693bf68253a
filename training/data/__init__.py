"""Datasets: MovieLens-100K (GroupLens and RecBole formats), synthetic catalogs, splits.

The MovieLens loader lives in ``shared.datasets`` (the feature store's bootstrap job reads it
too, and serving never imports ``training``); it is re-exported here for the pipeline.
"""

from shared.datasets.movielens import DataError, MovieLens, load_movielens

__all__ = ["DataError", "MovieLens", "load_movielens"]
