"""The Rexec HTTP client (SPEC §2) — the only module that imports requests.

Maps every answer to a profile or a RexecError: 401/403 → AuthError carrying the
server's `error` text; 5xx after retries, non-JSON, refused, timeout → ServiceError.
"""

from __future__ import annotations

import time

import requests

from . import __version__, hosts, tokens
from .errors import AuthError, ServiceError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
TOTAL_BUDGET = 60.0  # a command gives up within 60 s in all (SPEC §4)
TRIES = 3
RETRY_STATUSES = (502, 503, 504)
BACKOFF = (0.5, 1.0)
PROFILE_FIELDS = ("id", "username", "email", "name", "tier", "is_admin")


class Client:
    """Talks to one Rexec host with a bearer token."""

    def __init__(self, host: str, env: Mapping[str, str],
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.host = hosts.normalise(host)
        hosts.require_secure(self.host, env)
        self._clock, self._sleep = clock, sleep
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"rexec-credential/{__version__}"
        # Verification stays on. The CA bundle comes from the context's env, as requests
        # would read it from os.environ; passed per request so os.environ cannot override it.
        self._verify = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or True

    def profile(self, token: str) -> dict:
        """GET /api/profile: the user's fields, from the nested or the legacy flat shape."""
        body = self._get("/api/profile", token)
        user = body.get("user") if isinstance(body.get("user"), dict) else body
        return _fields(user)

    def validate_api_token(self, token: str) -> dict:
        """GET /api/tokens/validate: the token's user, or AuthError."""
        body = self._get("/api/tokens/validate", token)
        if body.get("valid") is not True:
            raise AuthError(f"Invalid token: {_error_text(body) or 'not valid'}")
        return _fields(body)

    def _get(self, path: str, token: str) -> dict:
        url = self.host + path
        deadline = self._clock() + TOTAL_BUDGET
        for attempt in range(TRIES):
            last = attempt == TRIES - 1
            remaining = deadline - self._clock()
            timeout = (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))
            try:
                # auth= (not a header) so requests never swaps in ~/.netrc credentials.
                response = self._session.get(
                    url, auth=_Bearer(token), timeout=timeout, allow_redirects=False,
                    verify=self._verify,
                )
            except requests.exceptions.SSLError:
                raise ServiceError(
                    f"cannot verify the TLS certificate of {self.host} "
                    "(set REQUESTS_CA_BUNDLE for a private CA)"
                ) from None
            except requests.exceptions.Timeout:
                if last or not self._can_wait(attempt, deadline):
                    raise ServiceError(
                        f"Rexec service at {self.host} did not answer in time"
                    ) from None
                continue
            except requests.exceptions.RequestException as exc:
                if last or not self._can_wait(attempt, deadline):
                    raise ServiceError(
                        f"cannot reach Rexec service at {self.host}: {_reason(exc)}"
                    ) from None
                continue
            retry = response.status_code in RETRY_STATUSES and not last
            if retry and self._can_wait(attempt, deadline):
                continue
            return self._interpret(response, token)
        raise AssertionError("unreachable")  # pragma: no cover

    def _can_wait(self, attempt: int, deadline: float) -> bool:
        pause = BACKOFF[min(attempt, len(BACKOFF) - 1)]
        if self._clock() + pause >= deadline:
            return False
        self._sleep(pause)
        return True

    def _interpret(self, response: requests.Response, token: str) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if status in (401, 403):
            reason = _error_text(body) if isinstance(body, dict) else ""
            reason = reason.replace(token, tokens.redact(token)) if token else reason
            raise AuthError(f"Invalid token: {reason or 'unauthorized'}")
        if status != 200:
            raise ServiceError(f"Rexec service at {self.host} answered HTTP {status}")
        if not isinstance(body, dict):
            raise ServiceError(
                f"Rexec service at {self.host} answered with something that is not JSON"
            )
        return body


class _Bearer(requests.auth.AuthBase):
    """Authorization: Bearer <token> (SPEC §2)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_Bearer(<redacted>)"


def _fields(user: Mapping) -> dict:
    fields = {k: user.get(k) for k in PROFILE_FIELDS}
    if not isinstance(fields["username"], str) or not fields["username"]:
        raise ServiceError("Rexec service answered a profile without a username")
    fields["is_admin"] = user.get("is_admin") is True
    return fields


def _error_text(body: Mapping) -> str:
    error = body.get("error")
    return " ".join(error.split())[:200] if isinstance(error, str) else ""


def _reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "host not found"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text:
        return "connection dropped"
    return "connection failed"
