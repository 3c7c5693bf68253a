"""Settings: env prefixes, platform-wide values, and one clear line for a bad setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.events.settings import Settings as EventsSettings
from services.feature_store.settings import Settings as FeatureStoreSettings
from shared.platform.settings import load_settings, parse_bootstrap_servers
from tests.utils.servers import REPO_ROOT


def test_service_prefix_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_FEATURE_STORE_PORT", "9123")
    settings = load_settings(FeatureStoreSettings)
    assert settings.port == 9123
    assert settings.service_name == "feature_store"
    assert settings.redis_url.startswith("redis://")


def test_per_service_value_wins_over_platform_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_REDIS_URL", "redis://platform:6379/0")
    assert load_settings(FeatureStoreSettings).redis_url == "redis://platform:6379/0"
    monkeypatch.setenv("CASCADE_FEATURE_STORE_REDIS_URL", "redis://mine:6380/1")
    assert load_settings(FeatureStoreSettings).redis_url == "redis://mine:6380/1"


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("CASCADE_FEATURE_STORE_PORT", "70000", "less than or equal to 65535"),
        ("CASCADE_FEATURE_STORE_PORT", "eighty", "valid integer"),
        ("CASCADE_FEATURE_STORE_REDIS_URL", "http://localhost:6379", "must start with redis://"),
        ("CASCADE_FEATURE_STORE_REDIS_URL", "redis://localhost:99999/0", "port"),
        ("CASCADE_FEATURE_STORE_LOG_LEVEL", "LOUD", "should match pattern"),
    ],
)
def test_invalid_setting_exits_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: str,
    value: str,
    needle: str,
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SystemExit) as exc:
        load_settings(FeatureStoreSettings)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("feature_store: invalid setting ")
    assert env in err and needle in err


@pytest.mark.parametrize("value", ["", "host", "host:", ":9092", "host:0", "a:1,b:x"])
def test_bad_bootstrap_lists_are_rejected(value: str) -> None:
    with pytest.raises(ValueError):
        parse_bootstrap_servers(value)


def test_bootstrap_list_is_normalised() -> None:
    assert parse_bootstrap_servers(" a:1 , b:2 ") == "a:1,b:2"


def test_kafka_setting_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_KAFKA_BOOTSTRAP", "broker-without-port")
    with pytest.raises(SystemExit):
        load_settings(EventsSettings)


def test_service_process_refuses_to_start_on_bad_setting() -> None:
    """The real entry point exits at once with one line, instead of crash-looping."""
    proc = subprocess.run(
        [sys.executable, "-m", "services.gateway"],
        env={"CASCADE_GATEWAY_PORT": "70000", "PATH": "/usr/bin:/bin"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [lines[0]] and "CASCADE_GATEWAY_PORT" in lines[0]


def test_only_fields_marked_platform_wide_read_the_platform_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.ranking.settings import Settings as RankingSettings

    monkeypatch.setenv("CASCADE_PORT", "9999")  # not platform-wide: every service has its own
    monkeypatch.setenv("CASCADE_MODEL_ALIASES", "production,blue")
    monkeypatch.setenv("CASCADE_KAFKA_SESSION_TIMEOUT_MS", "6000")  # a platform name of its own
    ranking = RankingSettings()
    assert ranking.port == 8005 and ranking.followed() == ("production", "blue")
    from services.ingest.settings import Settings as IngestSettings

    assert IngestSettings().session_timeout_ms == 6000
    monkeypatch.setenv("CASCADE_INGEST_SESSION_TIMEOUT_MS", "7000")
    assert IngestSettings().session_timeout_ms == 7000


def test_a_bad_platform_value_names_the_variable_a_user_would_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.ranking.settings import Settings as RankingSettings
    from shared.platform.settings import load_settings

    monkeypatch.setenv("CASCADE_MODEL_MAX_HELD", "0")
    with pytest.raises(SystemExit):
        load_settings(RankingSettings)
    err = capsys.readouterr().err
    assert "CASCADE_RANKING_MODEL_MAX_HELD='0' (or CASCADE_MODEL_MAX_HELD)" in err


def test_a_redis_cluster_is_named_by_any_node_and_has_database_0_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CASCADE_REDIS_CLUSTER", "true")
    monkeypatch.setenv("CASCADE_REDIS_URL", "redis://node-a:7000/3")
    with pytest.raises(SystemExit):
        load_settings(FeatureStoreSettings)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "database 0 only" in err, err
    monkeypatch.setenv("CASCADE_REDIS_URL", "redis://node-a:7000")
    settings = load_settings(FeatureStoreSettings)
    assert settings.redis_cluster and settings.redis_url == "redis://node-a:7000"
    monkeypatch.delenv("CASCADE_REDIS_CLUSTER")
    assert not load_settings(FeatureStoreSettings).redis_cluster  # one Redis by default
