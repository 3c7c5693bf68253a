"""Run the offline sink: `python -m services.offline_sink`."""

from services.offline_sink.app import build_app
from services.offline_sink.settings import Settings
from shared.platform.service import run_service

if __name__ == "__main__":
    run_service(Settings, build_app)
