"""The admin token: every write and admin action needs ``Authorization: Bearer <token>``.

One token for the platform, from ``CASCADE_ADMIN_TOKEN`` or, better, a file named by
``CASCADE_ADMIN_TOKEN_FILE`` (a Kubernetes Secret or a docker secret mounted as a file; the
local runtime writes one to ``.run/admin_token``). A service with no token configured refuses
its writes (403, saying how to configure one) instead of leaving them open. The comparison is
constant-time over SHA-256 digests, so neither the token's content nor its length leaks
through timing. Reads stay open.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request

from shared.platform.settings import StartupError

MIN_TOKEN_CHARS = 16
HOW_TO_CONFIGURE = "set CASCADE_ADMIN_TOKEN or CASCADE_ADMIN_TOKEN_FILE"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class AdminGuard:
    """Checks an ``Authorization`` header against the platform's admin token."""

    def __init__(self, token: str | None) -> None:
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise StartupError(f"the admin token must have at least {MIN_TOKEN_CHARS} characters")
        self._digest = _digest(token) if token else None

    @property
    def configured(self) -> bool:
        """Whether a token is set (without one, every protected action is refused)."""
        return self._digest is not None

    @classmethod
    def from_settings(cls, settings: Any) -> AdminGuard:
        """The guard of a service's settings: ``admin_token_file`` wins over ``admin_token``."""
        secret = settings.admin_token
        value = secret.get_secret_value() if secret is not None else None
        return cls(read_token(settings.admin_token_file, value))

    def refusal(self, authorization: str | None) -> tuple[int, str] | None:
        """None when ``authorization`` carries the token, else (status, why)."""
        if self._digest is None:
            return (
                403,
                f"this action is disabled: no admin token is configured ({HOW_TO_CONFIGURE})",
            )
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return 401, "this action needs 'Authorization: Bearer <admin token>'"
        if not hmac.compare_digest(_digest(given.strip()), self._digest):
            return 403, "the bearer token is not this platform's admin token"
        return None

    def check(self, authorization: str | None) -> None:
        """Raise the 401/403 HTTPException of :meth:`refusal`, if any."""
        refused = self.refusal(authorization)
        if refused is not None:
            status, detail = refused
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            raise HTTPException(status_code=status, detail=detail, headers=headers)


def read_token(token_file: str | Path | None, token: str | None) -> str | None:
    """The token from ``token_file`` (stripped) if given, else ``token``; a named file that is
    missing or empty stops the service (a silently open or silently closed API is worse)."""
    if token_file:
        path = Path(token_file)
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise StartupError(f"admin token file {path}: {exc.strerror or exc}") from exc
        if not text:
            raise StartupError(f"admin token file {path} is empty")
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


# What the local runtime writes (its run dir, deploy/local/stack.py).
DEFAULT_TOKEN_FILE = Path(__file__).resolve().parents[2] / ".run" / "admin_token"


def client_token() -> str | None:
    """The admin token a client (CLI, demo, load test) sends, in the services' order: the file
    named by ``CASCADE_ADMIN_TOKEN_FILE``, else ``CASCADE_ADMIN_TOKEN``, else the local
    runtime's ``.run/admin_token`` when it exists."""
    named = os.environ.get("CASCADE_ADMIN_TOKEN_FILE")
    if not named and (token := os.environ.get("CASCADE_ADMIN_TOKEN")):
        return token
    try:
        return Path(named or DEFAULT_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def admin_headers(token: str | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` for ``token`` or :func:`client_token` (empty when
    there is none: the service then answers 401/403 saying so)."""
    token = token or client_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def ensure_token_file(path: Path) -> Path:
    """Create ``path`` with a fresh random token (mode 0600) unless it exists; return it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path
