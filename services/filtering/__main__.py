"""Run the filtering service: `python -m services.filtering`."""

from services.filtering.app import build_app
from services.filtering.settings import Settings
from shared.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
