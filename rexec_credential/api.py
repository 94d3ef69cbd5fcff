"""The Rexec HTTP client — the only module that imports requests.

Maps every answer to a value or a RexecError: a refused token → TokenRejected carrying
the server's cleaned `error` text; 5xx after retries, non-JSON, refused, timeout →
ServiceError. Every text taken from an answer goes through tokens.clean with the token
the request carried, so nothing the server echoes can show a token.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import quote

import requests
from urllib3.exceptions import ProtocolError

from . import __version__, hosts, precedence, tokens
from .errors import AuthError, ServiceError, TokenRejected

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Mapping, Optional, TypedDict

    JsonObject = Dict[str, Any]

    class Profile(TypedDict):
        """A user as the service describes it, every text cleaned for display."""

        id: Optional[str]
        username: str
        email: Optional[str]
        name: Optional[str]
        tier: Optional[str]
        is_admin: bool

    class DeviceToken(TypedDict):
        """An API token the service made for this machine (its text shown only this once)."""

        token: str
        id: str
        name: str
        expires: Optional[int]  # Unix seconds; None: it never expires


CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
TOTAL_BUDGET = 40.0  # a command gives up within 40 s in all, whatever the server does
TRIES = 3
RETRY_STATUSES = (502, 503, 504)
BACKOFF = (0.5, 1.0)
MAX_BODY = 1 << 20  # bytes; a profile is well under 1 KiB


class Client:
    """Talks to one Rexec host with a bearer token."""

    def __init__(
        self,
        host: str,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        trace: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.host = hosts.normalise(host)
        hosts.require_secure(self.host, precedence.insecure_http_allowed(env))
        self._clock, self._sleep = clock, sleep
        self._trace = trace  # each request: method, path, status, time (REXEC_TRACE)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"rexec-credential/{__version__}"
        # Verification stays on. The CA bundle comes from the context's env, as requests
        # would read it from os.environ; passed per request so os.environ cannot override it.
        self._verify: str | bool = precedence.ca_bundle(env) or True

    def profile(self, token: str) -> Profile:
        """GET /api/profile: the user's fields, from the nested or the legacy flat shape."""
        body = self._request("GET", "/api/profile", token)
        user = body.get("user")
        return _fields(user if isinstance(user, dict) else body, token)

    def validate_api_token(self, token: str) -> Profile:
        """GET /api/tokens/validate: the token's user, or TokenRejected."""
        body = self._request("GET", "/api/tokens/validate", token)
        if body.get("valid") is not True:
            reason = _error_text(body, token) or "not valid"
            raise TokenRejected(f"Invalid token: {reason}", reason)
        return _fields(body, token)

    def create_token(self, token: str, name: str, expires_in: int) -> DeviceToken:
        """POST /api/tokens: a new API token of the token's user, named, expiring after
        `expires_in` days (0: never). ServiceError when the service made none (no token
        API: 404, 405, 501), TokenRejected when it refused (401, 403)."""
        request: JsonObject = {"name": name}
        if expires_in > 0:
            request["expires_in"] = expires_in
        body = self._request("POST", "/api/tokens", token, done=(201,), json=request)
        made, token_id = body.get("token"), body.get("id")
        if not (isinstance(made, str) and tokens.kind(made) == tokens.API):
            raise ServiceError(f"Rexec service at {self.host} answered no API token")
        if not (isinstance(token_id, str) and token_id.isprintable() and 0 < len(token_id) <= 200):
            raise ServiceError(f"Rexec service at {self.host} answered no token id")
        named = _text(body.get("name"), made) or name
        return {"token": made, "id": token_id, "name": named, "expires": _instant(body)}

    def revoke_token(self, token: str, token_id: str, budget: float) -> None:
        """DELETE /api/tokens/<id>: the token is gone when the service answers 200, or 401
        (it no longer works) or 404 (already revoked, or unknown)."""
        self._request(
            "DELETE",
            f"/api/tokens/{quote(token_id, safe='')}",
            token,
            budget,
            done=(200, 401, 404),
            shown="/api/tokens/<token id>",
        )

    def revoke_session(self, token: str, session_id: str, budget: float) -> None:
        """DELETE /api/sessions/<id>: the session is gone when the service answers 200, or
        401 or 404 (already ended, or unknown); ServiceError or TokenRejected otherwise."""
        self._request(
            "DELETE",
            f"/api/sessions/{quote(session_id, safe='')}",
            token,
            budget,
            done=(200, 401, 404),
            shown="/api/sessions/<session id>",
        )

    def _request(
        self,
        method: str,
        path: str,
        token: str,
        budget: float = TOTAL_BUDGET,
        done: tuple[int, ...] = (200,),
        json: JsonObject | None = None,
        shown: str = "",
    ) -> JsonObject:
        if not (token.isascii() and token.isprintable()):
            # No HTTP header can carry it (and http.client's error would quote it).
            raise AuthError("Invalid token: malformed; " + tokens.VALID_FORMS)
        url = self.host + path
        deadline = self._clock() + budget
        for attempt in range(TRIES):
            last = attempt == TRIES - 1
            remaining = deadline - self._clock()
            timeout = (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))
            try:
                status, body = self._exchange(
                    method, url, token, timeout, deadline, self.host + (shown or path), json
                )
            except requests.exceptions.SSLError as exc:
                raise ServiceError(_tls_problem(self.host, exc)) from None
            except requests.exceptions.ConnectTimeout:
                if last or not self._can_wait(attempt, deadline):
                    raise ServiceError(
                        f"cannot reach Rexec service at {self.host}: connection timed out"
                    ) from None
                continue
            except (requests.exceptions.Timeout, _TooSlow):
                # The server took the request and did not answer: asking again would only
                # double the wait (and the request may have been acted on).
                raise ServiceError(f"Rexec service at {self.host} did not answer in time") from None
            except requests.exceptions.RequestException as exc:
                if last or not self._can_wait(attempt, deadline):
                    raise ServiceError(
                        f"cannot reach Rexec service at {self.host}: {_reason(exc)}"
                    ) from None
                continue
            retry = status in RETRY_STATUSES and not last
            if retry and self._can_wait(attempt, deadline):
                continue
            return self._interpret(status, body, token, done)
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self,
        method: str,
        url: str,
        token: str,
        timeout: tuple[float, float],
        deadline: float,
        shown: str,
        json: JsonObject | None = None,
    ) -> tuple[int, bytes]:
        """One request: its status and body; traced as method, address (`shown`: no
        session id), status or failure, and milliseconds."""
        started = self._clock()
        try:
            # auth= (not a header) so requests never swaps in ~/.netrc credentials.
            response = self._session.request(
                method,
                url,
                auth=_Bearer(token),
                timeout=timeout,
                allow_redirects=False,
                verify=self._verify,
                stream=True,
                json=json,
            )
            body = self._read(response, deadline)
        except BaseException as exc:
            elapsed = round((self._clock() - started) * 1000)
            self._trace(f"HTTP {method} {shown}: {_failure(exc)} after {elapsed} ms")
            raise
        elapsed = round((self._clock() - started) * 1000)
        self._trace(f"HTTP {method} {shown}: {response.status_code} in {elapsed} ms")
        return response.status_code, body

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        """The body, within the deadline and MAX_BODY (a server dripping bytes is cut off)."""
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(8192):
                size += len(chunk)
                if size > MAX_BODY:
                    break
                chunks.append(chunk)
                if self._clock() > deadline:
                    raise _TooSlow
        finally:
            response.close()
        return b"".join(chunks)

    def _can_wait(self, attempt: int, deadline: float) -> bool:
        pause = BACKOFF[min(attempt, len(BACKOFF) - 1)]
        if self._clock() + pause >= deadline:
            return False
        self._sleep(pause)
        return True

    def _interpret(self, status: int, raw: bytes, token: str, done: tuple[int, ...]) -> JsonObject:
        body = _json(raw)
        if status in done and status != 200 and status != 201:
            return body if isinstance(body, dict) else {}
        if status in (401, 403, 423):
            reason = _error_text(body, token) if isinstance(body, dict) else ""
            raise _rejection(status, reason)
        if status not in done:
            raise ServiceError(f"Rexec service at {self.host} answered HTTP {status}")
        if not isinstance(body, dict):
            raise ServiceError(
                f"Rexec service at {self.host} answered with something that is not JSON"
            )
        return body


