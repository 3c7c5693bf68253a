"""The platform's tokens: the admin token on every write and admin action, and, when the
operator sets one, the read token on every read (``Authorization: Bearer <token>``).

Each comes from ``CASCADE_<KIND>_TOKEN`` or, better, a file named by
``CASCADE_<KIND>_TOKEN_FILE`` (a Kubernetes Secret or a docker secret mounted as a file; the
local runtime writes ``.run/admin_token``, and ``.run/read_token`` when it protects reads). A
service with no admin token refuses its writes (403, saying how to configure one) instead of
leaving them open; a service with no read token leaves its reads open. Where reads are
protected the admin token reads too. Comparisons are constant-time over SHA-256 digests, so
neither a token's content nor its length leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request

from shared.platform.settings import StartupError

MIN_TOKEN_CHARS = 16
HOW_TO_CONFIGURE = "set CASCADE_ADMIN_TOKEN or CASCADE_ADMIN_TOKEN_FILE"
READ_HOW = (
    "this read needs 'Authorization: Bearer <read token>': the platform protects its reads "
    "(CASCADE_READ_TOKEN or CASCADE_READ_TOKEN_FILE; the admin token reads too)"
)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, given = (authorization or "").partition(" ")
    given = given.strip()
    return given if scheme.lower() == "bearer" and given else None


def _long_enough(token: str | None, kind: str) -> str | None:
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise StartupError(f"the {kind} token must have at least {MIN_TOKEN_CHARS} characters")
    return token


def settings_token(settings: Any, kind: str) -> str | None:
    """A service's ``kind`` token (admin, read) from its settings: ``<kind>_token_file``
    wins over ``<kind>_token``."""
    secret = getattr(settings, f"{kind}_token", None)
    value = secret.get_secret_value() if secret is not None else None
    return read_token(getattr(settings, f"{kind}_token_file", None), value, kind)


class AdminGuard:
    """Checks an ``Authorization`` header against the platform's admin token."""

    def __init__(self, token: str | None) -> None:
        token = _long_enough(token, "admin")
        self._digest = _digest(token) if token else None

    @property
    def configured(self) -> bool:
        """Whether a token is set (without one, every protected action is refused)."""
        return self._digest is not None

    @classmethod
    def from_settings(cls, settings: Any) -> AdminGuard:
        """The guard of a service's settings: ``admin_token_file`` wins over ``admin_token``."""
        return cls(settings_token(settings, "admin"))

    def refusal(self, authorization: str | None) -> tuple[int, str] | None:
        """None when ``authorization`` carries the token, else (status, why)."""
        if self._digest is None:
            return (
                403,
                f"this action is disabled: no admin token is configured ({HOW_TO_CONFIGURE})",
            )
        given = _bearer(authorization)
        if given is None:
            return 401, "this action needs 'Authorization: Bearer <admin token>'"
        if not hmac.compare_digest(_digest(given), self._digest):
            return 403, "the bearer token is not this platform's admin token"
        return None

    def check(self, authorization: str | None) -> None:
        """Raise the 401/403 HTTPException of :meth:`refusal`, if any."""
        refused = self.refusal(authorization)
        if refused is not None:
            status, detail = refused
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            raise HTTPException(status_code=status, detail=detail, headers=headers)


class ReadGuard:
    """Checks a read's ``Authorization`` header, when the platform protects its reads: the
    read token or the admin token pass. Without a read token every read passes."""

    def __init__(self, read_token: str | None, admin_token: str | None = None) -> None:
        tokens = (_long_enough(read_token, "read"), admin_token) if read_token else ()
        self._digests = tuple(_digest(t) for t in tokens if t)

    @property
    def configured(self) -> bool:
        """Whether reads are protected."""
        return bool(self._digests)

    @classmethod
    def from_settings(cls, settings: Any) -> ReadGuard:
        """The guard of a service's settings (each token's file wins over its value)."""
        return cls(settings_token(settings, "read"), settings_token(settings, "admin"))

    def refusal(self, authorization: str | None) -> tuple[int, str] | None:
        """None when the read may go on, else (status, why)."""
        if not self._digests:
            return None
        given = _bearer(authorization)
        if given is None:
            return 401, READ_HOW
        digest, matched = _digest(given), False
        for accepted in self._digests:  # both compared, whichever matches: no early exit
            matched |= hmac.compare_digest(digest, accepted)
        if not matched:
            return 403, "the bearer token is neither this platform's read token nor its admin token"
        return None


