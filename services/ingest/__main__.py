"""Run the feature ingest worker: `python -m services.ingest`."""

from services.ingest.app import build_app
from services.ingest.settings import Settings
from shared.platform.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