class _TooSlow(Exception):
    """The body did not arrive within the command's budget."""


class _Bearer(requests.auth.AuthBase):
    """Authorization: Bearer <token>."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_Bearer(<redacted>)"


def _instant(body: Mapping[str, Any]) -> int | None:
    """`expires_at` of an answer (RFC 3339, as Go writes it) in Unix seconds; None when
    null, absent or unreadable (then the token is taken to have no known expiry)."""
    import calendar
    import re

    value = body.get("expires_at")
    if not isinstance(value, str):
        return None
    match = re.fullmatch(
        r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.\d+)?([Zz]|([+-])(\d\d):(\d\d))",
        value,
    )
    if match is None:
        return None
    fields = [int(match.group(i)) for i in range(1, 7)]
    try:
        seconds = calendar.timegm((*fields, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if match.group(8):  # an offset east of UTC is later there than here
        offset = int(match.group(9)) * 3600 + int(match.group(10)) * 60
        seconds -= offset if match.group(8) == "+" else -offset
    return seconds


def _json(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def _rejection(status: int, reason: str) -> TokenRejected:
    if reason == TokenRejected.SESSION_REVOKED:
        return TokenRejected(
            "Invalid token: the session of this login was ended (session_revoked)", reason
        )
    if status == 423 or reason == TokenRejected.SESSION_LOCKED:
        return TokenRejected(
            "Account locked: the screen lock is on for this account (session_locked)",
            TokenRejected.SESSION_LOCKED,
        )
    reason = reason or "unauthorized"
    return TokenRejected(f"Invalid token: {reason}", reason)


def _fields(user: Mapping[str, Any], token: str) -> Profile:
    username = _text(user.get("username"), token)
    if not username:
        raise ServiceError("Rexec service answered a profile without a username")
    return {
        "id": _text(user.get("id"), token),
        "username": username,
        "email": _text(user.get("email"), token),
        "name": _text(user.get("name"), token),
        "tier": _text(user.get("tier"), token),
        "is_admin": user.get("is_admin") is True,
    }


def _text(value: object, token: str) -> str | None:
    """A text field of the answer, cleaned; None when absent, empty or not a text."""
    if not isinstance(value, str):
        return None
    return tokens.clean(value, [token]) or None


def _error_text(body: Mapping[str, Any], token: str) -> str:
    error = body.get("error")
    return tokens.clean(error, [token]) if isinstance(error, str) else ""


def _tls_problem(host: str, exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            f"cannot verify the TLS certificate of {host} (set REQUESTS_CA_BUNDLE for a private CA)"
        )
    if "hostname" in text and "match" in text:
        return f"the TLS certificate of {host} is for another host name"
    return (
        f"the server at {host} did not answer with TLS "
        "(wrong port or scheme? use http:// only for a loopback stand-in)"
    )


def _failure(exc: BaseException) -> str:
    """What went wrong with a request, in a trace's words."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS failed"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, (requests.exceptions.Timeout, _TooSlow)):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.RequestException):
        return _reason(exc)
    return type(exc).__name__  # KeyboardInterrupt, ...


