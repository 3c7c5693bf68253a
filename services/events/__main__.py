"""Run the events service: `python -m services.events`."""

from services.events.app import build_app
from services.events.settings import Settings
from shared.platform.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
