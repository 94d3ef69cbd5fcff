"""Show who the current Rexec login belongs to, live from the server.

The token comes from REXEC_TOKEN or the stored logins (only one stored for the host in
use); its kind and expiry are shown, never the token itself. With --all, every login
known on this machine is checked with its server, all at once.

Usage:
  rexec-whoami [--host=URL] [--porcelain | --json]
  rexec-whoami --all [--offline] [--porcelain | --json]
  rexec-whoami (-h | --help)
  rexec-whoami --version

Options:
  --host=URL   Rexec server (default: REXEC_HOST, then the config file, then
               https://rexec.pipeops.io).
  --porcelain  Print key=value lines for scripts: username, email, tier, role,
               host, token_source, token_kind, token_expires, token_name (and
               with --all: active, state and error; a blank line between logins).
  --json       Print the same keys as one JSON object (with --all, a list).
  --all        Every login known here: the stored accounts, the active login
               of the config file, and REXEC_TOKEN when set, each marked
               valid, rejected, expired or unreachable.
  --offline    With --all: list the logins without asking any server
               (state unchecked, or expired when the token says so).
  -h, --help   Show this help.
  --version    Show the version.

Exit status: 0 when the login (with --all: every login) is valid; 1 when not logged in
or a token was rejected or has expired; 3 when the server could not be reached (for the
whole list: when a login could not be checked and none was rejected).
"""

from __future__ import annotations

import json

from .. import commands, precedence, tokens
from ..accounts import Account, when
from ..errors import AuthError, RexecError, ServiceError, TokenRejected

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..api import Profile
    from ..context import Context

RULE = "─" * 29
KINDS = {"api": "API token", "jwt": "JWT"}
NOT_LOGGED_IN = "Not logged in{where}. Run 'rexec-login' first."
SWITCH_HINT = " Stored logins ('rexec-whoami --all'): 'rexec-login --switch' makes one active."
VALID, REJECTED, EXPIRED, UNREACHABLE = "valid", "rejected", "expired", "unreachable"
UNCHECKED = "unchecked"


class Options(commands.Options):
    """rexec-whoami's options."""

    __slots__ = ("host", "porcelain", "json", "all", "offline")
    host: str | None
    porcelain: bool
    json: bool
    all: bool
    offline: bool


class _Login:
    """One login to show: where its token came from, and what the server said of it."""

    __slots__ = ("account", "source", "active", "profile", "state", "error")

    def __init__(self, account: Account, source: str, active: bool) -> None:
        self.account = account
        self.source = source  # "env" (REXEC_TOKEN), "config" (config.json), "credentials"
        self.active = active  # the active login of config.json
        self.profile: Profile | None = None
        self.state = VALID
        self.error: str | None = None

    def check(self, ctx: Context, now: float, contain: bool = True, offline: bool = False) -> None:
        """Ask the server (not for a token already known to have expired); a refusal is
        recorded, and so is any other failure when `contain` (else it is raised)."""
        try:
            if self.account.kind is None:  # refused before any request, as plain whoami does
                raise TokenRejected(f"Invalid token: malformed; {tokens.VALID_FORMS}", "malformed")
            if self.account.expired(now):
                raise TokenRejected(
                    f"Invalid token: expired {when(self.account.expires)}", "token is expired"
                )
            if offline:
                self.state = UNCHECKED
                return
            self.profile = ctx.api(self.account.host).profile(self.account.token)
        except TokenRejected as exc:
            self.state = EXPIRED if exc.reason == "token is expired" else REJECTED
            self.error = with_remedy(exc, self.source)
        except RexecError as exc:
            if not contain:
                raise
            self.state, self.error = UNREACHABLE, exc.message

    def facts(self) -> dict[str, Any]:
        """The --porcelain/--json keys; every text cleaned, whether stored or received."""
        profile = self.profile
        role = "" if profile is None else ("admin" if profile["is_admin"] else "user")
        return {
            "username": tokens.clean(profile["username"] if profile else self.account.username),
            "email": tokens.clean((profile and profile["email"]) or self.account.email),
            "tier": tokens.clean((profile and profile["tier"]) or self.account.tier),
            "role": role,
            "host": self.account.host,
            "token_source": "env" if self.source == "env" else "config",
            "token_kind": self.account.kind or "",
            "token_expires": self.account.own_expiry,
            "token_name": tokens.clean(self.account.token_name) if self.account.device else "",
        }


def run(opts: Options, ctx: Context) -> int:
    """Fetch /api/profile for one login, or for every login with --all."""
    if opts.all:
        return _all(opts, ctx)
    state = ctx.storage.load()
    login = precedence.resolve(state, ctx.env, opts.host, ctx.clock())
    for line in login.explained():
        ctx.trace(line)
    if not login.token:
        where = f" to {login.host}" if login.host_source in ("option", "env") else ""
        message = NOT_LOGGED_IN.format(where=where)
        if state.accounts:  # config.json gone (or elsewhere), logins stored
            message += SWITCH_HINT
        raise AuthError(message)
    try:
        tokens.classify(login.token)  # a malformed token is refused before any request
    except AuthError as exc:
        if login.token_source != "env":
            raise
        raise AuthError(f"{exc.message} (the token comes from {precedence.ENV_TOKEN})") from None
    account = login.account or Account(login.host, "", login.token)
    source = "env" if login.token_source == "env" else "config" if login.active else "credentials"
    shown = _Login(account, source, login.active)
    shown.check(ctx, ctx.clock(), contain=False)
    if shown.error is not None:
        raise AuthError(f"Error: {shown.error}")
    _print(ctx, opts, [shown], single=True)
    _warn_expiring(ctx, [shown], ctx.clock())
    return 0


