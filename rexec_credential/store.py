"""Credentials held in the config object: the active login plus a list. Pure.

The active login is the seed's flat object (`host`, `token`, `username`, `email`,
`tier`) so the Rexec Go CLI can read the same file; every other credential lives
in a list under EXTRA_KEY, newest first. Both are seen here as git credential
records: dicts with `protocol`, `host`, optional `path`, `username`, `password`,
optional `password_expiry_utc` and `oauth_refresh_token`. Matching follows
git-credential-store: a key absent from the query matches anything, a present key
(even empty) must be equal. One exception: the active login is a Rexec token bound
to a host, not to a repository, so it answers for every path on that host (records
marked `active`).
"""

from __future__ import annotations

from . import hosts, tokens
from .errors import RexecError
from .protocol import is_true

EXTRA_KEY = "credentials"
PLACEHOLDER_USERNAME = "x-rexec-token"
MATCH_KEYS = ("protocol", "host", "path", "username")
RECORD_KEYS = MATCH_KEYS + ("password", "password_expiry_utc", "oauth_refresh_token")
# Kept even when empty (git's own tests store `username=` and `password=`).
REQUIRED_KEYS = ("protocol", "host", "username", "password")
# The active login may carry what git stored with its token beside the seed's keys.
ACTIVE_EXTRAS = ("password_expiry_utc", "oauth_refresh_token")
LOGIN_KEYS = ("token", "username", "email", "tier") + ACTIVE_EXTRAS
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping


def active_host(data: Mapping) -> str | None:
    """The config's `host`, normalised; None when absent or not a host URL."""
    host = data.get("host")
    if not isinstance(host, str) or not host:
        return None
    try:
        return hosts.normalise(host)
    except RexecError:
        return None


def active_record(data: Mapping) -> dict | None:
    """The active login as a credential record, or None when there is none."""
    token, host = data.get("token"), data.get("host")
    if not isinstance(token, str) or not token:
        return None
    host = hosts.DEFAULT_HOST if host is None else active_host(data)
    if host is None:
        return None
    protocol, hostport = hosts.git_parts(host)
    username = data.get("username")
    username = username if isinstance(username, str) and username else PLACEHOLDER_USERNAME
    record = token_record(protocol, hostport, username, token, data.get("password_expiry_utc"))
    refresh = data.get("oauth_refresh_token")
    if isinstance(refresh, str) and refresh:
        record["oauth_refresh_token"] = refresh
    return record


def token_record(protocol: str, host: str, username: str, token: str,
                 expiry: object = None) -> dict:
    """A host-wide record for a Rexec token (the active login, REXEC_TOKEN); JWT exp = expiry."""
    record = {"protocol": protocol, "host": host, "username": username, "password": token,
              "active": True}
    return _with_expiry(record, expiry)


def _with_expiry(record: dict, stored: object) -> dict:
    # What `store` received wins; else a JWT's own `exp` (SPEC §4 get).
    exp = _expiry_value(stored) or tokens.expiry(record["password"])
    if exp is not None:
        record["password_expiry_utc"] = exp
    else:
        record.pop("password_expiry_utc", None)
    return record


def _extras(data: Mapping) -> list:
    extras = data.get(EXTRA_KEY)
    if not isinstance(extras, list):
        return []
    return [
        _with_expiry(dict(r), r.get("password_expiry_utc"))
        for r in extras if isinstance(r, dict) and _well_formed(r)
    ]


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
    return all(
        k not in query or record.get(k, "") == query[k]
        for k in keys
        if not (k == "path" and record.get("active"))  # the active login is host-wide
    )


def expired(record: Mapping, now: float) -> bool:
    """True when the record carries an expiry (not 0) that has passed."""
    exp = _expiry_value(record.get("password_expiry_utc"))
    return exp is not None and exp <= now


def _expiry_value(value: object) -> int | None:
    # git: 0, or a value that does not parse or overflows, means "no expiry".
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        ok = value.isascii() and value.isdigit() and len(value) < 19
        value = int(value) if ok else None
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


def storable(cred: Mapping, now: float, env_token: str | None = None) -> bool:
    """Whether `store` may persist cred: complete, not ephemeral, unexpired, not REXEC_TOKEN."""
    if not all(isinstance(cred.get(k), str) for k in REQUIRED_KEYS):
        return False
    if is_true(cred.get("ephemeral")) or expired(cred, now):
        return False
    return not (env_token and cred["password"] == env_token)  # never written to disk


def store(data: dict, cred: Mapping, now: float, env_token: str | None = None) -> bool:
    """Save a credential (SPEC §4 store); True when `data` changed and must be written."""
    if not storable(cred, now, env_token):
        return False
    new = {k: cred[k] for k in REQUIRED_KEYS}
    for key in ("path", "oauth_refresh_token"):
        if cred.get(key):
            new[key] = cred[key]
    exp = _expiry_value(cred.get("password_expiry_utc"))
    if exp is not None:
        new["password_expiry_utc"] = exp
    active = active_record(data)
    if active and _same_login(active, new):  # host-wide: a per-path copy would go stale
        return _update_active(data, new)
    extras = data.get(EXTRA_KEY) if isinstance(data.get(EXTRA_KEY), list) else []
    if new in extras:
        return False
    data[EXTRA_KEY] = [new] + _without_slot(extras, new)
    return True


def _without_slot(extras: list, slot: Mapping) -> list:
    return [r for r in extras if not (isinstance(r, dict) and _same_slot(r, slot))]


def _update_active(data: dict, new: Mapping) -> bool:
    before = {k: data.get(k) for k in ("token",) + ACTIVE_EXTRAS}
    data["token"] = new["password"]
    for key in ACTIVE_EXTRAS:
        data.pop(key, None)
    if new.get("oauth_refresh_token"):
        data["oauth_refresh_token"] = new["oauth_refresh_token"]
    exp = new.get("password_expiry_utc")
    if exp is not None and exp != tokens.expiry(new["password"]):
        data["password_expiry_utc"] = exp
    return before != {k: data.get(k) for k in ("token",) + ACTIVE_EXTRAS}


def _same_slot(a: Mapping, b: Mapping) -> bool:
    return all(a.get(k, "") == b.get(k, "") for k in MATCH_KEYS)


def _same_login(a: Mapping, b: Mapping) -> bool:
    """Same protocol, host and username, whatever the path (the active login is host-wide)."""
    return all(a.get(k, "") == b.get(k, "") for k in ("protocol", "host", "username"))


def erasable(pattern: Mapping) -> bool:
    """False for an empty pattern, which erases nothing (as git-credential-store refuses it)."""
    return any(k in pattern for k in MATCH_KEYS)


def erase(data: dict, pattern: Mapping) -> bool:
    """Remove every matching credential (SPEC §4 erase); True when `data` changed."""
    if not erasable(pattern):
        return False
    with_password = "password" in pattern  # git 2.42: a different password erases nothing
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
    if current and isinstance(data.get(EXTRA_KEY), list):
        # The active login owns its host and username: drop copies stored earlier through git.
        data[EXTRA_KEY] = [
            r for r in data[EXTRA_KEY] if not (isinstance(r, dict) and _same_login(r, current))
        ]
    if previous and current and not _same_login(previous, current):
        kept = {k: v for k, v in previous.items() if k != "active"}
        store(data, kept, now=0)
