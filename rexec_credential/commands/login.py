"""Log in to a Rexec server and keep the login in ~/.rexec.

Without --token, opens the browser on the server's login page and waits for it to
redirect to a one-time callback address on this machine's loopback interface; on a
machine without a browser, paste the address the browser ended on (or the token). With
the --token option, validates an API token (rexec_...) or a JWT and stores it; use
`--token -` to read it from standard input, so it never shows in argv or history. With
the --switch option, another stored login becomes the active one, without a new sign-in.

Usage:
  rexec-login [--host=URL] [--port=PORT] [--timeout=SECONDS] [--no-browser]
  rexec-login --token=TOKEN [--host=URL]
  rexec-login --switch [--user=NAME] [--host=URL]
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
  --switch           Make a stored login the active one (no network).
  --user=NAME        With --switch: the user to switch to.
  -h, --help         Show this help.
  --version          Show the version.

The login is written to ~/.rexec/config.json (the file the Rexec CLI reads) and kept
as an account in ~/.rexec/credentials.json; the login it replaces stays an account.
"""

from __future__ import annotations

from urllib.parse import quote

from .. import hosts, tokens
from ..accounts import Account, listing
from ..callback import CallbackServer
from ..errors import AuthError, RexecError, UsageError
from ..precedence import SOURCES, effective_host, env_token

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..accounts import Login
    from ..api import Profile
    from ..context import Args, Context
    from ..store import State


def run(args: Args, ctx: Context) -> int:
    """Log in with --token, through the browser, or switch to a stored login."""
    if args["--switch"]:
        return switch(args, ctx)
    host = _effective_host(args["--host"], ctx)
    if args["--token"] is not None:
        token = _token_argument(args["--token"], ctx)
        profile = establish(ctx, host, token)
        ctx.success(f"Logged in as {_who(profile)}")
        return 0
    return browser_login(args, ctx, host)


def _effective_host(option: str | None, ctx: Context) -> str:
    # A corrupted file counts as empty here; it is moved aside when the login is written.
    host, source = effective_host(ctx.storage.load_lenient()[0], ctx.env, option)
    ctx.trace(f"host {host} (from {SOURCES[source]})")
    return host


def _token_argument(value: str, ctx: Context) -> str:
    if value != "-":
        return value
    raw = ctx.stdin.read(65536)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthError(
            "Invalid token: standard input is not UTF-8 text; " + tokens.VALID_FORMS
        ) from None


def establish(ctx: Context, host: str, token: str) -> Profile:
    """Check the token's form, validate it with the service, store it as the active login.

    Every way a token arrives (argument, stdin, prompt, callback, paste) comes through
    here and is trimmed by the one rule REXEC_TOKEN is trimmed by.
    """
    token = tokens.trim(token)
    kind = tokens.classify(token)  # malformed: refused before any request
    ctx.trace(f"validating {tokens.redact(token)} with {host}")
    client = ctx.api(host)
    if kind == tokens.API:
        profile = client.validate_api_token(token)
    else:
        profile = client.profile(token)
    account = Account(
        host,
        profile["username"],
        token,
        profile.get("email") or "",
        profile.get("tier") or "",
        created_at=int(ctx.clock()),
    )
    ctx.trace(f"the service accepted it: {account.describe()}")
    if not ctx.storage.update(lambda state: state.log_in(account)):
        ctx.warn(
            "note: this token is the value of REXEC_TOKEN, which is never written to disk; "
            "not stored"
        )
    return profile


def switch(args: Args, ctx: Context) -> int:
    """Make a stored login the active one: config.json gets its five fields. No network."""
    state = ctx.storage.load()
    target, active = _switch_target(state, args, ctx)
    ctx.trace(f"switch to {target.describe()}{' (already active)' if active else ''}")
    now = ctx.clock()
    if active:
        ctx.success(f"Already using {target.describe()}")
        return 0
    if target.expired(now):
        raise AuthError(
            f"the login of {target.describe()} has expired; run 'rexec-login' to log in again"
        )
    ctx.storage.update(lambda s: s.switch(target, now))
    ctx.success(f"Switched to {target.describe()}")
    if env_token(ctx.env):
        ctx.warn("note: REXEC_TOKEN is set in this environment and is used before any stored login")
    return 0


