"""Rexec host URLs: one strict parser, git's protocol/host, loopback, plain http. Pure.

Every host URL the program uses goes through `normalise`, wherever it comes from (an
option, REXEC_HOST, a stored file): anything that is not a plain http(s) URL of a host
name or an address is refused with one line that never quotes the value (a token pasted
by mistake must not be echoed).
"""

from __future__ import annotations

from .errors import UsageError

DEFAULT_HOST = "https://rexec.pipeops.io"
_DEFAULT_PORTS = {"https": "443", "http": "80"}
# Host names (RFC 1123): letters, digits and hyphens in labels of 1-63 characters. An
# underscore is no part of a host name, and every API token has one.
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_IPV6_CHARS = frozenset("0123456789abcdef:.")
_DIGITS = frozenset("0123456789")
# What a path may hold (RFC 3986 pchar and '/'; '%' for escapes): no spaces, quotes,
# controls or non-ASCII, nothing git or a shell would read differently.
_PATH_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/%"
)


class InvalidHost(UsageError):
    """A text that is not a host URL; `fault` says why, never quoting it."""

    def __init__(self, what: str, fault: str) -> None:
        super().__init__(f"invalid {what}: {fault}; use https://HOST[:PORT]")
        self.fault = fault


MAX_NAME = 253  # characters in a whole host name (RFC 1035)
MAX_LABEL = 63  # characters in one of its labels


def normalise(url: str, what: str = "host URL") -> str:
    """Canonical form: lower-case scheme and host, default port dropped, no trailing '/'.

    A host given without a scheme (a name, `name:port` or an address) means https://.
    Anything else raises InvalidHost (a UsageError) naming `what` (e.g. "--host") and the
    fault, never the value.
    """
    url = url.strip()
    fault = _fault(url)
    if fault:
        raise InvalidHost(what, fault)
    if "://" not in url:
        url = "https://" + url
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidHost(what, "the scheme must be https or http")
    netloc, _, path = rest.partition("/")
    host, port = _split_port(netloc.lower(), what)
    if port == _DEFAULT_PORTS[scheme]:
        port = ""
    path = path.rstrip("/")
    if set(path) - _PATH_CHARS:
        raise InvalidHost(what, "its path has characters a URL cannot hold")
    return f"{scheme}://{host}{':' + port if port else ''}{'/' + path if path else ''}"


def _fault(url: str) -> str | None:
    """What makes the text as a whole unusable as a host URL, or None."""
    if not url:
        return "it is empty"
    if not url.isascii() or not url.isprintable() or " " in url:
        return "it holds spaces, control or non-ASCII characters"
    if "?" in url or "#" in url or "@" in url.rpartition("://")[2].partition("/")[0]:
        return "a host URL has no query, fragment or user name"
    if _looks_like_token(url):
        return "it looks like a token, not a host"
    return None


def _looks_like_token(url: str) -> bool:
    if "rexec_" not in url and "eyJ" not in url:  # no regular expression on git's hot path
        return False
    from .tokens import shaped_like_token

    return shaped_like_token(url)


def _split_port(netloc: str, what: str) -> tuple[str, str]:
    if netloc.startswith("["):  # an IPv6 literal, e.g. [::1]:8080
        address, closed, after = netloc[1:].partition("]")
        host = f"[{address}]"
        if not closed or (after and not after.startswith(":")):
            raise InvalidHost(what, "unbalanced brackets around an address")
        port = after[1:]
        if not (address.count(":") >= 2 and set(address) <= _IPV6_CHARS):
            raise InvalidHost(what, "not an IPv6 address in brackets")
    else:
        host, _, port = netloc.partition(":")
        fault = _name_fault(host)
        if fault:
            raise InvalidHost(what, fault)
    if port or netloc.endswith(":"):
        if not (port and len(port) <= 5 and set(port) <= _DIGITS and 0 < int(port) < 65536):
            raise InvalidHost(what, "the port must be a number from 1 to 65535")
        port = str(int(port))  # 0443 is 443
    return host, port


def _name_fault(name: str) -> str | None:
    """What makes a host name (or IPv4 address) unusable, or None."""
    if not name:
        return "it names no host"
    if "[" in name or "]" in name:
        return "unbalanced brackets around an address"
    if len(name) > MAX_NAME:
        return f"a host name has at most {MAX_NAME} characters"
    for label in name.split("."):
        if not label:
            return "a host name has no empty labels (two dots in a row, or a dot at an end)"
        if len(label) > MAX_LABEL:
            return f"a label of a host name has at most {MAX_LABEL} characters"
        if set(label) - _LABEL_CHARS or label[0] == "-" or label[-1] == "-":
            return (
                "a host name holds only letters, digits, hyphens (not at a label's ends) and dots"
            )
    return None


def git_parts(url: str) -> tuple[str, str]:
    """(protocol, host[:port]) of a normalised URL, as git's credential protocol names them."""
    scheme, _, rest = url.partition("://")
    return scheme, rest.partition("/")[0]


def is_loopback(url: str) -> bool:
    """True for the name `localhost` and the literal addresses 127.0.0.0/8 and [::1].

    Only literals: a name such as 127.0.0.1.example.com resolves wherever its owner likes.
    """
    host = git_parts(url)[1]
    name = host.rpartition(":")[0] if not host.endswith("]") and ":" in host else host
    return name in ("localhost", "[::1]") or _is_127_literal(name)


def _is_127_literal(name: str) -> bool:
    """A dotted-quad in 127.0.0.0/8 written canonically (no leading zeros, no short forms)."""
    octets = name.split(".")
    return (
        len(octets) == 4
        and octets[0] == "127"
        and all(o.isdigit() and o.isascii() and str(int(o)) == o and int(o) < 256 for o in octets)
    )


def sends_in_clear(url: str, insecure_allowed: bool) -> bool:
    """True when a token must not go to url: plain http to anything but loopback, unless
    `insecure_allowed` (REXEC_ALLOW_INSECURE_HTTP=1: `precedence.insecure_http_allowed`)."""
    return url.startswith("http://") and not is_loopback(url) and not insecure_allowed


def require_secure(url: str, insecure_allowed: bool) -> None:
    """Refuse (UsageError) to send a token where sends_in_clear says it must not go."""
    if sends_in_clear(url, insecure_allowed):
        raise UsageError(
            f"refusing to send a token over plain http to {url}; "
            "use https:// or set REXEC_ALLOW_INSECURE_HTTP=1"
        )
