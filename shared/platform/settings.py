"""Settings base for every Cascade process: pydantic-settings, one env prefix per service.

Each service reads ``CASCADE_<SERVICE>_<NAME>``. Settings the whole platform shares
(connections, where models come from, the latency budget) are marked ``platform=True`` and
are also read as ``CASCADE_<NAME>``; the per-service name wins. That is one extra
pydantic-settings source (:class:`PlatformEnvSource`), not an alias per field. Groups of
settings several services share are mixins (``RedisSettings``, ``ModelSettings``, ...), so
each is declared once. Nothing is hard-coded beyond loopback defaults that the local runtime
and docker-compose override.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class StartupError(ValueError):
    """A misconfiguration that stops a service at start with one line naming it."""


PLATFORM_PREFIX = "CASCADE_"


def platform(default: Any = ..., env: str = "", **kwargs: Any) -> Any:
    """A field also readable platform-wide, as ``CASCADE_<NAME>`` (or ``CASCADE_<env>``); the
    service's own ``CASCADE_<SERVICE>_<NAME>`` wins."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra["platform"] = env or True
    return Field(default, json_schema_extra=extra, **kwargs)


def platform_name(field: str, info: FieldInfo) -> str | None:
    """The platform-wide variable of a field declared with :func:`platform`, else None."""
    extra = info.json_schema_extra
    mark = extra.get("platform") if isinstance(extra, dict) else None
    if not mark:
        return None
    return PLATFORM_PREFIX + (mark if isinstance(mark, str) else field).upper()


class PlatformEnvSource(PydanticBaseSettingsSource):
    """``CASCADE_<NAME>`` for the platform-wide fields only (raw strings; pydantic parses)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._names = {
            f: n for f, info in settings_cls.model_fields.items()
            if (n := platform_name(f, info)) is not None
        }  # fmt: skip

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The raw value of ``field_name`` from its platform-wide variable."""
        env = self._names.get(field_name, "")
        return os.environ.get(env), env, False

    def __call__(self) -> dict[str, Any]:
        env = {k.upper(): v for k, v in os.environ.items()}
        return {f: env[n] for f, n in self._names.items() if n in env}


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


def check_cluster_url(value: str) -> str:
    """A Redis Cluster has database 0 only, and no unix socket."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme == "unix":
        raise ValueError(f"'{value}': a Redis Cluster is reached over TCP, not a unix socket")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"'{value}': a Redis Cluster has database 0 only")
    return value


def check_http_url(value: str) -> str:
    """Validate an http(s) URL (pydantic's parser) and return it without a trailing slash."""
    AnyHttpUrl(value)
    return value.rstrip("/")


RedisUrl = Annotated[str, AfterValidator(check_redis_url)]
KafkaBootstrap = Annotated[str, AfterValidator(parse_bootstrap_servers)]
HttpUrl = Annotated[str, AfterValidator(check_http_url)]


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``service_name`` and their own env prefix."""

    model_config = SettingsConfigDict(
        env_prefix=PLATFORM_PREFIX, extra="ignore", populate_by_name=True, validate_default=True
    )

    service_name: str = "service"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_json: bool = True
    # The admin token (shared/platform/auth.py): every write and admin action needs it.
    admin_token: SecretStr | None = platform(
        None, description="writes need 'Authorization: Bearer <token>' (prefer the file)"
    )
    admin_token_file: str | None = platform(
        None, description="file holding the admin token (a mounted secret); wins over the value"
    )
    # The read token: when set, every read needs it (or the admin token), and the service
    # sends it with its own calls to the others. Unset: reads are open.
    read_token: SecretStr | None = platform(
        None, description="reads need 'Authorization: Bearer <token>' (unset: reads are open)"
    )
    read_token_file: str | None = platform(
        None, description="file holding the read token (a mounted secret); wins over the value"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Service-prefixed variables first, then the platform-wide names."""
        platform_env = PlatformEnvSource(settings_cls)
        return init_settings, env_settings, platform_env, dotenv_settings, file_secret_settings


class RedisSettings(BaseModel):
    """The online store connection: one Redis, or a Redis Cluster (any node's URL)."""

    redis_url: RedisUrl = platform("redis://127.0.0.1:6379/0", description="Redis URL")
    redis_cluster: bool = platform(
        False, description="the URL names a node of a Redis Cluster (database 0 only)"
    )

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_database(cls, cluster: bool, info: ValidationInfo) -> bool:
        url = info.data.get("redis_url")  # absent when the URL itself was invalid
        if cluster and url:
            check_cluster_url(url)
        return cluster


class KafkaSettings(BaseModel):
    """The broker connection."""

    kafka_bootstrap: KafkaBootstrap = platform(
        "127.0.0.1:9092", description="Kafka bootstrap servers host:port,..."
    )


class BudgetSettings(BaseModel):
    """Where the latency budget comes from."""

    latency_budget: str | None = platform(
        None, description="latency budget YAML (default config/latency_budget.yaml)"
    )


class ReadCacheSettings(BaseModel):
    """The serving processes' short-lived caches of item counters and global lists."""

    read_cache_s: float = Field(
        default=1.0, ge=0, le=60,
        description="item counters and global lists reused this long (0: always read Redis)",
    )  # fmt: skip


def env_names(settings_cls: type[BaseSettings], field: str) -> list[str]:
    """The environment variables ``field`` is read from, the service's own first."""
    prefix = settings_cls.model_config.get("env_prefix", "")
    names = [f"{prefix}{field}".upper()]
    info = settings_cls.model_fields.get(field)
    wide = platform_name(field, info) if info is not None else None
    return names + [wide] if wide else names


def _env_name(settings_cls: type[BaseSettings], field: str) -> str:
    """The environment variable a user would set for ``field`` of ``settings_cls``."""
    return env_names(settings_cls, field)[0]


def describe_validation_error(settings_cls: type[BaseSettings], exc: ValidationError) -> str:
    """One line per bad setting: the env var, the value given and what was wrong."""
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        value = err.get("input")
        names = env_names(settings_cls, field) if field in settings_cls.model_fields else []
        where = " (or " + names[1] + ")" if len(names) > 1 else ""
        lines.append(
            f"invalid setting {_env_name(settings_cls, field)}={value!r}{where}: {err['msg']}"
        )
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
