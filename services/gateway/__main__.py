"""Run the gateway service: `python -m services.gateway`."""

import os

# Small matrix products on shared cores: OpenBLAS threads only contend (60x slower measured).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from services.gateway.app import build_app  # noqa: E402
from services.gateway.settings import Settings  # noqa: E402
from shared.platform.service import run_service  # noqa: E402

if __name__ == "__main__":
    run_service(Settings, build_app)