def _reason(exc: Exception) -> str:
    """Why a request found no answer, from the types of the errors it wraps (requests wraps
    urllib3's, which wrap the socket's): never from their texts, which hold the URL and
    differ between systems and versions."""
    wrapped = _wrapped(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in wrapped):
        return "connection refused"
    if any(isinstance(e, socket.gaierror) and e.errno == socket.EAI_NONAME for e in wrapped):
        return "host not found"
    if any(isinstance(e, (ConnectionResetError, ConnectionAbortedError)) for e in wrapped):
        return "connection dropped"  # a reset, or http.client's RemoteDisconnected
    if isinstance(exc, requests.exceptions.ConnectionError) and any(
        isinstance(e, ProtocolError) for e in wrapped
    ):
        # The connection ended, or spoke no HTTP, before the answer's headers were read
        # (urllib3's "Connection aborted."); a body cut short is ChunkedEncodingError.
        return "connection dropped"
    return "connection failed"


def _wrapped(exc: BaseException) -> list[BaseException]:
    """exc and every error beneath it: causes, contexts, urllib3's `reason` and the errors
    passed as arguments (requests' ConnectionError holds urllib3's, and a ProtocolError the
    socket's)."""
    found: list[BaseException] = []
    pending: list[object] = [exc]
    while pending and len(found) < 50:  # a bound, whatever an exception's graph holds
        item = pending.pop()
        if not isinstance(item, BaseException) or any(item is seen for seen in found):
            continue
        found.append(item)
        pending.extend((item.__cause__, item.__context__, getattr(item, "reason", None)))
        pending.extend(item.args)
    return found