def _all(opts: Options, ctx: Context) -> int:
    import threading

    state = ctx.storage.load()
    logins = [
        _Login(account, "config" if active else "credentials", active)
        for account, active in state.logins()
    ]
    env_token = precedence.env_token(ctx.env)
    if env_token:
        host = precedence.effective_host(state, ctx.env)[0]
        logins.insert(0, _Login(Account(host, "", env_token), "env", False))
    if not logins:
        raise AuthError(NOT_LOGGED_IN.format(where=""))
    now = ctx.clock()
    offline = opts.offline
    first = f" ({precedence.ENV_TOKEN} first)" if env_token else ""
    ctx.trace(
        f"{len(logins)} login{'s' if len(logins) != 1 else ''} to "
        f"{'list' if offline else 'check'}{first}"
    )
    threads = [
        threading.Thread(target=login.check, args=(ctx, now, True, offline), daemon=True)
        for login in logins
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for login in logins:
        ctx.trace(f"{login.account.describe()} ({_source(login)}): {login.state}")
    _print(ctx, opts, logins, single=False)
    if offline:
        return 0  # a listing, not a check
    _warn_expiring(ctx, [login for login in logins if login.state == VALID], now)
    states = {login.state for login in logins}
    if states & {REJECTED, EXPIRED}:
        return AuthError.exit_code
    if UNREACHABLE in states:
        return ServiceError.exit_code
    return 0


RENEW_WITHIN = 7 * 86400  # seconds before expiry from which whoami says to renew


def _warn_expiring(ctx: Context, logins: list[_Login], now: float) -> None:
    """One line on stderr for each stored token that runs out within RENEW_WITHIN."""
    for login in logins:
        expiry = login.account.own_expiry
        if login.source != "env" and expiry is not None and now < expiry <= now + RENEW_WITHIN:
            ctx.warn(
                f"warning: the token of {login.account.describe()} expires {when(expiry)}; "
                "'rexec-login --renew' makes a new one"
            )


def _print(ctx: Context, opts: Options, logins: list[_Login], single: bool) -> None:
    if opts.json:
        objects = [_json_object(login, single) for login in logins]
        ctx.out(json.dumps(objects[0] if single else objects, ensure_ascii=False))
        return
    for number, login in enumerate(logins):
        if number:
            ctx.out()
        if opts.porcelain:
            for key, value in _json_object(login, single).items():
                ctx.out(f"{key}={_porcelain(value)}")
        else:
            _block(ctx, login, single)


def _json_object(login: _Login, single: bool) -> dict[str, Any]:
    obj = login.facts()
    if not single:
        obj.update(active=login.active, state=login.state, error=login.error)
    return obj


def _porcelain(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _block(ctx: Context, login: _Login, single: bool) -> None:
    """The Rexec CLI's block, with the token's source, kind and expiry (and, with --all, state)."""
    facts = login.facts()
    marks = [
        m
        for m, on in (("active", login.active), (precedence.ENV_TOKEN, login.source == "env"))
        if on and not single
    ]
    ctx.out(ctx.colour("User Profile", "1") + (f"  ({', '.join(marks)})" if marks else ""))
    ctx.out(RULE)
    ctx.out(f"  Username: {facts['username'] or '(unknown)'}")
    ctx.out(f"  Email:    {facts['email']}")
    ctx.out(f"  Tier:     {facts['tier']}")
    if facts["role"] == "admin":
        ctx.out("  Role:     Admin")
    ctx.out(f"  Host:     {login.account.host}")
    kind = KINDS.get(facts["token_kind"], "token")
    if facts["token_name"]:
        kind = f"device token '{facts['token_name']}'"
    ctx.out(f"  Token:    {kind} from {_source(login)}, {_expiry(facts['token_expires'])}")
    if not single:
        ctx.out(f"  Status:   {login.error or login.state}")


def _source(login: _Login) -> str:
    return {
        "env": precedence.ENV_TOKEN,
        "config": "the config file",
        "credentials": "credentials.json",
    }[login.source]


def with_remedy(exc: TokenRejected, source: str) -> str:
    """The service's refusal, and what to do about it."""
    if exc.reason == TokenRejected.SESSION_LOCKED:
        return f"{exc.message}. Unlock it in the Rexec web app, then try again."
    if source == "env":
        return (
            f"{exc.message}. The token comes from {precedence.ENV_TOKEN}: set a valid one, "
            "or unset it and run 'rexec-login'."
        )
    return f"{exc.message}. Run 'rexec-login' to log in again."


def _expiry(expires: int | None) -> str:
    return "no expiry" if expires is None else "expires " + when(expires)
