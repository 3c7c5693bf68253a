"""Run the gateway service: `python -m services.gateway`."""

from services.gateway.app import build_app
from services.gateway.settings import Settings
from shared.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
