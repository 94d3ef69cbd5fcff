"""The stand-in's /api/* routes: profile, sessions, and API tokens (create, list, revoke)."""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

from .accounts import API_TOKEN_PREFIX, LIMITS, Accounts, ApiToken
from .auth import Auth, Principal, bearer
from .messages import Reply, Request, error_reply, go_time, json_reply, not_allowed
from .sessions import Sessions

_SESSION_PATH = re.compile(r"^/api/sessions/([^/]+)$")
_TOKEN_PATH = re.compile(r"^/api/tokens/([^/]+)$")
_PERMANENT_PATH = re.compile(r"^/api/tokens/([^/]+)/permanent$")
_READ = "GET, HEAD"

NAME_REQUIRED = "name is required"
TOKEN_NOT_FOUND = "token not found"
SAVE_IT = "Save this token now. You won't be able to see it again!"
DAY_NS = 86400 * 10**9
YEAR_10000_NS = 253402300800 * 10**9  # 10000-01-01T00:00:00Z: Go's JSON cannot write it
NAME_MAX = 255  # name VARCHAR(255)
_INT64 = (-(2**63), 2**63 - 1)

Handler = Callable[[Request, str], Reply]


class _Object(List[Tuple[str, Any]]):
    """A JSON object's members in order (duplicates kept), as Go's decoder meets them."""


def _go_fold(name: str) -> str:
    """A key as encoding/json folds it to match a field case-insensitively."""
    # ASCII letters fold to upper case; of the other runes only the long s and the Kelvin
    # sign share a fold set with an ASCII letter (its smallest member is what counts).
    special = {"\u017f": "S", "\u212a": "K"}
    return "".join(special.get(c, c.upper() if c.isascii() else c) for c in name)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def bind_create(body: bytes) -> Tuple[str, Optional[List[str]], Optional[int]]:
    """(name, scopes, expires_in) as gin's ShouldBindJSON fills CreateTokenRequest."""
    # ValueError for whatever makes the bind fail: no JSON value, a member of the wrong type,
    # a missing or empty name. Like Go's json.Decoder: the first value only (what follows is
    # never read), keys matched case-insensitively, the last of duplicates wins, a null
    # leaves a string as it was, invalid UTF-8 read as U+FFFD, unknown keys ignored.
    text = body.decode("utf-8", "replace")
    start = len(text) - len(text.lstrip(" \t\r\n"))
    decoder = json.JSONDecoder(object_pairs_hook=_Object, parse_constant=_reject_constant)
    value, _ = decoder.raw_decode(text, start)  # JSONDecodeError is a ValueError
    name = ""
    scopes: Optional[List[str]] = None
    expires_in: Optional[int] = None
    if value is not None and not isinstance(value, _Object):
        raise ValueError("not a JSON object")
    for key, member in value or ():
        field = _go_fold(key)
        if field == "NAME":
            if member is not None:
                if not isinstance(member, str):
                    raise ValueError("name is not a string")
                name = member
        elif field == "SCOPES":
            if member is not None and (not isinstance(member, list) or isinstance(member, _Object)):
                raise ValueError("scopes is not a list")
            if member is not None and not all(s is None or isinstance(s, str) for s in member):
                raise ValueError("scopes holds something other than strings")
            scopes = None if member is None else ["" if s is None else s for s in member]
        elif field == "EXPIRES_IN":
            if member is not None and (
                isinstance(member, bool)
                or not isinstance(member, int)
                or not _INT64[0] <= member <= _INT64[1]
            ):
                raise ValueError("expires_in is not an integer")
            expires_in = member
    if not name:
        raise ValueError(NAME_REQUIRED)
    return name, scopes, expires_in


