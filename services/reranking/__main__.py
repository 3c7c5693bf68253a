"""Run the reranking service: `python -m services.reranking`."""

from services.reranking.app import build_app
from services.reranking.settings import Settings
from shared.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
