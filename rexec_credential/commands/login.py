"""Log in to a Rexec server and store the login in ~/.rexec/config.json.

Without --token, opens the browser on the server's login page and waits for it to
redirect to a one-time callback address on this machine's loopback interface.
With --token, validates an API token (rexec_...) or a JWT and stores it; use
`--token -` to read it from standard input, so it never shows in argv or history.

Usage:
  rexec-login [--host=URL] [--port=PORT] [--timeout=SECONDS] [--no-browser]
  rexec-login --token=TOKEN [--host=URL]
  rexec-login (-h | --help)
  rexec-login --version

Options:
  --host=URL         Rexec server (default: REXEC_HOST, then the config file,
                     then https://rexec.pipeops.io).
  --port=PORT        Loopback port for the browser callback; 0 picks any free
                     port [default: 9876].
  --timeout=SECONDS  How long to wait for the browser [default: 300].
  --no-browser       Print the login address instead of opening a browser.
  --token=TOKEN      Log in with this API token or JWT; - reads it from
                     standard input.
  -h, --help         Show this help.
  --version          Show the version.
"""

from __future__ import annotations

from .. import hosts, store, tokens
from ..errors import AuthError, StorageError, UsageError
from ..precedence import resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..context import Context


def run(args: dict, ctx: Context) -> int:
    """Log in with --token, or through the browser."""
    host = _effective_host(args["--host"], ctx)
    if args["--token"] is not None:
        token = _token_argument(args["--token"], ctx)
        profile = establish(ctx, host, token)
        ctx.success(f"Logged in as {_who(profile)}")
        return 0
    return browser_login(args, ctx, host)


def _effective_host(option: str | None, ctx: Context) -> str:
    try:
        data = ctx.config.load()
    except StorageError:
        data = {}  # a corrupted file is moved aside when the login is written
    return resolve(data, ctx.env, option).host


def _token_argument(value: str, ctx: Context) -> str:
    if value != "-":
        return value.strip()
    raw = ctx.stdin.read(65536)
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise AuthError("Invalid token: standard input is not UTF-8 text; "
                        + tokens.VALID_FORMS) from None


def establish(ctx: Context, host: str, token: str) -> dict:
    """Check the token's form, validate it with the service, store it as the active login."""
    kind = tokens.classify(token)  # malformed: refused before any request
    client = ctx.api(host)
    if kind == tokens.API:
        profile = client.validate_api_token(token)
    else:
        profile = client.profile(token)
    if token == ctx.env.get("REXEC_TOKEN"):
        ctx.warn("note: this token is the value of REXEC_TOKEN, which is never written to disk; "
                 "not stored")
        return profile

    def change(data: dict) -> bool:
        store.set_active(data, host, token, profile)
        return True

    ctx.config.update(change)
    return profile


def _who(profile: dict) -> str:
    email = profile.get("email")
    return f"{profile['username']} ({email})" if email else profile["username"]


def _parse_port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise UsageError(f"invalid --port {value!r}: use a number from 0 to 65535")
    return int(value)


def _parse_timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise UsageError(f"invalid --timeout {value!r}: use a number of seconds above 0")
    return seconds


def browser_login(args: dict, ctx: Context, host: str) -> int:
    """The browser flow through a one-time loopback callback (issue 3)."""
    _parse_port(args["--port"])
    _parse_timeout(args["--timeout"])
    hosts.require_secure(host, ctx.env)
    raise UsageError("browser login is not available yet; use rexec-login --token -")
