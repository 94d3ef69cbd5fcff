"""Log in to a Rexec server and keep the login in ~/.rexec.

Without --token, opens the browser on the server's login page and waits for it to
redirect to a one-time callback address on this machine's loopback interface; on a
machine without a browser, paste the address the browser ended on (or the token). The
browser hands over its own web session; with it, rexec-login makes an API token for this
machine (a device token, named and expiring) and keeps that, never the browser's session,
so that logging out here leaves the browser signed in. With the --token option, validates
an API token (rexec_...) or a JWT and stores it; use `--token -` to read it from standard
input, so it never shows in argv or history. With the --renew option, the stored login
gets a new device token without a browser (the old device token is revoked). With the
option --switch, another stored login becomes the active one, without a new sign-in.

Usage:
  rexec-login [--host=URL] [--port=PORT] [--timeout=SECONDS] [--no-browser]
              [--expires-in=DAYS] [--token-name=NAME] [--session-token]
  rexec-login --token=TOKEN [--host=URL]
  rexec-login --renew [--host=URL] [--user=NAME] [--expires-in=DAYS]
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
  --expires-in=DAYS  The device token expires after DAYS days, 0 to 3650; 0:
                     never [default: 90].
  --token-name=NAME  The device token's name (default: rexec-credential on
                     <this machine's short name>).
  --session-token    Keep the browser's session token itself, as the Rexec
                     CLI does, instead of making a device token.
  --token=TOKEN      Log in with this API token or JWT; - reads it from
                     standard input.
  --renew            Make a new device token for a stored login, with its
                     token, and revoke the old device token.
  --switch           Make a stored login the active one (no network).
  --user=NAME        With --switch or --renew: the user.
  -h, --help         Show this help.
  --version          Show the version.

The login is written to ~/.rexec/config.json (the file the Rexec CLI reads) and kept
as an account in ~/.rexec/credentials.json; the login it replaces stays an account.
"""

from __future__ import annotations

from urllib.parse import quote

from .. import commands, hosts, precedence, tokens
from ..accounts import Account, listing, when
from ..callback import CallbackServer
from ..errors import AuthError, RexecError, UsageError
from ..precedence import SOURCES, effective_host, env_token

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..accounts import Login
    from ..api import Client, DeviceToken, Profile
    from ..context import Context
    from ..state import State


class Options(commands.Options):
    """rexec-login's options, as its usage gives them: numbers stay text until the path
    that uses them checks them (_parse_port, _parse_timeout, _parse_expires_in)."""

    __slots__ = (
        "host",
        "port",
        "timeout",
        "no_browser",
        "expires_in",
        "token_name",
        "session_token",
        "token",
        "renew",
        "switch",
        "user",
    )
    host: str | None
    port: str
    timeout: str
    no_browser: bool
    expires_in: str
    token_name: str | None
    session_token: bool
    token: str | None
    renew: bool
    switch: bool
    user: str | None


def run(opts: Options, ctx: Context) -> int:
    """Log in with --token, through the browser, or switch to a stored login."""
    if opts.switch:
        return switch(opts, ctx)
    if opts.renew:
        return renew(opts, ctx, _parse_expires_in(opts.expires_in))
    if opts.token is not None:
        host = _effective_host(opts.host, ctx)
        token = _token_argument(opts.token, ctx)
        profile = establish(ctx, host, token).profile
        ctx.success(f"Logged in as {_who(profile)}")
        return 0
    device = None
    if not opts.session_token:  # checked before any network or browser
        device = Device(_parse_token_name(opts.token_name), _parse_expires_in(opts.expires_in))
    return browser_login(opts, ctx, _effective_host(opts.host, ctx), device)


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


class Device:
    """What a browser login asks the service for: a device token's name and lifetime."""

    __slots__ = ("name", "expires_in")

    def __init__(self, name: str, expires_in: int) -> None:
        self.name = name
        self.expires_in = expires_in  # days; 0: never expires


class Established:
    """A login made: the profile, the account stored, and why no device token was made."""

    __slots__ = ("profile", "account", "no_device")

    def __init__(self, profile: Profile, account: Account, no_device: str | None) -> None:
        self.profile = profile
        self.account = account
        self.no_device = no_device  # the reason, when one was asked for and not made


