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
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .messages import go_time, iso_time

API_TOKEN_PREFIX = "rexec_"
INVALID_OR_EXPIRED = "Invalid or expired token"
BAD_SIGNATURE = "token signature is invalid"
JWT_EXPIRED = "token is expired"
TOKEN_INVALID = "invalid token"
TOKEN_EXPIRED = "token expired"
DEFAULT_SCOPES = ("read", "write")
MINTED_NAME = "minted"
PREFIX_LENGTH = 12

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


class TokenCheck(NamedTuple):
    """What checking an API token found: its user and scopes, or the validate error."""

    user: Optional[User]
    error: Optional[str]
    scopes: Tuple[str, ...] = ()


@dataclass
class ApiToken:
    """An API token's record as the service's api_tokens table holds it (no plain text)."""

    id: str
    username: str
    user_id: str
    name: str
    prefix: str
    scopes: Tuple[str, ...]
    created_ns: int
    expires_ns: Optional[int] = None
    last_used_ns: Optional[int] = None
    revoked_ns: Optional[int] = None

    def expired(self, now_ns: int) -> bool:
        """Whether its expiry has passed."""
        return self.expires_ns is not None and now_ns >= self.expires_ns

    def listing(self) -> Dict[str, Any]:
        """The token as GET /api/tokens lists it (times read back from PostgreSQL)."""
        # Go's struct tags say omitempty: a null time is left out, not written as null.
        entry: Dict[str, Any] = {
            "id": self.id,
            "user_id": self.user_id,
            "name": self.name,
            "token_prefix": self.prefix,
            "scopes": list(self.scopes),
        }
        if self.last_used_ns is not None:
            entry["last_used_at"] = go_time(self.last_used_ns, 6)
        if self.expires_ns is not None:
            entry["expires_at"] = go_time(self.expires_ns, 6)
        entry["created_at"] = go_time(self.created_ns, 6)
        if self.revoked_ns is not None:
            entry["revoked_at"] = go_time(self.revoked_ns, 6)
        return entry


class Accounts:
    """The users, their API tokens (kept as sha256 only) and the JWT signing key."""

    def __init__(self, jwt_lifetime: int = 3600) -> None:
        """Start with the demo users."""
        self.users: Dict[str, User] = {}
        self.jwt_lifetime = jwt_lifetime
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)
        self._foreign_key = secrets.token_bytes(32)
        self._api_tokens: Dict[str, ApiToken] = {}
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

    def mint_api_token(
        self,
        username: str,
        expires_at: Optional[float] = None,
        name: str = MINTED_NAME,
        scopes: Optional[List[str]] = None,
    ) -> str:
        """Issue an API token ("rexec_" + 64 hex); only its sha256 is kept."""
        expires_ns = None if expires_at is None else int(expires_at * 1e9)
        token, _ = self.create_api_token(username, name, scopes, expires_ns)
        return token

    def create_api_token(
        self,
        username: str,
        name: str,
        scopes: Optional[List[str]],
        expires_ns: Optional[int],
        created_ns: Optional[int] = None,
    ) -> Tuple[str, ApiToken]:
        """A new API token and a copy of its record; empty scopes mean read and write."""
        user = self.user(username)
        token = API_TOKEN_PREFIX + secrets.token_hex(32)
        record = ApiToken(
            id=str(uuid.uuid4()),
            username=username,
            user_id=user.id,
            name=name,
            prefix=token[:PREFIX_LENGTH],
            scopes=tuple(scopes) if scopes else DEFAULT_SCOPES,
            created_ns=time.time_ns() if created_ns is None else created_ns,
            expires_ns=expires_ns,
        )
        with self._lock:
            self._api_tokens[_sha256(token)] = record
        return token, replace(record)

    def api_tokens(self, username: str, revoked: bool = False) -> List[ApiToken]:
        """Copies of the user's token records, newest first; revoked ones only if asked."""
        self.user(username)
        with self._lock:
            found = [
                replace(r)
                for r in self._api_tokens.values()
                if r.username == username and (revoked or r.revoked_ns is None)
            ]
        return sorted(found, key=lambda r: r.created_ns, reverse=True)

    def api_token_id(self, token: str) -> str:
        """The id of an API token (revoked or not); KeyError if it was never issued or deleted."""
        with self._lock:
            record = self._api_tokens.get(_sha256(token))
            if record is None:
                raise KeyError("unknown API token")
            return record.id

    def revoke_api_token(self, token: str) -> None:
        """Revoke an API token; KeyError if it was never issued."""
        with self._lock:
            record = self._api_tokens.get(_sha256(token))
            if record is None:
                raise KeyError("unknown API token")
            if record.revoked_ns is None:
                record.revoked_ns = time.time_ns()

    def revoke_api_token_by_id(self, username: str, token_id: str) -> bool:
        """Revoke the user's live token with this id; False if none (unknown, or revoked)."""
        with self._lock:
            for record in self._api_tokens.values():
                if record.id == token_id and record.username == username:
                    if record.revoked_ns is not None:
                        return False
                    record.revoked_ns = time.time_ns()
                    return True
        return False

    def delete_api_token_by_id(self, username: str, token_id: str) -> bool:
        """Delete the user's token with this id, revoked or not; False if there is none."""
        with self._lock:
            for key, record in self._api_tokens.items():
                if record.id == token_id and record.username == username:
                    del self._api_tokens[key]
                    return True
        return False

    def set_api_token_expiry(self, token_id: str, expires_ns: Optional[int]) -> None:
        """Change when the token with this id expires (None: never); KeyError if unknown."""
        with self._lock:
            for record in self._api_tokens.values():
                if record.id == token_id:
                    record.expires_ns = expires_ns
                    return
        raise KeyError(f"unknown API token id {token_id!r}")

    def check_api_token(self, token: str) -> TokenCheck:
        """The user and scopes of a live API token, else the validate endpoint's error."""
        # As the service's query (revoked_at IS NULL): a revoked token is an unknown one.
        # A live one is noted as last used.
        now = time.time_ns()
        with self._lock:
            record = self._api_tokens.get(_sha256(token))
            if record is None or record.revoked_ns is not None:
                return TokenCheck(None, TOKEN_INVALID)
            if record.expired(now):
                return TokenCheck(None, TOKEN_EXPIRED)
            user = self.users.get(record.username)
            if user is None:
                return TokenCheck(None, TOKEN_INVALID)
            record.last_used_ns = now
            return TokenCheck(user, None, record.scopes)

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