def _switch_target(state: State, args: Args, ctx: Context) -> Login:
    """The (account, is_active) to switch to, or UsageError listing the choices."""
    host = hosts.normalise(args["--host"], "--host") if args["--host"] else None
    user = args["--user"]
    if user is None:
        # No user named: the logins on that host; with two, the other one.
        where = host or effective_host(state, ctx.env)[0]
        found = state.select(where, None)
        others = [pair for pair in found if not pair[1]]
        if len(found) == 2 and len(others) == 1:
            return others[0]
    else:
        found = state.select(host, user)
    if len(found) == 1:
        return found[0]
    every = state.logins()
    if not every:
        raise UsageError("no stored logins to switch to; run 'rexec-login' first")
    what = "more than one login matches" if found else "no stored login matches"
    raise UsageError(f"{what}; choose one with --user (and --host):\n" + "\n".join(listing(every)))


def _who(profile: Profile) -> str:
    who, email = tokens.clean(profile["username"]), tokens.clean(profile["email"] or "")
    return f"{who} ({email})" if email else who


def _parse_port(value: str) -> int:
    # Never the value in the message: a mistyped secret may have landed here.
    if not (value.isascii() and value.isdigit()) or int(value) > 65535:
        raise UsageError("invalid --port: use a number from 0 to 65535")
    return int(value)


def _parse_timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise UsageError("invalid --timeout: use a number of seconds above 0")
    return seconds


BANNER = (
    "╔" + "═" * 42 + "╗",
    "           Rexec CLI Login",
    "╚" + "═" * 42 + "╝",
)
PASTE_PROMPT = "Paste your token here: "
NOT_A_TOKEN = "That is neither this login's callback address nor a whole token; still waiting."
PORT_HINT = "hint: 'rexec-login --port 0' listens on any free port"
POLL = 0.2  # seconds between looks at the callback, stdin and the clock while waiting
CANCELLED = "Login cancelled."  # what cli.main says when Ctrl+C ends this command


def browser_login(args: Args, ctx: Context, host: str) -> int:
    """The browser flow through a one-time loopback callback (docs/contract.md §5)."""
    port = _parse_port(args["--port"])
    deadline = ctx.monotonic() + _parse_timeout(args["--timeout"])
    hosts.require_secure(host, ctx.env)
    attempt = _Attempt(ctx, host)
    server = CallbackServer(attempt, port)
    try:
        server.start()
    except OSError as exc:
        ctx.trace(f"no callback server on port {port}: {exc.strerror or exc}; manual login")
        return _manual_login(ctx, host, exc)
    ctx.trace(f"callback server on 127.0.0.1 port {server.port}")
    with server:  # the port is released however this ends, Ctrl+C included
        url = login_url(host, server.url)
        opening = not args["--no-browser"]
        _announce(ctx, url, opening)
        _wait(ctx, server, attempt, deadline, _BrowserOpening(ctx, url) if opening else None)
        server.finish()  # a token already being checked is seen through
    return _report(ctx, attempt)


def login_url(host: str, callback_url: str) -> str:
    """The service's login page, told where to send the browser back to."""
    return f"{host}/cli-login?callback={quote(callback_url, safe='')}"


class _Attempt:
    """on_token for the callback server: validate and store a token, remember the outcome."""

    def __init__(self, ctx: Context, host: str) -> None:
        self.ctx, self.host = ctx, host
        self.profile: Profile | None = None
        self.error: RexecError | None = None

    def __call__(self, token: str) -> tuple[bool, str]:
        """Validate and store the token; (ok, a sentence for the browser page)."""
        try:
            self.profile = establish(self.ctx, self.host, token)
        except RexecError as exc:
            self.error = exc
            return False, exc.message
        return True, f"Logged in to Rexec as {_who(self.profile)}."

    def forget_error(self) -> RexecError | None:
        """The last failure, cleared so that the login can go on."""
        error, self.error = self.error, None
        return error


