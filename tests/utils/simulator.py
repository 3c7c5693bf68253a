"""The traffic simulator's ground truth for tests: fit once per test process, in a temp folder."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from loadtests.simulator.ground_truth import GroundTruth
from loadtests.simulator.settings import GroundTruthSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data" / "ml-100k"


@lru_cache(maxsize=1)
def cache_dir() -> Path:
    """A fresh cache folder, removed when the process ends (tests never touch .cache/)."""
    path = Path(tempfile.mkdtemp(prefix="sim-truth-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def data_dir() -> Path:
    """MovieLens-100K, fetched from PyPI (the recbole wheel) when it is not there yet."""
    from training.data.fetch import fetch

    return fetch(DATA_DIR)  # a no-op once the files are there and verified


@lru_cache(maxsize=4)
def ground_truth(settings: GroundTruthSettings | None = None) -> GroundTruth:
    """The ground truth fit on the real data (about 2 s the first time per setting)."""
    return GroundTruth.load(data_dir(), cache_dir(), settings)
