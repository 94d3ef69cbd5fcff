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
from ..errors import AuthError
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
        raise AuthError("Not logged in. Run 'rexec-login' first.")
    kind = tokens.classify(login.token)
    try:
        profile = ctx.api(login.host).profile(login.token)
    except AuthError as exc:
        raise AuthError(f"Error: {exc.message}") from None
    expires = tokens.expiry(login.token)
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


def _expiry(expires: int | None) -> str:
    if expires is None:
        return "no expiry"
    return "expires " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
