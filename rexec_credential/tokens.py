"""Token formats: classify (API token or JWT), read a JWT's claims, hide tokens in text. Pure."""

from __future__ import annotations

import binascii
import json

from .errors import AuthError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

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


def trim(token: str) -> str:
    """A token as given (typed, pasted, piped, REXEC_TOKEN): without surrounding white space.

    The one rule for every way a token arrives, so that the value compared with
    REXEC_TOKEN's (never written) is the value that would be written.
    """
    return token.strip()


def kind(token: str) -> str | None:
    """Return "api" or "jwt" for a well-formed token, None for anything else."""
    if token.startswith(API_PREFIX):
        body = token[len(API_PREFIX) :]
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
    except (binascii.Error, ValueError, RecursionError):  # nested past the parser's depth
        return None


def jwt_claims(token: str) -> dict[str, Any]:
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
    try:
        return int(exp)
    except (OverflowError, ValueError):  # inf, nan: JSON allows them, no time is that
        return None


def redact(token: str) -> str:
    """A form of the token safe to show a person: its kind and a short prefix at most."""
    if token.startswith(API_PREFIX):
        return API_PREFIX + "…"
    if not token:
        return "(empty)"
    return "…" if kind(token) is None else "eyJ…(jwt)"


MAX_SHOWN = 200  # characters of a server's text shown to a person
_TOKEN_SHAPES = (  # anything that looks like a token, held or not, is masked too
    (r"rexec_[A-Za-z0-9]{8,}", API_PREFIX + "…"),
    (r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?", "eyJ…(jwt)"),
)


def shaped_like_token(text: str) -> bool:
    """True when text holds anything shaped like a token (what `clean` would mask)."""
    import re  # not on the `get` hot path: callers look for "rexec_" or "eyJ" first

    return any(re.search(pattern, text) for pattern, _ in _TOKEN_SHAPES)


def clean(text: str, secrets: Iterable[str] = (), limit: int = MAX_SHOWN) -> str:
    """Make a text that came from a server safe to show: mask tokens, drop controls, shorten.

    In that order, so that shortening can never cut a token in two and leave its head
    unmasked: every held secret (longest first) and anything shaped like a token is
    replaced by its redacted form; control and bidirectional-override characters go
    (line breaks and tabs become spaces); then the text is cut to `limit` characters.
    """
    import re  # not on the `get` hot path: only messages built from a server's answer

    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, redact(secret))
    for pattern, replacement in _TOKEN_SHAPES:
        text = re.sub(pattern, replacement, text)
    text = "".join(" " if c in "\t\n\r\v\f" else c for c in text if _printable(c))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _printable(char: str) -> bool:
    code = ord(char)
    if char in "\t\n\r\v\f":
        return True
    # C0, DEL, C1, and the bidirectional overrides that can make a line read backwards.
    return not (
        code < 32 or 127 <= code < 160 or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069
    )
