"""Log a Rexec login out: end its session on the server and remove it from this machine.

Without options, the login of the effective host (REXEC_HOST, else the active login's),
like every command; for the active login ~/.rexec/config.json is removed completely and the
login's token leaves ~/.rexec/credentials.json too; other logins and the credentials git
stored for other hosts stay. A login made in the browser (a JWT) has its session ended on
the server first, so the token stops working everywhere, also any copy left elsewhere
(the browser's history keeps the callback address with the token). An API token is never
revoked: it may be in use elsewhere; revoke it in the web app's settings.

Usage:
  rexec-logout [--host=URL] [--user=NAME] [--local]
  rexec-logout --all [--local]
  rexec-logout (-h | --help)
  rexec-logout --version

Options:
  --host=URL   Log out the stored login for this Rexec server.
  --user=NAME  Log out the stored login of this user.
  --all        Log out every login and remove every stored credential (both files,
               and the backups of corrupted files, which may hold tokens).
  --local      Do not contact the server: the session stays live until it expires.
  -h, --help   Show this help.
  --version    Show the version.

If the server cannot be reached, the login is removed here all the same and a warning
says where to end the session by hand. A corrupted file is moved aside to a backup
(<file>.corrupt-<UTC time>, named in a warning), never deleted: it may hold other logins.
Exit status 0, also when nobody was logged in or a file was corrupted; 2 when --host/--user
match several logins.
"""

from __future__ import annotations

from .. import hosts, precedence, tokens
from ..accounts import Account, listing
from ..errors import RexecError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..accounts import Login
    from ..context import Args, Context
    from ..store import State

SESSION_BUDGET = 10.0  # seconds for the server calls of one logout


def run(args: Args, ctx: Context) -> int:
    """Choose the logins, end their sessions, remove them, say what happened."""
    state, corrupted = ctx.storage.load_lenient()
    chosen, unusable = _choose(state, args, ctx)
    for account, active in chosen:
        ending = (
            "no session to end (an API token)"
            if not account.session_id
            else (
                "its session stays (--local)" if args["--local"] else "its session is ended first"
            )
        )
        ctx.trace(f"logging out {account.describe()}{' (active)' if active else ''}: {ending}")
    if not chosen:
        ctx.trace("no stored login matches")
    if not args["--local"]:
        _end_sessions(ctx, [account for account, _ in chosen])
    backups = 0
    if args["--all"]:
        ctx.storage.update(lambda s: s.log_out_everything())
        backups = ctx.storage.remove_backups()
    elif chosen or corrupted or unusable:
        ctx.storage.update(lambda s: _forget(s, chosen, unusable), set_aside_corrupted=True)
    _report(ctx, args, chosen, state, backups)
    if unusable:
        ctx.warn(
            "note: config.json's host was not a valid URL: its login was removed here, "
            "and its token was not revoked on any server"
        )
    if precedence.env_token(ctx.env):
        ctx.warn("note: REXEC_TOKEN is still set in this environment; unset it to log out fully")
    return 0


def _choose(state: State, args: Args, ctx: Context) -> tuple[list[Login], bool]:
    """The (account, is_active) pairs to log out; and whether config.json's login is one
    whose host is not a URL (it is removed all the same: logout is the remedy for it)."""
    if args["--all"]:
        return state.logins(), False
    host: str | None = None
    if not args["--user"]:
        try:
            host, source = precedence.effective_host(state, ctx.env, args["--host"])
        except precedence.BadStoredHost:
            ctx.trace("config.json's host is not a URL: its login goes")
            return [], True
        ctx.trace(f"host {host} (from {precedence.SOURCES[source]})")
        if not args["--host"]:  # the login every other command would use
            login = precedence.login_for(state, host, ctx.clock())
            return ([login] if login else []), False
    else:
        host = hosts.normalise(args["--host"], "--host") if args["--host"] else None
    found = state.select(host, args["--user"])
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


def _end_sessions(ctx: Context, chosen: list[Account]) -> None:
    """End the session of each JWT login on its server, all at once, within SESSION_BUDGET;
    warn for each one that could not be ended."""
    import threading

    jwt_logins = [a for a in chosen if a.session_id]
    outcome: dict[str, str | None] = {}  # token → None when ended, else why not

    def end(account: Account) -> None:
        try:
            ctx.api(account.host).revoke_session(
                account.token, account.session_id or "", SESSION_BUDGET
            )
            outcome[account.token] = None
        except RexecError as exc:
            outcome[account.token] = exc.message

    threads = [threading.Thread(target=end, args=(a,), daemon=True) for a in jwt_logins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SESSION_BUDGET + 1)
    for account in jwt_logins:
        reason = outcome.get(account.token, "no answer in time")
        if reason is not None:
            ctx.warn(
                f"warning: could not end the session of {account.describe()} on the "
                f"server ({reason}); it may still be live: end it at "
                f"{account.host}/settings"
            )


def _report(ctx: Context, args: Args, chosen: list[Login], before: State, backups: int) -> None:
    if args["--all"]:
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
        if args["--host"] or args["--user"] or ctx.env.get(precedence.ENV_HOST):
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
        if account.kind == "api":
            who = tokens.clean(account.username) or account.host
            ctx.warn(
                f"note: the API token of {who} stays valid "
                f"until you revoke it at {account.host}/settings (API Tokens)"
            )
        elif account.session_id and args["--local"]:
            ctx.warn(
                f"note: --local: the session of {account.describe()} stays live on the "
                "server until the token expires"
            )