def read_token(token_file: str | Path | None, token: str | None, kind: str = "admin") -> str | None:
    """The token from ``token_file`` (stripped) if given, else ``token``; a named file that is
    missing or empty stops the service (a silently open or silently closed API is worse)."""
    if token_file:
        path = Path(token_file)
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise StartupError(f"{kind} token file {path}: {exc.strerror or exc}") from exc
        if not text:
            raise StartupError(f"{kind} token file {path} is empty")
        return text
    return token or None


def guard_of(request: Request) -> AdminGuard:
    """The service's guard (set by the service shell from its settings)."""
    guard: AdminGuard = request.app.state.admin_guard
    return guard


async def require_admin(request: Request) -> None:
    """FastAPI dependency of every write and admin route."""
    guard_of(request).check(request.headers.get("authorization"))


ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no bearer token given"},
    403: {"description": "wrong token, or the service has no admin token configured"},
}

ADMIN = [Depends(require_admin)]  # ``dependencies=ADMIN`` on a route: checked before its body

# Probes (kubelet, compose healthchecks, the local runtime) and Prometheus scrapers carry no
# token, and these answers hold no data: they stay open when reads are protected.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_READ_METHODS = ("GET", "HEAD")
READ_RESPONSES: dict[str, dict[str, Any]] = {
    "401": {"description": "reads are protected and no bearer token was given"},
    "403": {"description": "the bearer token is neither the read token nor the admin token"},
}


@dataclass
class ReadPolicy:
    """Which requests are reads, checked by :class:`ReadGuard` before anything else runs (the
    service shell, ``fast_routes.FastRoutes``): every fast route (stage calls, the public
    answer), every GET and HEAD but the open paths, and the POSTs a service declares reads
    (a list of ids too long for a query string). Writes keep their own check (the admin token)."""

    guard: ReadGuard
    open_paths: set[str] = field(default_factory=lambda: set(OPEN_PATHS))
    open_prefixes: tuple[str, ...] = ()  # static files of a page that holds no data
    read_posts: set[str] = field(default_factory=set)

    def covers(self, method: str, path: str) -> bool:
        """Whether a request to ``path`` (not a fast route) is a read that needs the token."""
        if method in _READ_METHODS:
            return path not in self.open_paths and not path.startswith(self.open_prefixes)
        return method == "POST" and path in self.read_posts

    def declare(self, schema: dict[str, Any], fast: set[tuple[str, str]]) -> dict[str, Any]:
        """``schema`` with 401/403 declared on every read (when reads are protected)."""
        if not self.guard.configured:
            return schema
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                if (method.upper(), path) in fast or self.covers(method.upper(), path):
                    op.setdefault("responses", {}).update(READ_RESPONSES)
        return schema


# What the local runtime writes (its run dir, deploy/local/stack.py).
RUN_DIR = Path(__file__).resolve().parents[2] / ".run"


def client_token(kind: str = "admin") -> str | None:
    """The ``kind`` token (admin, read) a client (CLI, demo, load test) sends, in the services'
    order: the file named by ``CASCADE_<KIND>_TOKEN_FILE``, else ``CASCADE_<KIND>_TOKEN``,
    else the local runtime's ``.run/<kind>_token`` when it exists."""
    named = os.environ.get(f"CASCADE_{kind.upper()}_TOKEN_FILE")
    if not named and (token := os.environ.get(f"CASCADE_{kind.upper()}_TOKEN")):
        return token
    try:
        return Path(named or RUN_DIR / f"{kind}_token").read_text().strip() or None
    except OSError:
        return None


def bearer(token: str | None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}``, or {} without a token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def admin_headers(token: str | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` for ``token`` or :func:`client_token` (empty when
    there is none: the service then answers 401/403 saying so)."""
    return bearer(token or client_token())


def read_headers() -> dict[str, str]:
    """What a client sends with reads: the read token where it finds one (a service whose reads
    are open ignores it), else nothing."""
    return bearer(client_token("read"))


def ensure_token_file(path: Path) -> Path:
    """Create ``path`` with a fresh random token (mode 0600) unless it exists; return it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path
