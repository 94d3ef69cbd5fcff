"""Log a Rexec login out: revoke its device token and remove it from this machine.

Without options, the login of the effective host (REXEC_HOST, else the active login's),
like every command; for the active login ~/.rexec/config.json is removed completely and the
login's token leaves ~/.rexec/credentials.json too; other logins and the credentials git
stored for other hosts stay. A device token (the API token rexec-login made for this
machine) is revoked on the server first, so it stops working everywhere. A login that
holds the browser's own session token (a JWT: --session-token, or a server without the
token API) is left alone on the server, so the browser stays signed in, unless option
`--end-session` ends that session everywhere, that browser included. An API token you gave
rexec-login is never revoked: it may be in use elsewhere; revoke it in the web app's
settings.

Usage:
  rexec-logout [--host=URL] [--user=NAME] [--local] [--end-session]
  rexec-logout --all [--local] [--end-session]
  rexec-logout (-h | --help)
  rexec-logout --version

Options:
  --host=URL   Log out the stored login for this Rexec server.
  --user=NAME  Log out the stored login of this user.
  --all        Log out every login and remove every stored credential (both files,
               and the backups of corrupted files, which may hold tokens).
  --local      Do not contact the server: a device token stays valid until it
               expires or is revoked in the web app's settings.
  --end-session
               For a login holding a browser session token (JWT): end that
               session on the server, which signs the browser out too.
  -h, --help   Show this help.
  --version    Show the version.

If the server cannot be reached, the login is removed here all the same and a warning
says where to revoke the token by hand. A corrupted file is moved aside to a backup
(<file>.corrupt-<UTC time>, named in a warning), never deleted: it may hold other logins.
Exit status 0, also when nobody was logged in or a file was corrupted; 2 when --host/--user
match several logins.
"""

from __future__ import annotations

from .. import commands, hosts, precedence, tokens
from ..accounts import Account, listing, when
from ..errors import RexecError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..accounts import Login
    from ..context import Context
    from ..state import State

SERVER_BUDGET = 10.0  # seconds for the server calls of one logout


class Options(commands.Options):
    """rexec-logout's options."""

    __slots__ = ("host", "user", "all", "local", "end_session")
    host: str | None
    user: str | None
    all: bool
    local: bool
    end_session: bool


def run(opts: Options, ctx: Context) -> int:
    """Choose the logins, revoke their device tokens, remove them, say what happened."""
    state, corrupted = ctx.storage.load_lenient()
    chosen, unusable = _choose(state, opts, ctx)
    for account, active in chosen:
        ctx.trace(
            f"logging out {account.describe()}{' (active)' if active else ''}: "
            f"{_server_side(account, opts)}"
        )
    if not chosen:
        ctx.trace("no stored login matches")
    if not opts.local:
        _revoke(ctx, [account for account, _ in chosen], opts.end_session)
    backups = 0
    if opts.all:
        backups = ctx.storage.remove_everything()
    elif chosen or corrupted or unusable:
        ctx.storage.update(lambda s: _forget(s, chosen, unusable), set_aside_corrupted=True)
    _report(ctx, opts, chosen, state, backups)
    if unusable:
        ctx.warn(
            "note: config.json's host was not a valid URL: its login was removed here, "
            "and its token was not revoked on any server"
        )
    if precedence.env_token(ctx.env):
        ctx.warn(
            f"note: {precedence.ENV_TOKEN} is still set in this environment; "
            "unset it to log out fully"
        )
    return 0


def _choose(state: State, opts: Options, ctx: Context) -> tuple[list[Login], bool]:
    """The (account, is_active) pairs to log out; and whether config.json's login is one
    whose host is not a URL (it is removed all the same: logout is the remedy for it)."""
    if opts.all:
        return state.logins(), False
    host: str | None = None
    if not opts.user:
        try:
            host, source = precedence.effective_host(state, ctx.env, opts.host)
        except precedence.BadStoredHost:
            ctx.trace("config.json's host is not a URL: its login goes")
            return [], True
        ctx.trace(f"host {host} (from {precedence.SOURCES[source]})")
        if not opts.host:  # the login every other command would use
            login = precedence.login_for(state, host, ctx.clock())
            return ([login] if login else []), False
    else:
        host = hosts.normalise(opts.host, "--host") if opts.host else None
    found = state.select(host, opts.user)
    if len(found) > 1:
        raise UsageError(
            "more than one login matches; choose one with --host and --user:\n"
            + "\n".join(listing(found))
        )
    return found, False


