"""Token formats (SPEC §2): classify API token vs JWT, read a JWT's exp, redact. Pure."""

from __future__ import annotations

import binascii
import json

from .errors import AuthError

API = "api"
JWT = "jwt"
API_PREFIX = "rexec_"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_B64URL = _ALNUM | frozenset("-_")

_TO_STANDARD_B64 = str.maketrans("-_", "+/")

VALID_FORMS = (
    "a valid token is an API token (rexec_ followed by 32-64 letters or digits) "
    "or a JWT (three base64url segments separated by dots)"
)


def kind(token: str) -> str | None:
    """Return "api" or "jwt" for a well-formed token, None for anything else."""
    if token.startswith(API_PREFIX):
        body = token[len(API_PREFIX):]
        if 32 <= len(body) <= 64 and set(body) <= _ALNUM:
            return API
        return None
    parts = token.split(".")
    if len(parts) == 3 and all(parts) and all(set(p) <= _B64URL for p in parts):
        if isinstance(_decode_segment(parts[0]), dict) and isinstance(
            _decode_segment(parts[1]), dict
        ):
            return JWT
    return None


def classify(token: str) -> str:
    """Return the token's kind or raise AuthError saying what a valid token looks like."""
    found = kind(token)
    if found is None:
        if not token:
            raise AuthError("Invalid token: empty; " + VALID_FORMS)
        raise AuthError("Invalid token: malformed; " + VALID_FORMS)
    return found


def _decode_segment(segment: str) -> object:
    try:
        # binascii, not base64: `rexec-credential get` reads exp and base64 costs a millisecond.
        padded = segment.translate(_TO_STANDARD_B64) + "=" * (-len(segment) % 4)
        raw = binascii.a2b_base64(padded.encode("ascii"))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        return None


def jwt_claims(token: str) -> dict:
    """The unverified payload of a JWT ({} when it is not one)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    claims = _decode_segment(parts[1])
    return claims if isinstance(claims, dict) else {}


def expiry(token: str) -> int | None:
    """Unix seconds at which the token expires, when it says (JWT `exp`); None otherwise."""
    if token.startswith(API_PREFIX):
        return None
    exp = jwt_claims(token).get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return int(exp)


def redact(token: str) -> str:
    """A form of the token safe to show a person: its kind and a short prefix at most."""
    if token.startswith(API_PREFIX):
        return API_PREFIX + "…"
    if not token:
        return "(empty)"
    return "…" if kind(token) is None else "eyJ…(jwt)"
