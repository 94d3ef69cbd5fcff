"""Who an API request acts for: bearer headers, token checks, session JWTs and the session gate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Tuple

from .accounts import (
    API_TOKEN_PREFIX,
    INVALID_OR_EXPIRED,
    JWT_SHAPE,
    Accounts,
    Claims,
    User,
    jwt_claims_unverified,
)
from .messages import Reply, Request, error_reply
from .sessions import SESSION_LOCKED, SESSION_REVOKED, Sessions

GATE_STATUS = {SESSION_REVOKED: 401, SESSION_LOCKED: 423}


def bearer(header: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """Split an Authorization header the way the service does: (token, error)."""
    if not header:
        return None, "authorization header required"
    scheme, sep, token = header.partition(" ")
    token = token.strip()
    if scheme != "Bearer" or not sep or not token or " " in token:
        return None, "invalid authorization format"
    return token, None


def presented_token(header: Optional[str]) -> str:
    """The token exactly as a client presented it after "Bearer " ("" without a header)."""
    if not header:
        return ""
    scheme, sep, rest = header.partition(" ")
    return rest.strip() if sep and scheme == "Bearer" else header


def auth_kind(header: Optional[str]) -> str:
    """What the request log says about an Authorization header: none, api, jwt or other."""
    if not header:
        return "none"
    token, err = bearer(header)
    if err or token is None:
        return "other"
    if token.startswith(API_TOKEN_PREFIX):
        return "api"
    if JWT_SHAPE.match(token):
        return "jwt"
    return "other"


@dataclass(frozen=True)
class Principal:
    """The account an API request acts for, the kind of token, and the JWT's session."""

    user: User
    kind: str
    session_id: Optional[str] = None


class Auth:
    """Issues session JWTs and decides who a bearer token speaks for."""

    def __init__(self, accounts: Accounts, sessions: Sessions) -> None:
        """Work on these accounts and sessions."""
        self._accounts = accounts
        self._sessions = sessions

    def issue_jwt(
        self,
        username: str,
        lifetime: Optional[float] = None,
        exp: Optional[float] = None,
        *,
        ip_address: str,
        user_agent: str,
        foreign: bool = False,
    ) -> str:
        """Open a session for the user and sign a JWT naming it (foreign: a rejected key)."""
        claims = self.open_session(
            username, lifetime, exp, ip_address=ip_address, user_agent=user_agent
        )
        return self._accounts.sign(claims, foreign=foreign)

    def open_session(
        self,
        username: str,
        lifetime: Optional[float] = None,
        exp: Optional[float] = None,
        *,
        ip_address: str,
        user_agent: str,
    ) -> Claims:
        """Open a session for the user: the claims of the JWT that names it."""
        claims = self._accounts.new_claims(username, lifetime, exp)
        self._sessions.open(str(claims["sid"]), username, ip_address, user_agent)
        return claims

    def live(self, claims: Claims) -> bool:
        """Whether a JWT with these claims is unexpired and its session open (not revoked)."""
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or time.time() >= exp:
            return False
        return self._sessions.is_open(str(claims.get("sid")))

    def revoke(self, token: str, reason: str) -> None:
        """Revoke an API token (KeyError if unknown), or the session a JWT names."""
        if token.startswith(API_TOKEN_PREFIX):
            self._accounts.revoke_api_token(token)
            return
        sid = jwt_claims_unverified(token).get("sid")
        if not isinstance(sid, str) or not self._sessions.revoke(sid, reason):
            raise KeyError("unknown session")

    def gate(self, request: Request) -> Optional[Reply]:
        """Stop a request whose valid JWT names a revoked (401) or locked (423) session."""
        # Any other request passes (None); a JWT's session is then noted as last seen.
        token, err = bearer(request.authorization)
        if err or token is None or token.startswith(API_TOKEN_PREFIX):
            return None
        claims, err = self._accounts.verify_jwt(token)
        if claims is None:
            return None
        refused = self._sessions.use(str(claims.get("sid")), request.client_ip, request.user_agent)
        if refused in GATE_STATUS:
            return error_reply(GATE_STATUS[refused], refused)
        return None

    def authenticate(self, token: str) -> Tuple[Optional[Principal], str]:
        """(principal, "") for a live API token or JWT, else (None, the profile's error)."""
        # A JWT's revoked or locked session is the gate's business: it runs first.
        if token.startswith(API_TOKEN_PREFIX):
            user = self._accounts.check_api_token(token).user
            return (Principal(user, "api"), "") if user else (None, INVALID_OR_EXPIRED)
        if not JWT_SHAPE.match(token):
            return None, "unauthorized"
        claims, err = self._accounts.verify_jwt(token)
        if claims is None:
            return None, err or INVALID_OR_EXPIRED
        sid = str(claims.get("sid"))
        user = self._accounts.user_by_id(claims.get("user_id"))
        if user is None or self._sessions.owner(sid) != user.username:
            return None, INVALID_OR_EXPIRED
        return Principal(user, "jwt", sid), ""
