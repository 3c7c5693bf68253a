"""Run the feature_store service: `python -m services.feature_store`."""

from services.feature_store.app import build_app
from services.feature_store.settings import Settings
from shared.platform.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