def establish(ctx: Context, host: str, token: str, device: Device | None = None) -> Established:
    """Check the token's form, validate it with the service, store it as the active login.

    Every way a token arrives (argument, stdin, prompt, callback, paste) comes through
    here and is trimmed by the one rule REXEC_TOKEN is trimmed by. With `device`, a JWT
    (the browser's own web session) is used once more, to make a device token, which is
    stored instead; the JWT is never written, and its session is left alone. When the
    service makes none, the JWT is stored after all (`no_device` says why).
    """
    token = tokens.trim(token)
    kind = tokens.classify(token)  # malformed: refused before any request
    ctx.trace(f"validating {tokens.redact(token)} with {host}")
    client = ctx.api(host)
    if kind == tokens.API:
        profile = client.validate_api_token(token)
    else:
        profile = client.profile(token)
    account = _account(host, profile, token, ctx)
    ctx.trace(f"the service accepted it: {account.describe()}")
    no_device = None
    if device is not None and kind == tokens.JWT:
        try:
            made = client.create_token(token, device.name, device.expires_in)
        except RexecError as exc:
            no_device = exc.message
            ctx.trace(f"no device token: {exc.message}; keeping the session token")
        else:
            account = _account(host, profile, made["token"], ctx, made)
            ctx.trace(f"device token {tokens.redact(made['token'])} made: {made['name']}")
    if account.token in precedence.kept_out(ctx.env):
        ctx.warn(
            f"note: this token is the value of {precedence.ENV_TOKEN}, which is never written to "
            "disk; not stored"
        )
    else:
        ctx.storage.update(lambda state: state.log_in(account))
    return Established(profile, account, no_device)


def _account(
    host: str, profile: Profile, token: str, ctx: Context, made: DeviceToken | None = None
) -> Account:
    account = Account(
        host,
        profile["username"],
        token,
        profile.get("email") or "",
        profile.get("tier") or "",
        created_at=int(ctx.clock()),
    )
    return account if made is None else _device(account, made)


def _device(login: Account, made: DeviceToken) -> Account:
    """The login holding the device token the service made for it."""
    return Account(
        login.host,
        login.username,
        made["token"],
        login.email,
        login.tier,
        created_at=login.created_at,
        token_id=made["id"],
        token_name=made["name"],
        token_expiry=made["expires"],
    )


def _validity(account: Account) -> str:
    """`valid until <when>` or `with no expiry`, of a device token."""
    expiry = account.token_expiry
    return "with no expiry" if expiry is None else f"valid until {when(expiry)}"


def device_line(account: Account) -> str:
    """The line that names a device token, its expiry and where it can be revoked."""
    return (
        f"Device token '{tokens.clean(account.token_name)}' made for this machine, "
        f"{_validity(account)}; revoke it at {account.host}/settings"
    )


NO_DEVICE = (
    "note: no device token could be made ({why}); this login keeps the browser's "
    "session token, so logging out leaves it live: 'rexec-login --renew' makes one later"
)


def renew(opts: Options, ctx: Context, expires_in: int) -> int:
    """A new device token for a stored login, made with its token, in place of it; the
    old one revoked if it was a device token. No browser."""
    state = ctx.storage.load()
    now = ctx.clock()
    host = precedence.effective_host(state, ctx.env, opts.host)[0]
    if opts.user is None:
        login = precedence.login_for(state, host, now)
        old = login[0] if login else None
    else:  # that user's login, on --host if given, else on whichever host holds it
        found = state.select(host if opts.host else None, opts.user)
        if len(found) > 1:
            raise UsageError(
                "more than one login matches; choose one with --host:\n" + "\n".join(listing(found))
            )
        old = found[0][0] if found else None
    if old is None:
        raise AuthError(f"Not logged in to {host}. Run 'rexec-login' first.")
    tokens.classify(old.token)
    client = ctx.api(old.host)
    made = client.create_token(old.token, old.token_name or default_token_name(), expires_in)
    new = _device(old, made)
    if new.created_at is None:  # a login only config.json held (the Rexec CLI wrote it)
        new.created_at = int(now)
    try:
        ctx.storage.update(lambda s: s.renew(old, new))
    except RexecError:  # not stored (the login was logged out meanwhile, a file error)
        _revoke_quietly(client, made["token"], made["id"])
        raise
    if old.device:
        try:
            client.revoke_token(new.token, old.token_id, REVOKE_BUDGET)
        except RexecError as exc:
            ctx.warn(
                f"warning: could not revoke the old device token ({exc.message}); it may "
                f"still be valid: revoke it at {old.host}/settings"
            )
    elif old.kind == tokens.API:
        ctx.warn(
            "note: the API token this login had was not made here and stays valid; "
            f"revoke it at {old.host}/settings if nothing else uses it"
        )
    who = tokens.clean(old.username) or "the login"
    ctx.success(f"Renewed the token of {who} on {old.host}, {_validity(new)}")
    return 0