class Api:
    """Answers every request under /api (faults aside, which come first)."""

    def __init__(self, accounts: Accounts, sessions: Sessions, auth: Auth) -> None:
        """Serve these accounts and sessions, with the current profile shape and token API."""
        # legacy_profile: the old profile shape. token_api False: an older service without
        # the token API (/api/tokens and /api/tokens/<id>... answer 404; validate stays).
        self.legacy_profile = False
        self.token_api = True
        self._accounts = accounts
        self._sessions = sessions
        self._auth = auth

    def handle(self, request: Request) -> Reply:
        """Answer one API request: the session gate, then its route."""
        stopped = self._auth.gate(request)
        if stopped is not None:
            return stopped
        route = self._route(request.path)
        if route is None:
            return error_reply(404, "not found")
        allow, handlers = route
        handler = handlers.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            return not_allowed(allow)
        token, err = bearer(request.authorization)
        if err or token is None:
            return error_reply(401, err or "unauthorized")
        return handler(request, token)

    def _route(self, path: str) -> Optional[Tuple[str, Dict[str, Handler]]]:
        """(the Allow header, the handler of each method) for a path, None if unknown."""
        if path == "/api/profile":
            return _READ, {"GET": self._profile}
        if path == "/api/sessions":
            return _READ, {"GET": self._list_sessions}
        if path == "/api/tokens/validate":
            if not self.token_api:
                return _READ, {"GET": self._validate}
            # The service's router takes DELETE /api/tokens/validate for DELETE /api/tokens/:id.
            return "GET, HEAD, DELETE", {
                "GET": self._validate,
                "DELETE": lambda r, t: self._revoke_token(r, t, "validate"),
            }
        match = _SESSION_PATH.match(path)
        if match is not None:
            session_id = match.group(1)
            return "DELETE", {"DELETE": lambda r, t: self._delete_session(r, t, session_id)}
        if not self.token_api:
            return None
        if path == "/api/tokens":
            return "GET, HEAD, POST", {"GET": self._list_tokens, "POST": self._create_token}
        match = _TOKEN_PATH.match(path)
        if match is not None:
            token_id = unquote(match.group(1))
            return "DELETE", {"DELETE": lambda r, t: self._revoke_token(r, t, token_id)}
        match = _PERMANENT_PATH.match(path)
        if match is not None:
            token_id = unquote(match.group(1))
            return "DELETE", {"DELETE": lambda r, t: self._delete_token(r, t, token_id)}
        return None

    def _principal(self, token: str) -> Tuple[Optional[Principal], Reply]:
        principal, err = self._auth.authenticate(token)
        return principal, error_reply(401, err)

    def _profile(self, request: Request, token: str) -> Reply:
        principal, refusal = self._principal(token)
        if principal is None:
            return refusal
        user = principal.user
        profile = user.profile()
        if self.legacy_profile:
            return json_reply(200, profile, user=user.username)
        stats = {"containers": 0, "active_sessions": 0, "snippets": 0}
        limits = dict(LIMITS.get(user.tier, LIMITS["free"]))
        return json_reply(
            200, {"user": profile, "stats": stats, "limits": limits}, user=user.username
        )

    def _validate(self, request: Request, token: str) -> Reply:
        if not token.startswith(API_TOKEN_PREFIX):
            return error_reply(401, "invalid token")
        user, err, scopes = self._accounts.check_api_token(token)
        if user is None:
            return error_reply(401, err or "invalid token")
        return json_reply(
            200,
            {
                "valid": True,
                "user_id": user.id,
                "username": user.username,
                "email": user.email,
                "tier": user.tier,
                "scopes": list(scopes),
            },
            user=user.username,
        )

    def _list_sessions(self, request: Request, token: str) -> Reply:
        principal, refusal = self._principal(token)
        if principal is None:
            return refusal
        username = principal.user.username
        listing = self._sessions.listing(username, current=principal.session_id)
        return json_reply(200, {"sessions": listing}, user=username)

    def _delete_session(self, request: Request, token: str, session_id: str) -> Reply:
        principal, refusal = self._principal(token)
        if principal is None:
            return refusal
        username = principal.user.username
        reason = "logout" if session_id == principal.session_id else "revoked by user"
        if not self._sessions.revoke(session_id, reason, username=username):
            return error_reply(404, "session not found", user=username)
        return json_reply(200, {"revoked": True}, user=username)

    # -- API tokens --------------------------------------------------------------------------

    def _create_token(self, request: Request, token: str) -> Reply:
        principal, refusal = self._principal(token)
        if principal is None:
            return refusal
        username = principal.user.username
        try:
            name, scopes, expires_in = bind_create(request.body)
        except ValueError:
            return error_reply(400, NAME_REQUIRED, user=username)
        # The handler reads the clock for the expiry before the store reads it for created_at.
        expires_ns = None
        if expires_in is not None and expires_in > 0:
            expires_ns = time.time_ns() + expires_in * DAY_NS
        stored = [name, *(scopes or ())]
        if len(name) > NAME_MAX or any("\x00" in text for text in stored):
            # PostgreSQL refuses the row: too long for VARCHAR(255), or a NUL in its text.
            return error_reply(500, "failed to create token", user=username)
        made, record = self._accounts.create_api_token(username, name, scopes, expires_ns)
        if not _writable(record):
            # Stored, but Go's JSON cannot write a year past 9999: 201 with an empty body.
            return Reply(201, b"", "application/json", user=username)
        body = {  # a Go map: written with its keys sorted
            "created_at": go_time(record.created_ns),
            "expires_at": None if record.expires_ns is None else go_time(record.expires_ns),
            "id": record.id,
            "message": SAVE_IT,
            "name": record.name,
            "scopes": list(record.scopes),
            "token": made,
            "token_prefix": record.prefix,
        }
        return json_reply(201, body, user=username)

    def _list_tokens(self, request: Request, token: str) -> Reply:
        principal, refusal = self._principal(token)
        if principal is None:
            return refusal
        username = principal.user.username
        records = self._accounts.api_tokens(username)
        if not all(_writable(record) for record in records):
            return Reply(200, b"", "application/json", user=username)
        # A Go nil slice when there is none: {"tokens": null}.
        listing = [record.listing() for record in records] or None
        return json_reply(200, {"tokens": listing}, user=username)

    def _revoke_token(self, request: Request, token: str, token_id: str) -> Reply:
        principal, refusal = self._principal(token)
        if principal is None:
            return refusal
        username = principal.user.username
        if not self._accounts.revoke_api_token_by_id(username, token_id):
            return error_reply(404, TOKEN_NOT_FOUND, user=username)
        return json_reply(200, {"message": "token revoked"}, user=username)

    def _delete_token(self, request: Request, token: str, token_id: str) -> Reply:
        principal, refusal = self._principal(token)
        if principal is None:
            return refusal
        username = principal.user.username
        if not self._accounts.delete_api_token_by_id(username, token_id):
            return error_reply(404, TOKEN_NOT_FOUND, user=username)
        return json_reply(200, {"message": "token deleted"}, user=username)


def _writable(record: ApiToken) -> bool:
    """Whether Go's JSON can write the record's times (none past the year 9999)."""
    return record.expires_ns is None or record.expires_ns < YEAR_10000_NS
