"""Credentials held in the config object: the active login plus a list. Pure.

The active login is the seed's flat object (`host`, `token`, `username`, `email`,
`tier`) so the Rexec Go CLI can read the same file; every other credential lives
in a list under EXTRA_KEY, newest first. Both are seen here as git credential
records: dicts with `protocol`, `host`, optional `path`, `username`, `password`,
optional `password_expiry_utc` and `oauth_refresh_token`. Matching follows
git-credential-store: a key absent from the query matches anything, a present key
(even empty) must be equal.
"""

from __future__ import annotations

from . import hosts, tokens
from .errors import RexecError

EXTRA_KEY = "credentials"
PLACEHOLDER_USERNAME = "x-rexec-token"
MATCH_KEYS = ("protocol", "host", "path", "username")
RECORD_KEYS = MATCH_KEYS + ("password", "password_expiry_utc", "oauth_refresh_token")
# The active login may carry what git stored with its token beside the seed's keys.
ACTIVE_EXTRAS = ("password_expiry_utc", "oauth_refresh_token")
LOGIN_KEYS = ("token", "username", "email", "tier") + ACTIVE_EXTRAS
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping


def active_record(data: Mapping) -> dict | None:
    """The active login as a credential record, or None when there is none."""
    token, host = data.get("token"), data.get("host")
    if not isinstance(token, str) or not token:
        return None
    try:
        protocol, hostport = hosts.git_parts(hosts.normalise(host or hosts.DEFAULT_HOST))
    except (RexecError, AttributeError):
        return None
    username = data.get("username")
    record = {
        "protocol": protocol,
        "host": hostport,
        "username": username if isinstance(username, str) and username else PLACEHOLDER_USERNAME,
        "password": token,
        "active": True,
    }
    exp = _expiry_value(data.get("password_expiry_utc")) or tokens.expiry(token)
    if exp is not None:
        record["password_expiry_utc"] = exp
    refresh = data.get("oauth_refresh_token")
    if isinstance(refresh, str) and refresh:
        record["oauth_refresh_token"] = refresh
    return record


def _extras(data: Mapping) -> list:
    extras = data.get(EXTRA_KEY)
    if not isinstance(extras, list):
        return []
    return [r for r in extras if isinstance(r, dict) and _well_formed(r)]


def _well_formed(record: Mapping) -> bool:
    return all(isinstance(record.get(k, ""), str) for k in MATCH_KEYS + ("password",)) and all(
        k in record for k in ("protocol", "host", "password")
    )


def records(data: Mapping) -> list:
    """Every stored credential, the active login first."""
    active = active_record(data)
    return ([active] if active else []) + _extras(data)


def matches(query: Mapping, record: Mapping, with_password: bool = False) -> bool:
    """git-credential-store's rule: absent query keys match anything, present ones must equal."""
    keys = MATCH_KEYS + ("password",) if with_password else MATCH_KEYS
    return all(k not in query or record.get(k, "") == query[k] for k in keys)


def expired(record: Mapping, now: float) -> bool:
    """True when the record carries an expiry (not 0) that has passed."""
    exp = _expiry_value(record.get("password_expiry_utc"))
    return exp is not None and exp <= now


def _expiry_value(value: object) -> int | None:
    # git: 0, or a value that does not parse or overflows, means "no expiry".
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = int(value) if value.isdigit() and len(value) < 19 else None
    if isinstance(value, int) and value > 0:
        return value
    return None


def find(data: Mapping, query: Mapping, now: float) -> dict | None:
    """The first unexpired record matching the query; an empty query means the active login."""
    if not any(k in query for k in MATCH_KEYS):
        active = active_record(data)
        return active if active and not expired(active, now) else None
    for record in records(data):
        if matches(query, record) and not expired(record, now):
            return record
    return None


def store(data: dict, cred: Mapping, now: float, env_token: str | None = None) -> bool:
    """Save a credential (SPEC §4 store); True when `data` changed and must be written."""
    if not all(k in cred for k in ("protocol", "host", "username", "password")):
        return False
    if cred.get("ephemeral") or expired(cred, now):
        return False
    if env_token and cred["password"] == env_token:
        return False  # REXEC_TOKEN is never written to disk
    new = {k: cred[k] for k in RECORD_KEYS if k in cred and cred[k] != ""}
    new["username"], new["password"] = cred["username"], cred["password"]
    exp = _expiry_value(new.pop("password_expiry_utc", None))
    if exp is not None:
        new["password_expiry_utc"] = exp
    active = active_record(data)
    if active and _same_slot(active, new):
        before = {k: data.get(k) for k in ("token",) + ACTIVE_EXTRAS}
        data["token"] = new["password"]
        for key in ACTIVE_EXTRAS:
            data.pop(key, None)
        refresh = new.get("oauth_refresh_token")
        if refresh:
            data["oauth_refresh_token"] = refresh
        if exp is not None and exp != tokens.expiry(new["password"]):
            data["password_expiry_utc"] = exp
        return before != {k: data.get(k) for k in ("token",) + ACTIVE_EXTRAS}
    extras = data.get(EXTRA_KEY) if isinstance(data.get(EXTRA_KEY), list) else []
    if new in extras:
        return False
    others = [r for r in extras if not (isinstance(r, dict) and _same_slot(r, new))]
    data[EXTRA_KEY] = [new] + others
    return True


def _same_slot(a: Mapping, b: Mapping) -> bool:
    return all(a.get(k, "") == b.get(k, "") for k in MATCH_KEYS)


def erase(data: dict, pattern: Mapping) -> bool:
    """Remove every matching credential (SPEC §4 erase); True when `data` changed."""
    if not any(pattern.get(k) for k in MATCH_KEYS):
        return False  # an empty pattern erases nothing
    with_password = "password" in pattern
    changed = False
    active = active_record(data)
    if active and matches(pattern, active, with_password):
        for key in LOGIN_KEYS:
            data.pop(key, None)
        changed = True
    extras = data.get(EXTRA_KEY)
    if isinstance(extras, list):
        kept = [
            r for r in extras
            if not (isinstance(r, dict) and _well_formed(r) and matches(pattern, r, with_password))
        ]
        if len(kept) != len(extras):
            data[EXTRA_KEY] = kept
            changed = True
    return changed


def set_active(data: dict, host: str, token: str, profile: Mapping) -> None:
    """Make (host, token, profile) the active login; keep a different previous one as a record."""
    previous = active_record(data)
    data["host"] = host
    data["token"] = token
    for key in ACTIVE_EXTRAS:
        data.pop(key, None)
    for key in ("username", "email", "tier"):
        value = profile.get(key)
        if isinstance(value, str) and value:
            data[key] = value
        else:
            data.pop(key, None)
    current = active_record(data)
    if previous and current and not _same_slot(previous, current):
        kept = {k: v for k, v in previous.items() if k != "active"}
        store(data, kept, now=0)
