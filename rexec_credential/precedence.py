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

    __slots__ = ("host", "host_source", "token", "token_source")

    def __init__(self, host: str, host_source: str, token: str | None = None,
                 token_source: str | None = None) -> None:
        self.host = host
        self.host_source = host_source  # "option", "env", "config" or "default"
        self.token = token
        self.token_source = token_source  # "env", "config" or None


def resolve(data: Mapping, env: Mapping[str, str], host_option: str | None = None,
            now: float = 0) -> Resolved:
    """Apply option → env → config → default to the host, then find the token for that host.

    A bad --host or REXEC_HOST is the user's usage error; a config `host` that is not a
    URL (hand-edited, or another tool's) counts as no login, as store.active_record sees it.
    """
    if host_option:
        host, source = hosts.normalise(host_option), "option"
    elif env.get("REXEC_HOST"):
        host, source = hosts.normalise(env["REXEC_HOST"]), "env"
    else:
        configured = store.active_host(data)
        host, source = (configured, "config") if configured else (hosts.DEFAULT_HOST, "default")
    resolved = Resolved(host, source)
    if env.get("REXEC_TOKEN"):
        resolved.token, resolved.token_source = env["REXEC_TOKEN"], "env"
        return resolved
    protocol, hostport = hosts.git_parts(host)
    candidates = [r for r in store.records(data)
                  if r["protocol"] == protocol and r["host"] == hostport and r["password"]]
    # An unexpired token first; an expired one still beats none (the server then says why).
    candidates.sort(key=lambda record: store.expired(record, now))
    if candidates:
        resolved.token, resolved.token_source = candidates[0]["password"], "config"
    return resolved
