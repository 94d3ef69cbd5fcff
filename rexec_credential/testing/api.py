"""The stand-in's /api/* routes: profile, token validation and sessions."""

from __future__ import annotations

import re
from typing import Callable, Dict, Optional, Tuple

from .accounts import API_TOKEN_PREFIX, LIMITS, Accounts
from .auth import Auth, Principal, bearer
from .messages import Reply, Request, error_reply, json_reply, not_allowed
from .sessions import Sessions

_SESSION_PATH = re.compile(r"^/api/sessions/([^/]+)$")
_READ = "GET, HEAD"


class Api:
    """Answers every request under /api (faults aside, which come first)."""

    def __init__(self, accounts: Accounts, sessions: Sessions, auth: Auth) -> None:
        """Serve these accounts and sessions; `legacy_profile` selects the old profile shape."""
        self.legacy_profile = False
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
        allow, handler = route
        if request.method not in allow.split(", "):
            return not_allowed(allow)
        token, err = bearer(request.authorization)
        if err or token is None:
            return error_reply(401, err or "unauthorized")
        return handler(token)

    def _route(self, path: str) -> Optional[Tuple[str, Callable[[str], Reply]]]:
        fixed: Dict[str, Tuple[str, Callable[[str], Reply]]] = {
            "/api/profile": (_READ, self._profile),
            "/api/tokens/validate": (_READ, self._validate),
            "/api/sessions": (_READ, self._list_sessions),
        }
        if path in fixed:
            return fixed[path]
        match = _SESSION_PATH.match(path)
        if match is None:
            return None
        session_id = match.group(1)
        return "DELETE", lambda token: self._delete_session(token, session_id)

    def _principal(self, token: str) -> Tuple[Optional[Principal], Reply]:
        principal, err = self._auth.authenticate(token)
        return principal, error_reply(401, err)

    def _profile(self, token: str) -> Reply:
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

    def _validate(self, token: str) -> Reply:
        if not token.startswith(API_TOKEN_PREFIX):
            return error_reply(401, "invalid token")
        user, err = self._accounts.check_api_token(token)
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
                "scopes": ["read", "write"],
            },
            user=user.username,
        )

    def _list_sessions(self, token: str) -> Reply:
        principal, refusal = self._principal(token)
        if principal is None:
            return refusal
        username = principal.user.username
        listing = self._sessions.listing(username, current=principal.session_id)
        return json_reply(200, {"sessions": listing}, user=username)

    def _delete_session(self, token: str, session_id: str) -> Reply:
        principal, refusal = self._principal(token)
        if principal is None:
            return refusal
        username = principal.user.username
        reason = "logout" if session_id == principal.session_id else "revoked by user"
        if not self._sessions.revoke(session_id, reason, username=username):
            return error_reply(404, "session not found", user=username)
        return json_reply(200, {"revoked": True}, user=username)
