"""Session tokens the gateway issues to workers, each scoped to one job."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from fedgrid.config import Settings
from fedgrid.errors import ConfigError
from fedgrid.gateway.errors import PermissionDenied, Unauthenticated

ALGORITHM = "HS256"
DEFAULT_TTL_SECONDS = 3600
MIN_SECRET_CHARS = 16
_ISSUER = "fedgrid-gateway"


@dataclass(frozen=True)
class WorkerSession:
    """Who a session token speaks for, and for which job."""

    worker_id: str
    job_id: str
    expires_at: float

    def require_job(self, job_id: str) -> None:
        """Refuse a session minted for another job."""
        if job_id != self.job_id:
            raise PermissionDenied(
                "this session token belongs to another job; authenticate for this "
                "job with POST /api/v1/auth"
            )


class SessionIssuer:
    """Signs and checks session JWTs with the gateway's own secret."""

    def __init__(self, secret: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"FEDGRID_SESSION_SECRET must have at least {MIN_SECRET_CHARS} "
                "characters"
            )
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionIssuer:
        """Build from FEDGRID_SESSION_SECRET, which has no default."""
        return cls(settings.require("session_secret"))

    def issue(self, worker_id: str, job_id: str) -> str:
        """A token carrying sub, job and exp."""
        now = int(time.time())
        claims = {
            "sub": worker_id,
            "job": job_id,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "iss": _ISSUER,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> WorkerSession:
        """The session a token carries, or Unauthenticated saying why not."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=_ISSUER,
                options={"require": ["sub", "job", "exp", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated(
                "the session token has expired; authenticate again"
            ) from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthenticated(
                "the session token is not valid; authenticate with POST /api/v1/auth"
            ) from exc
        worker_id, job_id = claims["sub"], claims["job"]
        if not isinstance(worker_id, str) or not isinstance(job_id, str):
            raise Unauthenticated("the session token's claims are malformed")
        return WorkerSession(
            worker_id=worker_id, job_id=job_id, expires_at=float(claims["exp"])
        )


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        raise Unauthenticated("send Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token
