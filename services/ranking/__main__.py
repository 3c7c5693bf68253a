"""Run the ranking service: `python -m services.ranking`."""

from services.ranking.app import build_app
from services.ranking.settings import Settings
from shared.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
