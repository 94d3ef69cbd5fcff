"""Which host and token a command uses, where each came from, and what the environment says.

Precedence, highest first: command-line option, environment (REXEC_HOST, REXEC_TOKEN),
the config file, the default host. The rules about the environment live here: every
variable a command acts on is read here, and lower modules get plain values (`hosts`
a bool, `Storage` a directory). The exceptions are named where they are: REXEC_TRACE
(`Context.trace` looks at it, `trace.start` reads its value, so that `trace` stays off
`get`'s path), git's own variables (`gitsetup` finds git's config files as git does),
and what the standard library and requests read for themselves (BROWSER, the proxies).

- REXEC_TOKEN answers first, for the effective host only, and never for a plain-http
  host that is not loopback (every command refuses to send it there), unless
  REXEC_ALLOW_INSECURE_HTTP=1 (`insecure_http_allowed`);
- REXEC_TOKEN is trimmed as a login token is (`tokens.trim`), and that trimmed value is
  the one never written to disk: it is what `kept_out` gives the store;
- a stored token is bound to the host it was issued for: with REXEC_HOST elsewhere, the
  config's token is not used (a login stored for that host is);
- an empty git request (`rexec-credential get </dev/null`) asks for the effective host;
- the files live in REXEC_CONFIG_DIR, else $HOME/.rexec (`config_directory`); a private
  CA is REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE (`ca_bundle`); NO_COLOR set and not
  empty turns colour off (`colour_allowed`).

Pure: values in, values out (`config_directory` asks the system for the home directory
only when the environment names none).
"""

from __future__ import annotations

import os

from . import hosts, records, tokens
from .errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

    from .accounts import Account, Login
    from .records import Query, Record
    from .state import State

ENV_TOKEN = "REXEC_TOKEN"
ENV_HOST = "REXEC_HOST"
ENV_ALLOW_INSECURE_HTTP = "REXEC_ALLOW_INSECURE_HTTP"
ENV_CONFIG_DIR = "REXEC_CONFIG_DIR"
ENV_CA_BUNDLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # in the order requests reads them
ENV_NO_COLOR = "NO_COLOR"


class Resolved:
    """The effective host and token, with their sources."""

    __slots__ = ("host", "host_source", "token", "token_source", "account", "active")

    def __init__(
        self,
        host: str,
        host_source: str,
        token: str | None = None,
        token_source: str | None = None,
        account: Account | None = None,
    ) -> None:
        self.host = host
        self.host_source = host_source  # "option", "env", "config" or "default"
        self.token = token
        self.token_source = token_source  # "env", "config" (either file) or None
        self.account = account  # the stored login the token belongs to, when it is one
        self.active = False  # whether that login is the active one (config.json's)

    def explained(self) -> list[str]:
        """The choice in a trace's words: the host and where it came from, the token's
        source and kind (its redacted form, never the token)."""
        lines = [f"host {self.host} (from {SOURCES[self.host_source]})"]
        if not self.token:
            lines.append(f"no token for this host: {ENV_TOKEN} unset, no stored login for it")
        elif self.token_source == "env":
            lines.append(f"token from {ENV_TOKEN}: {tokens.redact(self.token)}")
        elif self.account is not None:
            which = "the active login" if self.active else "a stored login (not the active one)"
            lines.append(
                f"token of {which}, {self.account.describe()}: {tokens.redact(self.token)}"
            )
        else:
            lines.append(f"token of a credential git stored for it: {tokens.redact(self.token)}")
        return lines


def env_token(env: Mapping[str, str]) -> str | None:
    """REXEC_TOKEN, trimmed as a login token is; None when unset or blank."""
    token = env.get(ENV_TOKEN)
    return tokens.trim(token) or None if token else None


def kept_out(env: Mapping[str, str]) -> tuple[str, ...]:
    """Tokens that must never be written: REXEC_TOKEN's value."""
    token = env_token(env)
    return (token,) if token else ()


def insecure_http_allowed(env: Mapping[str, str]) -> bool:
    """REXEC_ALLOW_INSECURE_HTTP=1 (exactly): a token may go over plain http to a host that
    is not loopback (`hosts.sends_in_clear` is given this)."""
    return env.get(ENV_ALLOW_INSECURE_HTTP) == "1"


def config_directory(env: Mapping[str, str]) -> str:
    """Where config.json and credentials.json live: REXEC_CONFIG_DIR, else $HOME/.rexec."""
    override = env.get(ENV_CONFIG_DIR)
    if override:
        return override
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".rexec")


def ca_bundle(env: Mapping[str, str]) -> str | None:
    """The CA certificates that verify a server: REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE, as
    requests reads them; None: the default ones. Verification itself is never turned off."""
    return next((env[name] for name in ENV_CA_BUNDLES if env.get(name)), None)


def colour_allowed(env: Mapping[str, str]) -> bool:
    """False when NO_COLOR is set to anything but the empty text (no-color.org)."""
    return not env.get(ENV_NO_COLOR)


def host_chosen(env: Mapping[str, str]) -> bool:
    """True when REXEC_HOST names a host (it then comes before the stored login's)."""
    return bool(env.get(ENV_HOST))


