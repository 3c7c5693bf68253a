"""Run the rollout controller: `python -m services.rollouts`."""

from services.rollouts.app import build_app
from services.rollouts.settings import Settings
from shared.platform.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
