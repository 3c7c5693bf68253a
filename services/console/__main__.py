"""Run the console: `python -m services.console`."""

from services.console.app import build_app
from services.console.settings import Settings
from shared.platform.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
