"""A Rexec login (an account): the host, the user, the token, and what is known of it. Pure.

Accounts are kept in credentials.json; the active login is the flat object of config.json
(the five fields the Rexec CLI reads and writes), seen as an Account too. The token's
kind, expiry and session id are read from the token itself (a JWT's `exp` and `sid`
claims), so they can never disagree with it. A device token — an API token rexec-login
made for this machine — also has what the service said when it made it: its id (by which
it is revoked), its name and its expiry; a token the person pasted has none of these, and
so is never revoked by this program.
"""

from __future__ import annotations

from . import hosts, records, tokens
from .errors import RexecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Tuple

    from .records import Record

    Login = Tuple["Account", bool]  # an account, and whether it is the active login

# config.json as the Rexec CLI writes it: these fields, in this order.
CONFIG_FIELDS = ("host", "token", "username", "email", "tier")


class Account:
    """One Rexec login."""

    __slots__ = (
        "host",
        "username",
        "email",
        "tier",
        "token",
        "created_at",
        "stored_expiry",
        "refresh_token",
        "token_id",
        "token_name",
        "token_expiry",
    )

    def __init__(
        self,
        host: str,
        username: str,
        token: str,
        email: str = "",
        tier: str = "",
        created_at: int | None = None,
        stored_expiry: int | None = None,
        refresh_token: str = "",
        token_id: str = "",
        token_name: str = "",
        token_expiry: int | None = None,
    ) -> None:
        self.host = host  # a normalised URL
        self.username = username  # "" when the login does not say (a Rexec CLI file may not)
        self.token = token
        self.email = email
        self.tier = tier
        self.created_at = created_at  # Unix seconds, when this machine made the login
        self.stored_expiry = stored_expiry  # password_expiry_utc that git stored with the token
        self.refresh_token = refresh_token  # oauth_refresh_token that git stored with it
        self.token_id = token_id  # a device token's id at the service ("" for any other)
        self.token_name = token_name  # a device token's name
        self.token_expiry = token_expiry  # a device token's expires_at (Unix seconds)

    @property
    def kind(self) -> str | None:
        """ "api" or "jwt" (None for a token of neither form)."""
        return tokens.kind(self.token)

    @property
    def device(self) -> bool:
        """True for a device token: one this program made, and may revoke."""
        return bool(self.token_id) and self.kind == tokens.API

    @property
    def own_expiry(self) -> int | None:
        """When the token itself says it expires: a device token's expires_at, a JWT's exp."""
        return self.token_expiry if self.device else tokens.expiry(self.token)

    @property
    def expires(self) -> int | None:
        """Unix seconds at which the token stops working, when known (what git stored with
        it first: git may know better, e.g. after a refresh)."""
        return self.stored_expiry or self.own_expiry

    def device_facts(self) -> tuple[str, str, int | None]:
        """(id, name, expiry) of a device token."""
        return self.token_id, self.token_name, self.token_expiry

    def forget_device_facts(self) -> None:
        """The token changed to one this program did not make: nothing of it applies."""
        self.token_id, self.token_name, self.token_expiry = "", "", None

    @property
    def session_id(self) -> str | None:
        """The server-side session of a JWT login (its `sid` claim)."""
        sid = tokens.jwt_claims(self.token).get("sid") if self.kind == tokens.JWT else None
        return sid if isinstance(sid, str) and sid else None

    def expired(self, now: float) -> bool:
        """True when the token's expiry has passed."""
        expires = self.expires
        return expires is not None and expires <= now

    def same_login(self, other: Account) -> bool:
        """The same user on the same host (the token may differ)."""
        return (self.host, self.username) == (other.host, other.username)

    def record(self) -> Record:
        """The login as a git credential record (matching every path of its host)."""
        protocol, hostport = hosts.git_parts(self.host)
        record: Record = {
            "protocol": protocol,
            "host": hostport,
            "username": self.username or records.PLACEHOLDER_USERNAME,
            "password": self.token,
        }
        if self.expires is not None:
            record["password_expiry_utc"] = self.expires
        if self.refresh_token:
            record["oauth_refresh_token"] = self.refresh_token
        return record

    def describe(self) -> str:
        """`user (email) on host`, for messages: cleaned, as every stored text shown."""
        who = tokens.clean(self.username) or "an unnamed login"
        email = tokens.clean(self.email)
        return f"{who} ({email}) on {self.host}" if email else f"{who} on {self.host}"

    def config_fields(self) -> dict[str, str]:
        """The five fields config.json holds for this login."""
        return {
            "host": self.host,
            "token": self.token,
            "username": self.username,
            "email": self.email,
            "tier": self.tier,
        }

    def to_json(self) -> dict[str, Any]:
        """The object credentials.json holds for this login."""
        obj: dict[str, Any] = {
            "host": self.host,
            "username": self.username,
            "email": self.email,
            "tier": self.tier,
            "token": self.token,
        }
        if self.session_id:
            obj["session_id"] = self.session_id  # for people reading the file; the token rules
        if self.created_at is not None:
            obj["created_at"] = self.created_at
        if self.stored_expiry is not None:
            obj["password_expiry_utc"] = self.stored_expiry
        if self.refresh_token:
            obj["oauth_refresh_token"] = self.refresh_token
        if self.device:
            obj["token_id"] = self.token_id
            obj["token_name"] = self.token_name
            obj["token_expires_at"] = self.token_expiry
        return obj

    @classmethod
    def from_json(cls, obj: object) -> Account | None:
        """An account from credentials.json, or None for an entry that is not one."""
        if not isinstance(obj, dict):
            return None
        host, token = _host(obj.get("host")), obj.get("token")
        if host is None or not isinstance(token, str) or not token:
            return None
        created = obj.get("created_at")
        return cls(
            host,
            _text(obj.get("username")),
            token,
            _text(obj.get("email")),
            _text(obj.get("tier")),
            created if isinstance(created, int) and not isinstance(created, bool) else None,
            records.expiry_value(obj.get("password_expiry_utc")),
            _text(obj.get("oauth_refresh_token")),
            _text(obj.get("token_id")),
            _text(obj.get("token_name")),
            records.expiry_value(obj.get("token_expires_at")),
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Account | None:
        """The active login of a config.json object, or None when it holds none."""
        token = config.get("token")
        if not isinstance(token, str) or not token:
            return None
        host = hosts.DEFAULT_HOST if config.get("host") is None else _host(config.get("host"))
        if host is None:
            return None
        return cls(
            host,
            _text(config.get("username")),
            token,
            _text(config.get("email")),
            _text(config.get("tier")),
        )


def when(seconds: int | None) -> str:
    """A moment for a person: `YYYY-MM-DD HH:MM:SS UTC` (a number beyond the C library)."""
    import time

    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds or 0))
    except (OverflowError, OSError, ValueError):  # beyond what the C library can show
        return f"at Unix time {seconds}"


def listing(logins: list[Login]) -> list[str]:
    """One line per (account, is_active) pair, for a person choosing one."""
    return [
        f"  {account.describe()}" + ("  (active)" if active else "") for account, active in logins
    ]


def _host(value: object) -> str | None:
    """A normalised host URL, or None for a value that is not one (hand-edited, another
    tool's): such a login counts as none rather than stopping every command."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return hosts.normalise(value)
    except RexecError:
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