def effective_host(
    state: State, env: Mapping[str, str], option: str | None = None
) -> tuple[str, str]:
    """(host URL, where it came from): the option, REXEC_HOST, the config, the default.

    A bad --host or REXEC_HOST is the user's usage error; a config `host` that is not a
    URL is a storage error whose remedy is rexec-logout (which copes with it).
    """
    if option:
        return hosts.normalise(option, "--host"), "option"
    if host_chosen(env):
        return hosts.normalise(env[ENV_HOST], ENV_HOST), "env"
    active = state.active()
    if active is not None:
        return active.host, "config"
    configured = state.config.get("host")
    if configured is None or configured == "":
        return hosts.DEFAULT_HOST, "default"
    if not isinstance(configured, str):
        raise BadStoredHost("it is not text")
    try:
        return hosts.normalise(configured), "config"
    except hosts.InvalidHost as exc:
        raise BadStoredHost(exc.fault) from None


class BadStoredHost(StorageError):
    """config.json names a host that is not a valid URL (hand-edited, or another tool's)."""

    def __init__(self, fault: str) -> None:
        super().__init__(
            f"the host in config.json is not a valid URL ({fault}); "
            "run 'rexec-logout' to remove that login, then 'rexec-login'"
        )


def resolve(
    state: State, env: Mapping[str, str], option: str | None = None, now: float = 0
) -> Resolved:
    """The host, then the token for that host: REXEC_TOKEN, else the active login, else
    another stored login for that host (an unexpired one first)."""
    host, source = effective_host(state, env, option)
    resolved = Resolved(host, source)
    token = env_token(env)
    if token:
        resolved.token, resolved.token_source = token, "env"
        return resolved
    login = login_for(state, host, now)
    if login is not None:
        resolved.account, resolved.active = login
        resolved.token, resolved.token_source = resolved.account.token, "config"
        return resolved
    protocol, hostport = hosts.git_parts(host)
    stored = state.find({"protocol": protocol, "host": hostport}, now)
    if stored is not None and stored.get("password"):
        resolved.token, resolved.token_source = stored["password"], "config"
    return resolved


def login_for(state: State, host: str, now: float) -> Login | None:
    """The stored login a command uses for host: the active one when it is on that host,
    else the first unexpired one (else the first)."""
    candidates = state.select(host, None)
    candidates.sort(key=lambda login: login[0].expired(now))  # stable: the active one first
    return candidates[0] if candidates else None


def git_query(request: Query, state: State, env: Mapping[str, str]) -> Query:
    """The request `get` matches: an empty one asks for the effective host's login."""
    if records.erasable(request):  # it names a protocol, host, path or username
        return request
    protocol, hostport = hosts.git_parts(effective_host(state, env)[0])
    return {"protocol": protocol, "host": hostport}


class Answer:
    """What `get` answers, and why: the record (None: nothing), where it came from
    ("env", "login" or "stored"), the login it is, the query matched, and why
    REXEC_TOKEN did not answer."""

    __slots__ = ("record", "source", "login", "query", "env_reason")

    def __init__(self) -> None:
        self.record: Record | None = None
        self.source = ""
        self.login: Account | None = None
        self.query: Query = {}
        self.env_reason = ""


def git_answer(
    request: Query, state: State, env: Mapping[str, str], now: float, bearer: bool = False
) -> Answer:
    """`get`'s answer: REXEC_TOKEN for the effective host first, then the stored logins
    and credentials (`State.match`). With `bearer` (`rexec-credential --bearer`), a Rexec
    login — stored or REXEC_TOKEN — answers a request that announced
    `capability[]=authtype` as `authtype=Bearer` and `credential=<token>`; any other
    request, as username and password."""
    answer = Answer()
    capable = records.capable(request)
    convert = bearer and capable
    record, answer.env_reason = env_decision(request, state, env, now)
    if record is not None:
        answer.record = records.bearer(record) if convert else record
        answer.source = "env"
        return answer
    answer.query = git_query(request, state, env)
    found = state.match(answer.query, now, capable)
    if found is not None:
        record, answer.login = found
        answer.record = records.bearer(record) if convert and answer.login else record
        answer.source = "login" if answer.login else "stored"
    return answer


def env_decision(
    request: Query, state: State, env: Mapping[str, str], now: float
) -> tuple[Record | None, str]:
    """REXEC_TOKEN's record for `get`, or None and why not (for a trace)."""
    token = env_token(env)
    if not token:
        return None, "not set"
    if not token.isprintable():
        return None, "holds control characters: not answered"  # no header could carry it
    host, source = effective_host(state, env)
    if hosts.sends_in_clear(host, insecure_http_allowed(env)):
        return None, f"not answered for {host}: plain http to a host that is not loopback"
    claimed = tokens.jwt_claims(token).get("username")
    # An API token names no user: any username asked for is taken, else the placeholder.
    # A claim with control characters is not passed on to git (which may show it).
    if isinstance(claimed, str) and claimed and claimed.isprintable():
        username = claimed
    else:
        username = request.get("username", records.PLACEHOLDER_USERNAME)
    protocol, hostport = hosts.git_parts(host)
    record: Record = {
        "protocol": protocol,
        "host": hostport,
        "username": username,
        "password": token,
    }
    expires = tokens.expiry(token)
    if expires is not None:
        record["password_expiry_utc"] = expires
    why = records.refusal(request, record, now, host_wide=True)
    if why is not None:
        return None, f"it is for {host} (host from {SOURCES[source]}): {why}"
    return record, ""


# Where the effective host came from, in a trace's words.
SOURCES = {
    "option": "--host",
    "env": ENV_HOST,
    "config": "config.json",
    "default": "the default",
}