def _forget(state: State, chosen: list[Login], unusable: bool) -> None:
    for account, active in chosen:
        state.log_out(account, active)
    if unusable:
        state.drop_config()


def _server_side(account: Account, opts: Options) -> str:
    """What happens on the server to this login's token (for the trace)."""
    if opts.local:
        return "nothing on the server (--local)"
    if account.device:
        return "its device token is revoked first"
    if account.session_id:
        return "its session is ended first" if opts.end_session else "its session stays"
    return "nothing on the server (an API token it did not make)"


def _revoke(ctx: Context, chosen: list[Account], end_session: bool) -> None:
    """Revoke each device token (and, with end_session, end each JWT's session) on its
    server, all at once, within SERVER_BUDGET; warn for each one that could not be."""
    import threading

    revocable = [a for a in chosen if a.device or (end_session and a.session_id)]
    outcome: dict[str, str | None] = {}  # token → None when done, else why not

    def revoke(account: Account) -> None:
        try:
            client = ctx.api(account.host)
            if account.device:
                client.revoke_token(account.token, account.token_id, SERVER_BUDGET)
            else:
                client.revoke_session(account.token, account.session_id or "", SERVER_BUDGET)
            outcome[account.token] = None
        except RexecError as exc:
            outcome[account.token] = exc.message

    threads = [threading.Thread(target=revoke, args=(a,), daemon=True) for a in revocable]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SERVER_BUDGET + 1)
    for account in revocable:
        reason = outcome.get(account.token, "no answer in time")
        if reason is not None:
            what = "revoke the device token" if account.device else "end the session"
            ctx.warn(
                f"warning: could not {what} of {account.describe()} on the server "
                f"({reason}); it may still be valid: revoke it at {account.host}/settings"
            )


def _report(ctx: Context, opts: Options, chosen: list[Login], before: State, backups: int) -> None:
    if opts.all:
        count = len(chosen)
        also = (
            f", and {backups} backup{'s' if backups != 1 else ''} of corrupted files"
            if backups
            else ""
        )
        ctx.success(
            f"Logged out of {count} login{'s' if count != 1 else ''}; "
            f"every stored credential removed{also}"
        )
    elif not chosen:
        if opts.host or opts.user or precedence.host_chosen(ctx.env):
            ctx.warn("note: no stored login matches; nothing was logged out")
        ctx.success("Logged out")
    else:
        account = chosen[0][0]
        remaining = len(before.logins()) - len(chosen)
        left = {0: "", 1: " (1 other login remains)"}.get(
            remaining, f" ({remaining} other logins remain)"
        )
        ctx.success(f"Logged out {account.describe()}{left}")
    for account, _ in chosen:
        if account.device:
            if opts.local:
                ctx.warn(
                    f"note: --local: the device token of {account.describe()} stays valid "
                    f"{_until(account)}; revoke it at {account.host}/settings"
                )
        elif account.kind == "api":
            who = tokens.clean(account.username) or account.host
            ctx.warn(
                f"note: the API token of {who} stays valid "
                f"until you revoke it at {account.host}/settings (API Tokens)"
            )
        elif account.session_id and (opts.local or not opts.end_session):
            ctx.warn(
                f"note: the browser session of {account.describe()} stays signed in "
                "(this login held its token); 'rexec-logout --end-session' ends it "
                "everywhere, that browser included"
            )


def _until(account: Account) -> str:
    expiry = account.own_expiry
    return "with no expiry" if expiry is None else f"until {when(expiry)}"
