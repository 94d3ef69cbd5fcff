"""git's credential-helper wire format: read a request, format a response. Pure.

Facts from git (Documentation/git-credential, credential.c): one `key=value` per
line, split at the first `=`, no quoting; the list ends at a blank line or EOF (git
closes stdin and sends no blank line); a line, newline included, is at most 65535
bytes; keys ending in `[]` are lists whose empty value clears them; `url=` replaces
the credential with the URL's parts; unknown keys are kept here and ignored by the
caller.

Capabilities (git 2.46): a request lists the ones its sender understands in
`capability[]`, before anything that depends on them. With `authtype`, a credential
may be `authtype` and `credential` (git sends `Authorization: <authtype> <credential>`)
instead of a username and password; an answer that carries them starts with
`capability[]=authtype`. Unknown capabilities are ignored.
"""

from __future__ import annotations

from .errors import ProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Dict, List, Mapping, Union

    Request = Dict[str, Union[str, List[str]]]

MAX_LINE = 65535  # bytes, newline included (git-credential(1), since 2.46)
LIST_SUFFIX = "[]"
# What `url=` replaces: git's credential_from_url starts with credential_clear().
CREDENTIAL_KEYS = (
    "protocol",
    "host",
    "path",
    "username",
    "password",
    "password_expiry_utc",
    "oauth_refresh_token",
)
CAPABILITIES = "capability[]"
AUTHTYPE = "authtype"  # the capability, and the attribute it allows
CREDENTIAL = "credential"  # the pre-encoded credential that goes with `authtype`
# The order `get` prints its answer in: git's credential_write puts capabilities first,
# then what depends on them.
RESPONSE_ORDER = (CAPABILITIES, AUTHTYPE, CREDENTIAL) + CREDENTIAL_KEYS
_BAD = "invalid credential input: "
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def read(stream: IO[bytes]) -> Request:
    """Read one request from a binary stream (up to a blank line or EOF) and parse it."""
    chunks = []
    while True:
        # Bounded: a longer line stops the read here and parse() rejects it.
        line = stream.readline(MAX_LINE)
        chunks.append(line)
        if not line.endswith(b"\n") or line in (b"\n", b"\r\n"):
            break
    return parse(b"".join(chunks))


def parse(data: bytes) -> Request:
    """The attributes of a request; ProtocolError for malformed input."""
    request: Request = {}
    for number, raw in enumerate(data.split(b"\n"), 1):
        if len(raw) >= MAX_LINE:  # the line plus its newline would exceed git's limit
            raise ProtocolError(f"{_BAD}line {number} is longer than {MAX_LINE} bytes")
        if raw.endswith(b"\r"):  # git's strbuf_getline accepts CRLF
            raw = raw[:-1]
        if not raw:
            break
        key, value = _split(raw, number)
        _apply(request, key, value)
    return request


def _split(raw: bytes, number: int) -> tuple[str, str]:
    if b"\0" in raw:
        raise ProtocolError(f"{_BAD}line {number} contains a NUL byte")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{_BAD}line {number} is not valid UTF-8") from None
    key, sep, value = line.partition("=")
    if not sep:
        # Never echo the line: it may be a pasted secret.
        raise ProtocolError(f"{_BAD}line {number} has no '=' (expected key=value)")
    return key, value


def _apply(request: Request, key: str, value: str) -> None:
    if key.endswith(LIST_SUFFIX):
        values = request.setdefault(key, [])
        if value:
            values.append(value)  # type: ignore[union-attr]
        else:
            values.clear()  # type: ignore[union-attr]  # `key[]=` empties the list
    elif key == "url":
        for name in CREDENTIAL_KEYS + (AUTHTYPE, CREDENTIAL):  # credential_clear()
            request.pop(name, None)
        request.update(split_url(value))
    else:
        request[key] = value


def split_url(url: str) -> dict[str, str]:
    """protocol/host/path/username/password of a URL, exactly as git's credential_from_url."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ProtocolError(f"{_BAD}url has no scheme")
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    parts = {"protocol": scheme}
    userinfo, at, host = authority.partition("@")
    if not at:
        host = userinfo
    else:
        username, colon, password = userinfo.partition(":")
        parts["username"] = _unquote(username)
        if colon:
            parts["password"] = _unquote(password)
    parts["host"] = _unquote(host)
    path = _unquote(tail.lstrip("/"))
    if path:
        parts["path"] = path.rstrip("/") or path[0]  # git trims trailing slashes, keeps one char
    for name, value in parts.items():
        if "\n" in value or "\0" in value:
            raise ProtocolError(f"{_BAD}url has a newline or NUL in its {name}")
    return parts


def _unquote(text: str) -> str:
    if "%" not in text:
        return text  # the common case: no import
    from urllib.parse import unquote_to_bytes  # keeps bad escapes literally, as git does

    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{_BAD}url is not valid UTF-8 once decoded") from None


def announces(request: Mapping[str, object], capability: str) -> bool:
    """True when the request lists `capability` in its `capability[]` (git 2.46)."""
    listed = request.get(CAPABILITIES)
    return isinstance(listed, list) and capability in listed


def is_true(value: object) -> bool:
    """A git-config boolean (`quit`, `ephemeral`): 1/true/yes/on or a non-zero integer."""
    if not isinstance(value, str):
        return False
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    digits = word[1:] if word[:1] in "+-" else word
    return digits.isascii() and digits.isdigit() and int(digits) != 0


def render(attrs: Mapping[str, object]) -> str:
    """Response lines: RESPONSE_ORDER keys first, then the rest; a list gives one line per item."""
    keys = [k for k in RESPONSE_ORDER if k in attrs] + [k for k in attrs if k not in RESPONSE_ORDER]
    lines = []
    for key in keys:
        value = attrs[key]
        for item in value if isinstance(value, list) else [value]:
            lines.append(_line(key, str(item)))
    return "".join(lines)


def _line(key: str, value: str) -> str:
    # git refuses to send a newline in a value (CVE-2020-5260); a helper must not either,
    # or a stored value could inject attributes into git's view.
    if "=" in key or any(c in key + value for c in "\n\0") or not key:
        raise ProtocolError(f"refusing to send a malformed {key or 'empty'} attribute")
    return f"{key}={value}\n"
