"""git credential records: which one matches a request, when one has expired. Pure.

A record is a dict with `protocol`, `host` (with a non-default port), optional `path`,
`username`, `password`, optional `password_expiry_utc` and `oauth_refresh_token`, as
git's credential protocol names them. Matching follows git-credential-store: a key
absent from the request matches anything; a key present (even empty) must be equal.
A Rexec login is bound to a host, not to a repository, so its record matches every path
of its host (`host_wide`).
"""

from __future__ import annotations

from .protocol import is_true

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping

    Record = Dict[str, Any]  # str values, but an expiry is an int
    Query = Mapping[str, Any]  # a request's attributes (protocol.Request)

MATCH_KEYS = ("protocol", "host", "path", "username")
# What `store` needs present (empty values allowed: git's own tests store `username=`).
REQUIRED_KEYS = ("protocol", "host", "username", "password")
# The username answered when none is known: Rexec reads only the token.
PLACEHOLDER_USERNAME = "x-rexec-token"


def matches(
    query: Query, record: Query, with_password: bool = False, host_wide: bool = False
) -> bool:
    """git-credential-store's rule: absent query keys match anything, present ones must equal.

    `with_password` also compares the password (erase, since git 2.42); `host_wide` ignores
    the path (a Rexec login answers for every repository of its host).
    """
    for key in MATCH_KEYS:
        if key in query and not (host_wide and key == "path"):
            if record.get(key, "") != query[key]:
                return False
    if with_password and "password" in query:
        return bool(record.get("password", "") == query["password"])
    return True


def well_formed(record: object) -> bool:
    """A stored entry that can be read as a record (hand edits may leave others)."""
    if not isinstance(record, dict):
        return False
    return all(isinstance(record.get(k, ""), str) for k in MATCH_KEYS + ("password",)) and all(
        k in record for k in ("protocol", "host", "password")
    )


def sendable(record: Query) -> bool:
    """True when git's protocol can carry every value: a line break or NUL inside one
    cannot be sent (git itself refuses to), so such a stored login is skipped, not sent."""
    return not any(
        isinstance(value, str) and ("\n" in value or "\0" in value) for value in record.values()
    )


def expiry_value(value: object) -> int | None:
    """Unix seconds, or None: git reads 0, or a value that does not parse, as no expiry."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        ok = value.isascii() and value.isdigit() and len(value) < 19
        value = int(value) if ok else None
    if isinstance(value, int) and value > 0:
        return value
    return None


def expired(record: Query, now: float) -> bool:
    """True when the record carries an expiry (not 0) that has passed."""
    exp = expiry_value(record.get("password_expiry_utc"))
    return exp is not None and exp <= now


def storable(request: Query, now: float) -> Record | None:
    """The record `store` would keep for a request, or None when git says not to keep it:
    a key missing, marked ephemeral, or already expired."""
    if not all(isinstance(request.get(k), str) for k in REQUIRED_KEYS):
        return None
    if is_true(request.get("ephemeral")) or expired(request, now):
        return None
    record: Record = {k: request[k] for k in REQUIRED_KEYS}
    for key in ("path", "oauth_refresh_token"):
        if request.get(key):
            record[key] = request[key]
    exp = expiry_value(request.get("password_expiry_utc"))
    if exp is not None:
        record["password_expiry_utc"] = exp
    return record


def erasable(pattern: Query) -> bool:
    """False for an empty pattern, which erases nothing (as git-credential-store refuses it)."""
    return any(k in pattern for k in MATCH_KEYS)


def same_slot(a: Query, b: Query) -> bool:
    """The same protocol, host, username and path: a new password replaces the old."""
    return all(a.get(k, "") == b.get(k, "") for k in MATCH_KEYS)


def same_login(a: Query, b: Query) -> bool:
    """The same protocol, host and username, whatever the path."""
    return all(a.get(k, "") == b.get(k, "") for k in ("protocol", "host", "username"))
