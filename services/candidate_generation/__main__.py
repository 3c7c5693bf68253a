"""Run the candidate_generation service: `python -m services.candidate_generation`."""

from services.candidate_generation.app import build_app
from services.candidate_generation.settings import Settings
from shared.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
