"""The stand-in's accounts: users, API tokens, and signing and checking JWTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, NamedTuple, Optional, Tuple

from .messages import iso_time

API_TOKEN_PREFIX = "rexec_"
INVALID_OR_EXPIRED = "Invalid or expired token"
BAD_SIGNATURE = "token signature is invalid"
JWT_EXPIRED = "token is expired"

JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")

LIMITS: Dict[str, Dict[str, int]] = {
    "free": {"containers": 2, "memory_mb": 512, "cpu_cores": 1, "session_minutes": 60},
    "pro": {"containers": 10, "memory_mb": 4096, "cpu_cores": 4, "session_minutes": 1440},
}

Claims = Dict[str, Any]


class DemoUser(NamedTuple):
    """An account every new stand-in starts with."""

    username: str
    email: str
    name: str
    tier: str
    is_admin: bool
    password: str


DEMO_USERS: Tuple[DemoUser, ...] = (
    DemoUser("johndoe", "johndoe@example.com", "John Doe", "pro", True, "hunter2"),
    DemoUser("janedoe", "jane@example.com", "Jane Doe", "free", False, "correct-horse"),
)


def b64e(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(segment: str) -> bytes:
    """Decode unpadded base64url; ValueError for anything else."""
    if not _B64URL.match(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def jwt_claims_unverified(token: str) -> Claims:
    """The payload of a JWT, signature not checked; ValueError if it is not one."""
    try:
        claims = json.loads(b64d(token.split(".")[1]))
    except (ValueError, IndexError):
        raise ValueError("not a token issued by this service") from None
    if not isinstance(claims, dict):
        raise ValueError("not a token issued by this service")
    return claims


@dataclass
class User:
    """A Rexec account known to the stand-in."""

    username: str
    email: str
    name: str
    tier: str = "free"
    is_admin: bool = False
    password: str = "pw"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=iso_time)

    def profile(self) -> Dict[str, Any]:
        """The user object as /api/profile answers it."""
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "name": self.name,
            "tier": self.tier,
            "is_admin": self.is_admin,
            "created_at": self.created_at,
        }


@dataclass
class _ApiToken:
    username: str
    expires_at: Optional[float] = None
    revoked: bool = False
    created_at: float = field(default_factory=time.time)


class Accounts:
    """The users, their API tokens (kept as sha256 only) and the JWT signing key."""

    def __init__(self, jwt_lifetime: int = 3600) -> None:
        """Start with the demo users."""
        self.users: Dict[str, User] = {}
        self.jwt_lifetime = jwt_lifetime
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)
        self._foreign_key = secrets.token_bytes(32)
        self._api_tokens: Dict[str, _ApiToken] = {}
        for demo in DEMO_USERS:
            self.add_user(
                demo.username,
                demo.email,
                tier=demo.tier,
                is_admin=demo.is_admin,
                password=demo.password,
                name=demo.name,
            )

    # -- users -------------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        email: str,
        tier: str = "free",
        is_admin: bool = False,
        password: str = "pw",  # noqa: S107 (the stand-in's demo accounts)
        name: Optional[str] = None,
    ) -> User:
        """Create an account; raises ValueError if the username exists."""
        user = User(
            username=username,
            email=email,
            name=name if name is not None else username,
            tier=tier,
            is_admin=is_admin,
            password=password,
        )
        with self._lock:
            if username in self.users:
                raise ValueError(f"user {username!r} already exists")
            self.users[username] = user
        return user

    def user(self, username: str) -> User:
        """The account named `username`; KeyError if there is none."""
        with self._lock:
            try:
                return self.users[username]
            except KeyError:
                raise KeyError(f"unknown user {username!r}") from None

    def user_by_id(self, user_id: object) -> Optional[User]:
        """The account whose id is `user_id`, if any."""
        with self._lock:
            return next((u for u in self.users.values() if u.id == user_id), None)

    def sign_in(self, username: str, password: str) -> Optional[User]:
        """The account if the password is right, else None."""
        with self._lock:
            user = self.users.get(username)
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            return None
        return user

    # -- API tokens --------------------------------------------------------------------------

    def mint_api_token(self, username: str, expires_at: Optional[float] = None) -> str:
        """Issue an API token ("rexec_" + 64 hex); only its sha256 is kept."""
        self.user(username)
        token = API_TOKEN_PREFIX + secrets.token_hex(32)
        with self._lock:
            self._api_tokens[_sha256(token)] = _ApiToken(username, expires_at)
        return token

    def revoke_api_token(self, token: str) -> None:
        """Revoke an API token; KeyError if it was never issued."""
        with self._lock:
            record = self._api_tokens.get(_sha256(token))
            if record is None:
                raise KeyError("unknown API token")
            record.revoked = True

    def check_api_token(self, token: str) -> Tuple[Optional[User], Optional[str]]:
        """(user, None) for a live API token, else (None, the validate endpoint's error)."""
        with self._lock:
            record = self._api_tokens.get(_sha256(token))
            if record is None:
                return None, "invalid token"
            if record.revoked:
                return None, "token revoked"
            if record.expires_at is not None and time.time() >= record.expires_at:
                return None, "token expired"
            user = self.users.get(record.username)
        return (user, None) if user is not None else (None, "invalid token")

    # -- JWTs --------------------------------------------------------------------------------

    def new_claims(
        self, username: str, lifetime: Optional[float] = None, exp: Optional[float] = None
    ) -> Claims:
        """The service's claims for a new JWT with a fresh sid (32 hex); exp overrides lifetime."""
        user = self.user(username)
        now = int(time.time())
        if exp is None:
            exp = now + (self.jwt_lifetime if lifetime is None else lifetime)
        return {
            "user_id": user.id,
            "email": user.email,
            "username": user.username,
            "tier": user.tier,
            "guest": False,
            "subscription_active": user.tier != "free",
            "exp": int(exp),
            "iat": now,
            "sid": secrets.token_hex(16),
        }

    def sign(self, claims: Claims, foreign: bool = False) -> str:
        """An HS256 JWT of `claims`; foreign=True signs with a key the service rejects."""
        key = self._foreign_key if foreign else self._key
        header = b64e(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = b64e(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode("ascii")
        signature = hmac.new(key, signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{b64e(signature)}"

    def verify_jwt(self, token: str) -> Tuple[Optional[Claims], Optional[str]]:
        """(claims, None) when the signature holds and it has not expired, else (None, error)."""
        if not JWT_SHAPE.match(token):
            return None, INVALID_OR_EXPIRED
        head, payload, signature = token.split(".")
        try:
            header = json.loads(b64d(head))
            claims = json.loads(b64d(payload))
            sig = b64d(signature)
        except ValueError:
            return None, INVALID_OR_EXPIRED
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None, INVALID_OR_EXPIRED
        if header.get("alg") != "HS256":
            return None, INVALID_OR_EXPIRED
        expected = hmac.new(self._key, f"{head}.{payload}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, sig):
            return None, BAD_SIGNATURE
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None, INVALID_OR_EXPIRED
        if time.time() >= exp:
            return None, JWT_EXPIRED
        return claims, None
