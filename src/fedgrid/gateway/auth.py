"""Worker identity: verify a job's JWT with only its configured key and algorithms."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import jwt
import requests

from fedgrid.errors import Unavailable
from fedgrid.gateway.errors import Unauthenticated
from fedgrid.jobconfig import AuthenticationConfig

logger = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 16 * 1024
MAX_WORKER_ID_CHARS = 128
ENDPOINT_TIMEOUT = (2.0, 5.0)  # connect, read; seconds
LEEWAY_SECONDS = 5.0


def anonymous_worker_id() -> str:
    """A random id for a worker of a job without authentication."""
    return f"anon-{uuid.uuid4().hex}"


def check_subject(subject: object) -> str:
    """A token's sub as a worker id: printable text without path separators."""
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_WORKER_ID_CHARS:
        raise Unauthenticated(
            f"auth_token's sub must be a string of 1 to {MAX_WORKER_ID_CHARS} "
            "characters; it becomes the worker id"
        )
    if not subject.strip() or not subject.isprintable():
        raise Unauthenticated(
            "auth_token's sub contains control or invisible characters (or only "
            "spaces); it becomes the worker id, so use printable text"
        )
    if "/" in subject or "\\" in subject:
        raise Unauthenticated(
            "auth_token's sub contains a path separator ('/' or '\\'); it becomes "
            "the worker id, so use another character"
        )
    return subject


class WorkerAuthenticator:
    """Checks worker tokens against a job's `authentication` server config."""

    def __init__(
        self, session: requests.Session | None = None, timeout: Any = ENDPOINT_TIMEOUT
    ) -> None:
        self._http = session or requests.Session()
        self._timeout = timeout

    def identify(self, config: AuthenticationConfig | None, token: str | None) -> str:
        """The worker id: the verified token's `sub`, or a fresh random id."""
        if config is None:
            return anonymous_worker_id()
        if not token:
            raise Unauthenticated(
                "this job requires authentication: send auth_token, a JWT issued "
                "by the job's operator"
            )
        claims = self.verify(config, token)
        if config.endpoint is not None:
            self._confirm_with_endpoint(config, token)
        return str(claims["sub"])

    def verify(self, config: AuthenticationConfig, token: str) -> dict[str, Any]:
        """Verify signature and claims; raise Unauthenticated naming the problem."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated(
                f"auth_token must be a JWT of at most {MAX_TOKEN_CHARS} characters"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("auth_token is not a well-formed JWT") from exc
        algorithm = header.get("alg")
        if algorithm not in config.algorithms:
            raise Unauthenticated(
                f"auth_token is signed with {algorithm!r}; this job accepts only "
                f"{list(config.algorithms)}"
            )
        options: dict[str, Any] = {
            "require": ["sub"],
            "verify_aud": config.audience is not None,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                config.key(),
                algorithms=list(config.algorithms),
                audience=config.audience,
                options=options,  # type: ignore[arg-type]
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("auth_token has expired; get a new one") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("auth_token is not valid yet (nbf/iat)") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated(
                "auth_token was issued for another audience than this job's"
            ) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"auth_token lacks the claim {exc.claim!r}") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("auth_token's signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"auth_token is refused: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise Unauthenticated(
                "auth_token cannot be checked with this job's key"
            ) from exc
        check_subject(claims.get("sub"))
        return claims

    def _confirm_with_endpoint(self, config: AuthenticationConfig, token: str) -> None:
        assert config.endpoint is not None
        try:
            reply = self._http.request(
                config.method,
                config.endpoint,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            logger.warning(
                "[Gateway.Auth] verify endpoint unreachable endpoint=%s error=%s",
                config.endpoint,
                type(exc).__name__,
            )
            raise Unavailable(
                "the job's token verification endpoint cannot be reached; "
                "try again later"
            ) from exc
        if not 200 <= reply.status_code < 300:
            logger.info(
                "[Gateway.Auth] verify endpoint refused status=%s", reply.status_code
            )
            raise Unauthenticated(
                f"the job's verification endpoint refused the token "
                f"(HTTP {reply.status_code})"
            )