REVOKE_BUDGET = 10.0  # seconds for revoking the token renew replaced


def _revoke_quietly(client: Client, token: str, token_id: str) -> None:
    try:
        client.revoke_token(token, token_id, REVOKE_BUDGET)
    except RexecError:
        pass  # the error raised next says what matters


def default_token_name() -> str:
    """`rexec-credential on <short machine name>`."""
    import socket

    machine = tokens.clean(socket.gethostname().partition(".")[0], limit=60)
    return f"rexec-credential on {machine}" if machine else "rexec-credential"


def switch(opts: Options, ctx: Context) -> int:
    """Make a stored login the active one: config.json gets its five fields. No network."""
    state = ctx.storage.load()
    target, active = _switch_target(state, opts, ctx)
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
        ctx.warn(
            f"note: {precedence.ENV_TOKEN} is set in this environment and is used before any "
            "stored login"
        )
    return 0


def _switch_target(state: State, opts: Options, ctx: Context) -> Login:
    """The (account, is_active) to switch to, or UsageError listing the choices."""
    host = hosts.normalise(opts.host, "--host") if opts.host else None
    user = opts.user
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


MAX_EXPIRES_IN = 3650  # days
MAX_TOKEN_NAME = 100  # characters


def _parse_expires_in(value: str) -> int:
    if not (value.isascii() and value.isdigit() and int(value) <= MAX_EXPIRES_IN):
        raise UsageError(f"invalid --expires-in: use a number of days from 0 to {MAX_EXPIRES_IN}")
    return int(value)


def _parse_token_name(value: str | None) -> str:
    if value is None:
        return default_token_name()
    if not value.strip() or len(value) > MAX_TOKEN_NAME or not value.isprintable():
        raise UsageError(f"invalid --token-name: use 1 to {MAX_TOKEN_NAME} printable characters")
    if tokens.shaped_like_token(value):
        raise UsageError("invalid --token-name: it looks like a token")
    return value


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


def browser_login(opts: Options, ctx: Context, host: str, device: Device | None) -> int:
    """The browser flow through a one-time loopback callback (docs/contract.md §5)."""
    port = _parse_port(opts.port)
    deadline = ctx.monotonic() + _parse_timeout(opts.timeout)
    hosts.require_secure(host, precedence.insecure_http_allowed(ctx.env))
    attempt = _Attempt(ctx, host, device)
    server = CallbackServer(attempt, port)
    try:
        server.start()
    except OSError as exc:
        ctx.trace(f"no callback server on port {port}: {exc.strerror or exc}; manual login")
        return _manual_login(ctx, host, exc)
    ctx.trace(f"callback server on 127.0.0.1 port {server.port}")
    with server:  # the port is released however this ends, Ctrl+C included
        url = login_url(host, server.url)
        opening = not opts.no_browser
        _announce(ctx, url, opening)
        _wait(ctx, server, attempt, deadline, _BrowserOpening(ctx, url) if opening else None)
        server.finish()  # a token already being checked is seen through
    return _report(ctx, attempt)


def login_url(host: str, callback_url: str) -> str:
    """The service's login page, told where to send the browser back to."""
    return f"{host}/cli-login?callback={quote(callback_url, safe='')}"


class _Attempt:
    """on_token for the callback server: validate and store a token, remember the outcome."""

    def __init__(self, ctx: Context, host: str, device: Device | None) -> None:
        self.ctx, self.host, self.device = ctx, host, device
        self.done: Established | None = None
        self.error: RexecError | None = None

    def __call__(self, token: str) -> tuple[bool, str]:
        """Validate and store the token; (ok, a sentence for the browser page)."""
        try:
            self.done = establish(self.ctx, self.host, token, self.device)
        except RexecError as exc:
            self.error = exc
            return False, exc.message
        return True, f"Logged in to Rexec as {_who(self.done.profile)}."

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
    done = attempt.done
    if done is not None:
        ctx.success(f"Successfully logged in as {_who(done.profile)}")
        if done.account.device:
            ctx.out(device_line(done.account))
        elif done.no_device is not None:
            ctx.warn(NO_DEVICE.format(why=done.no_device))
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
    profile = establish(ctx, host, token).profile
    ctx.success(f"Logged in as {_who(profile)}")
    return 0
