"""Which host and token a command uses, and where each came from (SPEC §3). Pure.

Precedence, highest first: command-line option, environment (REXEC_HOST,
REXEC_TOKEN), config file, default. A stored token is bound to its host: it is
used only when the effective host is the host it was stored for.
"""

from __future__ import annotations

from . import hosts, store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping


class Resolved:
    """The effective host and token, with their sources."""

    __slots__ = ("host", "host_source", "token", "token_source", "username")

    def __init__(self, host: str, host_source: str, token: str | None = None,
                 token_source: str | None = None, username: str | None = None) -> None:
        self.host = host
        self.host_source = host_source  # "option", "env", "config" or "default"
        self.token = token
        self.token_source = token_source  # "env", "config" or None
        self.username = username


def resolve(data: Mapping, env: Mapping[str, str], host_option: str | None = None) -> Resolved:
    """Apply option → env → config → default to the host, then find the token for that host."""
    if host_option:
        host, source = hosts.normalise(host_option), "option"
    elif env.get("REXEC_HOST"):
        host, source = hosts.normalise(env["REXEC_HOST"]), "env"
    elif isinstance(data.get("host"), str) and data["host"]:
        host, source = hosts.normalise(data["host"]), "config"
    else:
        host, source = hosts.DEFAULT_HOST, "default"
    resolved = Resolved(host, source)
    if env.get("REXEC_TOKEN"):
        resolved.token, resolved.token_source = env["REXEC_TOKEN"], "env"
        return resolved
    protocol, hostport = hosts.git_parts(host)
    for record in store.records(data):
        if record["protocol"] == protocol and record["host"] == hostport and record["password"]:
            resolved.token, resolved.token_source = record["password"], "config"
            if record["username"] != store.PLACEHOLDER_USERNAME:
                resolved.username = record["username"]
            break
    return resolved
