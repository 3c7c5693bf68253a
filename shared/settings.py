"""Settings base for every Cascade process: pydantic-settings, one env prefix per service.

Connection settings (Redis, Kafka, MLflow) can be set once for the whole platform
(``CASCADE_REDIS_URL``) or per service (``CASCADE_GATEWAY_REDIS_URL``); the per-service name wins.
Nothing is hard-coded beyond loopback defaults that the local runtime and docker-compose override.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    AnyHttpUrl,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def platform_field(name: str, default: Any, service: str, description: str = "") -> Any:
    """A field readable as CASCADE_<SERVICE>_<NAME> or, platform-wide, CASCADE_<NAME>."""
    upper = name.upper()
    return Field(
        default=default,
        validation_alias=AliasChoices(
            f"CASCADE_{service.upper()}_{upper}", f"CASCADE_{upper}", name
        ),
        description=description,
    )


def parse_bootstrap_servers(value: str) -> str:
    """Validate a Kafka bootstrap list ``host:port[,host:port...]`` and return it normalised."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty Kafka bootstrap server list")
    for part in parts:
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"'{part}' is not host:port with a port in 1..65535")
    return ",".join(parts)


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``service_name`` and their own env prefix."""

    model_config = SettingsConfigDict(
        env_prefix="CASCADE_", extra="ignore", populate_by_name=True, validate_default=True
    )

    service_name: str = "service"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_json: bool = True

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def redis_url_field(service: str) -> Any:
    """Redis URL setting shared by the platform."""
    return platform_field("redis_url", "redis://127.0.0.1:6379/0", service, "Redis URL")


def kafka_field(service: str) -> Any:
    """Kafka bootstrap servers setting shared by the platform."""
    return platform_field(
        "kafka_bootstrap", "127.0.0.1:9092", service, "Kafka bootstrap servers host:port,..."
    )


def mlflow_field(service: str) -> Any:
    """MLflow tracking URI setting shared by the platform."""
    return platform_field("mlflow_uri", "http://127.0.0.1:5000", service, "MLflow tracking URI")


def check_redis_url(value: str) -> str:
    """Reject anything that is not a redis:// / rediss:// / unix:// URL with a valid port."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ValueError(f"'{value}' must start with redis://, rediss:// or unix://")
    if parts.scheme != "unix":
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"'{value}' has an invalid port") from exc
        if not parts.hostname:
            raise ValueError(f"'{value}' has no host")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"'{value}' has a port outside 1..65535")
    return value


def check_http_url(value: str) -> str:
    """Validate an http(s) URL (pydantic's parser) and return it without a trailing slash."""
    AnyHttpUrl(value)
    return value.rstrip("/")


def _env_name(settings_cls: type[BaseSettings], field: str) -> str:
    """The environment variable a user would set for ``field`` of ``settings_cls``."""
    info = settings_cls.model_fields.get(field)
    if info is None:  # pydantic reports alias-read fields by the alias: already an env name
        return field.upper()
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    prefix = settings_cls.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def describe_validation_error(settings_cls: type[BaseSettings], exc: ValidationError) -> str:
    """One line per bad setting: the env var, the value given and what was wrong."""
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        value = err.get("input")
        lines.append(f"invalid setting {_env_name(settings_cls, field)}={value!r}: {err['msg']}")
    return "; ".join(lines)


def load_settings(settings_cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings from the environment, or exit with one clear line naming the bad setting."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        name_field = settings_cls.model_fields.get("service_name")
        service = name_field.default if name_field else settings_cls.__name__
        sys.stderr.write(f"{service}: {describe_validation_error(settings_cls, exc)}\n")
        raise SystemExit(2) from None


RedisUrl = Annotated[str, AfterValidator(check_redis_url)]
KafkaBootstrap = Annotated[str, AfterValidator(parse_bootstrap_servers)]
HttpUrl = Annotated[str, AfterValidator(check_http_url)]
