"""Show who the current Rexec login belongs to, live from the server.

The token comes from REXEC_TOKEN or the config file (only when stored for the host
in use); its kind and expiry are shown, never the token itself.

Usage:
  rexec-whoami [--host=URL] [--porcelain]
  rexec-whoami (-h | --help)
  rexec-whoami --version

Options:
  --host=URL   Rexec server (default: REXEC_HOST, then the config file, then
               https://rexec.pipeops.io).
  --porcelain  Print key=value lines for scripts: username, email, tier, role,
               host, token_source, token_kind, token_expires.
  -h, --help   Show this help.
  --version    Show the version.
"""

from __future__ import annotations

import time

from .. import tokens
from ..errors import AuthError, TokenRejected
from ..precedence import resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..context import Context

RULE = "─" * 29
SOURCES = {"env": "REXEC_TOKEN", "config": "the config file"}
KINDS = {"api": "API token", "jwt": "JWT"}


def run(args: dict, ctx: Context) -> int:
    """Fetch /api/profile with the effective token and print it."""
    login = resolve(ctx.config.load(), ctx.env, args["--host"], ctx.clock())
    if not login.token:
        where = f" to {login.host}" if login.host_source in ("option", "env") else ""
        raise AuthError(f"Not logged in{where}. Run 'rexec-login' first.")
    kind = tokens.classify(login.token)
    expires = tokens.expiry(login.token)
    try:
        if expires is not None and expires <= ctx.clock():
            raise TokenRejected("Invalid token: expired " + _when(expires), "token is expired")
        profile = ctx.api(login.host).profile(login.token)
    except TokenRejected as exc:
        raise AuthError(f"Error: {with_remedy(exc, login.token_source)}") from None
    facts = {
        "username": profile["username"],
        "email": profile["email"] or "",
        "tier": profile["tier"] or "",
        "role": "admin" if profile["is_admin"] else "user",
        "host": login.host,
        "token_source": login.token_source,
        "token_kind": kind,
        "token_expires": "" if expires is None else str(expires),
    }
    if args["--porcelain"]:
        for key, value in facts.items():
            ctx.out(f"{key}={value}")
        return 0
    ctx.out(ctx.colour("User Profile", "1"))
    ctx.out(RULE)
    ctx.out(f"  Username: {facts['username']}")
    ctx.out(f"  Email:    {facts['email']}")
    ctx.out(f"  Tier:     {facts['tier']}")
    if profile["is_admin"]:
        ctx.out("  Role:     Admin")
    ctx.out(f"  Host:     {login.host}")
    ctx.out(f"  Token:    {KINDS[kind]} from {SOURCES[login.token_source]}, {_expiry(expires)}")
    return 0


def with_remedy(exc: TokenRejected, source: str | None) -> str:
    """The service's refusal, and what to do about it."""
    if exc.reason == TokenRejected.SESSION_LOCKED:
        return f"{exc.message}. Unlock it in the Rexec web app, then try again."
    if source == "env":
        return (f"{exc.message}. The token comes from REXEC_TOKEN: set a valid one, "
                "or unset it and run 'rexec-login'.")
    return f"{exc.message}. Run 'rexec-login' to log in again."


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _expiry(expires: int | None) -> str:
    return "no expiry" if expires is None else "expires " + _when(expires)