class _BrowserOpening:
    """The browser, opened from a thread: webbrowser waits for a $BROWSER command or a
    console browser to exit, and a real browser started from a terminal stays open, so the
    wait (countdown, hidden paste, timeout) must not depend on it."""

    def __init__(self, ctx: Context, url: str) -> None:
        import threading

        self._ctx = ctx
        self._outcome: list[bool] = []
        self._reported = False
        threading.Thread(
            target=lambda: self._outcome.append(ctx.open_browser(url)),
            name="rexec-login:browser",
            daemon=True,
        ).start()

    def report_failure(self) -> None:
        """Say once that no browser could be opened, as soon as that is known."""
        if self._outcome and not self._outcome[0] and not self._reported:
            self._reported = True
            self._ctx.warn("Couldn't open a browser; visit the address above.")


def _announce(ctx: Context, url: str, opening: bool) -> None:
    for line in BANNER:
        ctx.out(line)
    ctx.out()
    if opening:
        ctx.out("Opening browser for login...")
        ctx.out()
        ctx.out("If browser doesn't open, visit:")
    ctx.out(url)
    ctx.out()
    ctx.out("Waiting for login... (Press Ctrl+C to cancel)")
    if ctx.stdin_is_tty:
        ctx.out(
            "Browser on another machine? Paste the address it ends on (or the token) "
            "here and press Enter; it is not shown."
        )


def _wait(
    ctx: Context,
    server: CallbackServer,
    attempt: _Attempt,
    deadline: float,
    opening: _BrowserOpening | None,
) -> None:
    """Until a token has been handled or the deadline passes: tick, and take pasted lines."""
    pasted = ctx.terminal.pasted()
    countdown = ctx.terminal.countdown()
    with ctx.terminal.hidden():
        try:
            while not server.done():
                left = deadline - ctx.monotonic()
                if left <= 0:
                    return
                if opening is not None:
                    opening.report_failure()
                countdown.show(left)
                if not pasted.open:
                    server.wait(min(POLL, left))
                    continue
                for line in pasted.read(min(POLL, left)):
                    if line.strip():
                        countdown.clear()
                        _take_pasted(ctx, server, attempt, line)
        finally:
            countdown.clear()


def _take_pasted(ctx: Context, server: CallbackServer, attempt: _Attempt, line: str) -> None:
    """A pasted address is checked like a request (nonce and all); a bare token as it is.

    A pasted token that is refused is reported and the wait goes on (the nonce stays
    valid): the person may have pasted the wrong line.
    """
    token, problem = server.check_pasted(line)
    if token is not None and tokens.kind(token) is None:
        token, problem = None, NOT_A_TOKEN  # e.g. cut short by the terminal: paste again
    if token is None:
        ctx.warn(problem or NOT_A_TOKEN)
        return
    verdict = server.hand_over(token, final=False)
    if verdict is not None and not verdict[0]:
        error = attempt.forget_error()
        if error is not None:
            ctx.warn(error.message)


def _report(ctx: Context, attempt: _Attempt) -> int:
    if attempt.profile is not None:
        ctx.success(f"Successfully logged in as {_who(attempt.profile)}")
        return 0
    if attempt.error is not None:
        raise attempt.error
    raise AuthError("Login timed out. Please try again.")


def _manual_login(ctx: Context, host: str, exc: OSError) -> int:
    """No callback server: the Rexec CLI's manual steps, then a pasted API token."""
    ctx.warn(f"Couldn't start local server: {(exc.strerror or str(exc)).lower()}")
    ctx.warn(PORT_HINT)
    ctx.out()
    ctx.out("Manual login:")
    ctx.out(f"1. Go to: {host}/settings")
    ctx.out("2. Click on 'API Tokens' section")
    ctx.out("3. Generate a new token and copy it")
    ctx.out()
    token = ctx.terminal.ask(PASTE_PROMPT)
    if not token:
        raise AuthError("Cancelled")
    profile = establish(ctx, host, token)
    ctx.success(f"Logged in as {_who(profile)}")
    return 0
