"""Rexec host URLs: normalise, split into git's protocol/host, refuse plain http. Pure."""

from __future__ import annotations

from .errors import UsageError

DEFAULT_HOST = "https://rexec.pipeops.io"
_DEFAULT_PORTS = {"https": "443", "http": "80"}
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")


def normalise(url: str) -> str:
    """Canonical form: lower-case scheme and host, default port dropped, no trailing '/'."""
    scheme, sep, rest = url.strip().partition("://")
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
    """True for localhost, 127.0.0.0/8 and [::1]."""
    host = git_parts(url)[1]
    name = host.rpartition(":")[0] if not host.endswith("]") and ":" in host else host
    return name in ("localhost", "[::1]") or name.startswith("127.")


def require_secure(url: str, env: dict) -> None:
    """Refuse to send a token over plain http to anything but loopback (SPEC §4)."""
    if url.startswith("http://") and not is_loopback(url):
        if env.get("REXEC_ALLOW_INSECURE_HTTP") != "1":
            raise UsageError(
                f"refusing to send a token over plain http to {url}; "
                "use https:// or set REXEC_ALLOW_INSECURE_HTTP=1"
            )
