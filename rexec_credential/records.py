"""git credential records: which one matches a request, when one has expired. Pure.

A record is a dict with `protocol`, `host` (with a non-default port), optional `path`,
`username`, `password`, optional `password_expiry_utc` and `oauth_refresh_token`, as
git's credential protocol names them. Matching follows git-credential-store: a key
absent from the request matches anything; a key present (even empty) must be equal.
A Rexec login is bound to a host, not to a repository, so its record matches every path
of its host (`host_wide`).

A record holds its secret in one of two forms, or both: `username` and `password`, or
`authtype` and `credential` (git 2.46: a pre-encoded credential, sent as the header
`Authorization: <authtype> <credential>`). The second form is kept from, and answered
to, only a request that announced `capability[]=authtype`; to any other it is as if it
were not there.
"""

from __future__ import annotations

from .protocol import AUTHTYPE, CAPABILITIES, CREDENTIAL, CREDENTIAL_KEYS, announces, is_true

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping

    Record = Dict[str, Any]  # str values, but an expiry is an int
    Query = Mapping[str, Any]  # a request's attributes (protocol.Request)

MATCH_KEYS = ("protocol", "host", "path", "username")
# What `store` needs present (empty values allowed: git's own tests store `username=`):
# these, and a secret in either form.
REQUIRED_KEYS = ("protocol", "host")
PASSWORD_FORM = ("username", "password")
CREDENTIAL_FORM = (AUTHTYPE, CREDENTIAL)
SECRET_KEYS = ("password", CREDENTIAL)  # compared by erase when the request gives them
# The username answered when none is known: Rexec reads only the token.
PLACEHOLDER_USERNAME = "x-rexec-token"
BEARER = "Bearer"  # the authtype of a Rexec token: the API reads `Authorization: Bearer`


def matches(
    query: Query, record: Query, with_password: bool = False, host_wide: bool = False
) -> bool:
    """git-credential-store's rule: absent query keys match anything, present ones must equal.

    `with_password` also compares the password (erase, since git 2.42); `host_wide` ignores
    the path (a Rexec login answers for every repository of its host).
    """
    if mismatch(query, record, host_wide) is not None:
        return False
    if with_password:
        # git 2.42: a different password (git 2.46: credential) erases nothing; a record
        # without that secret does not hold it.
        return all(record.get(key) == query[key] for key in SECRET_KEYS if key in query)
    return True


def mismatch(query: Query, record: Query, host_wide: bool = False) -> str | None:
    """The first of MATCH_KEYS in which the record differs from the query; None if none."""
    for key in MATCH_KEYS:
        if key in query and not (host_wide and key == "path"):
            if record.get(key, "") != query[key]:
                return key
    return None


def capable(request: Query) -> bool:
    """True when the request announced `capability[]=authtype` (git 2.46)."""
    return announces(request, AUTHTYPE)


def announced(request: Query) -> Query:
    """The request as this helper reads it: `authtype` and `credential` count only when
    the request announced the capability they need (git sends them only then)."""
    if capable(request) or not any(key in request for key in CREDENTIAL_FORM):
        return request
    return {k: v for k, v in request.items() if k not in CREDENTIAL_FORM}


def has_password(record: Query) -> bool:
    """True when the record holds a password (with a username, or git's empty one)."""
    return isinstance(record.get("password"), str)


def has_credential(record: Query) -> bool:
    """True when the record holds an `authtype` and `credential` pair."""
    return all(isinstance(record.get(key), str) for key in CREDENTIAL_FORM)


def refusal(
    query: Query, record: Query, now: float, capable: bool = False, host_wide: bool = False
) -> str | None:
    """Why `get` does not answer a request with this record; None when it does.

    The rules, in the order they are checked: the keys git-credential-store compares;
    an expiry that has passed; a value git's protocol cannot carry; a secret the request
    cannot take (authtype/credential only, for a request without the capability).
    """
    key = mismatch(query, record, host_wide)
    if key is not None:
        return f"{key} differs"
    if expired(record, now):
        return "expired"
    if not sendable(record):
        return "a value holds a line break or NUL, which git's protocol cannot carry"
    if not (has_password(record) or (capable and has_credential(record))):
        return "authtype and credential only: the request did not announce capability[]=authtype"
    return None


def well_formed(record: object) -> bool:
    """A stored entry that can be read as a record (hand edits may leave others)."""
    if not isinstance(record, dict):
        return False
    texts = MATCH_KEYS + SECRET_KEYS + (AUTHTYPE,)
    return (
        all(isinstance(record.get(k, ""), str) for k in texts)
        and all(k in record for k in REQUIRED_KEYS)
        and ("password" in record or has_credential(record))
    )


def sendable(record: Query) -> bool:
    """True when git's protocol can carry every value: a line break or NUL inside one
    cannot be sent (git itself refuses to), so such a stored login is skipped, not sent.
    A list is looked at item by item, as `protocol.render` sends it (one line each)."""
    return not any(
        isinstance(item, str) and ("\n" in item or "\0" in item)
        for value in record.values()
        for item in (value if isinstance(value, list) else (value,))
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
    a key missing, marked ephemeral (in either form), or already expired.

    It needs protocol and host, and a username and password, or (from a request that
    announced the capability) an authtype and credential; it keeps whichever it has.
    """
    request = announced(request)
    if not all(isinstance(request.get(k), str) for k in REQUIRED_KEYS):
        return None
    password = all(isinstance(request.get(k), str) for k in PASSWORD_FORM)
    if not (password or has_credential(request)):
        return None
    if is_true(request.get("ephemeral")) or expired(request, now):
        return None
    keys = REQUIRED_KEYS + PASSWORD_FORM + CREDENTIAL_FORM
    record: Record = {k: request[k] for k in keys if isinstance(request.get(k), str)}
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
    """The same protocol, host, username and path, and the same form of secret: a new
    password replaces the old, a new credential the old (a git without the capability
    still finds the password it stored)."""
    return all(a.get(k, "") == b.get(k, "") for k in MATCH_KEYS) and has_credential(
        a
    ) == has_credential(b)


def bearer(record: Query) -> Record:
    """A Rexec login's record as `--bearer` answers it: its token as `Authorization:
    Bearer <token>` (authtype and credential) instead of a password."""
    answer: Record = {k: v for k, v in record.items() if k != "password"}
    answer[AUTHTYPE], answer[CREDENTIAL] = BEARER, record["password"]
    return answer


def holding_token(record: Query) -> Record:
    """A Rexec login's record with its token in both forms (what erase compares)."""
    return dict(record, **{AUTHTYPE: BEARER, CREDENTIAL: record["password"]})


def response(record: Query, request: Query) -> Record:
    """What `get` prints for a record: `capability[]=authtype`, authtype and credential
    first when the record has them and the request announced the capability; then the
    credential keys git reads (never a capability the request did not announce); the
    path as the request gave it."""
    answer: Record = {}
    if capable(request) and has_credential(record):
        answer[CAPABILITIES] = [AUTHTYPE]
        answer[AUTHTYPE], answer[CREDENTIAL] = record[AUTHTYPE], record[CREDENTIAL]
    answer.update((k, v) for k, v in record.items() if k in CREDENTIAL_KEYS and k != "path")
    if "path" in request:
        answer["path"] = request["path"]
    return answer


def same_login(a: Query, b: Query) -> bool:
    """The same protocol, host and username, whatever the path."""
    return all(a.get(k, "") == b.get(k, "") for k in ("protocol", "host", "username"))
