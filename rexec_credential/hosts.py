"""Rexec host URLs: normalise, split into git's protocol/host, refuse plain http. Pure."""

from __future__ import annotations

from .errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

DEFAULT_HOST = "https://rexec.pipeops.io"
_DEFAULT_PORTS = {"https": "443", "http": "80"}
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")


def normalise(url: str) -> str:
    """Canonical form: lower-case scheme and host, default port dropped, no trailing '/'.

    A host given without a scheme (a name, `name:port` or an address) means https://.
    """
    url = url.strip()
    if "://" not in url:
        url = "https://" + url
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise UsageError(f"invalid host URL {url!r}: use https://HOST[:PORT]")
    netloc, slash, path = rest.partition("/")
    if "?" in rest or "#" in rest or "@" in netloc:
        raise UsageError(f"invalid host URL {url!r}: use https://HOST[:PORT]")
    host, port = _split_port(netloc.lower(), url)
    if port == _DEFAULT_PORTS[scheme]:
        port = ""
    path = path.rstrip("/")
    return f"{scheme}://{host}{':' + port if port else ''}{'/' + path if path else ''}"


def _split_port(netloc: str, url: str) -> tuple[str, str]:
    if netloc.startswith("["):  # IPv6 literal, e.g. [::1]:8080
        host, _, after = netloc.partition("]")
        host += "]"
        port = after[1:] if after.startswith(":") else after
        ok = len(host) > 2 and set(host[1:-1]) <= frozenset("0123456789abcdef:.")
    else:
        host, _, port = netloc.partition(":")
        ok = bool(host) and set(host) <= _HOST_CHARS
    if not ok or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise UsageError(f"invalid host URL {url!r}: use https://HOST[:PORT]")
    return host, port


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


def sends_in_clear(url: str, env: Mapping[str, str]) -> bool:
    """True when a token must not go to url: plain http to anything but loopback, unless
    REXEC_ALLOW_INSECURE_HTTP=1."""
    return (
        url.startswith("http://")
        and not is_loopback(url)
        and env.get("REXEC_ALLOW_INSECURE_HTTP") != "1"
    )


def require_secure(url: str, env: Mapping[str, str]) -> None:
    """Refuse (UsageError) to send a token where sends_in_clear says it must not go."""
    if sends_in_clear(url, env):
        raise UsageError(
            f"refusing to send a token over plain http to {url}; "
            "use https:// or set REXEC_ALLOW_INSECURE_HTTP=1"
        )
