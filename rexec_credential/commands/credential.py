"""Hand Rexec tokens to git over its credential-helper protocol.

Usage:
  rexec-credential [--bearer] (get | store | erase)
  rexec-credential configure [--bearer] [--host=URL] [--system | --local]
  rexec-credential unconfigure [--bearer] [--host=URL] [--system | --local]
  rexec-credential [--bearer] <operation>
  rexec-credential (-h | --help)
  rexec-credential --version

Options:
  --bearer    With get: answer a Rexec login (stored, or REXEC_TOKEN) as
              authtype Bearer with the token as credential, to a request that
              announces capability[]=authtype (git 2.46 and later); other
              requests get username and password as without it. With
              configure: the helper is "rexec --bearer", which git runs as
              git-credential-rexec --bearer. unconfigure removes either form.
  --host=URL  With configure/unconfigure: the Rexec server (default: REXEC_HOST,
              then the config file, then https://rexec.pipeops.io).
  --system    With configure/unconfigure: the system git config, not ~/.gitconfig.
  --local     With configure/unconfigure: the current repository's git config.
  -h --help   Show this help and exit.
  --version   Show the version and exit.

Also installed as git-credential-rexec, so that `git config credential.helper
rexec` finds it. The request is read from standard input as key=value lines
(protocol, host, path, username, password, url, ...) up to a blank line or the
end of input; only protocol lines are written to standard output.

  get          Print protocol, host, username and password (the token) of the
               first stored credential that matches the request, plus
               password_expiry_utc and oauth_refresh_token when known; print
               nothing when none matches. An empty request answers with the
               current login. When no username is known, the placeholder
               username x-rexec-token is given. A stored authtype and
               credential answer only a request that announced
               capability[]=authtype, and then come first in the answer,
               after capability[]=authtype.
  store        Save the credential (a username and password, or an authtype
               and credential): one per protocol, host, username, path and
               form; a new one replaces the old. Nothing is stored when
               ephemeral is true.
  erase        Remove every matching credential; with a password (or a
               credential), only those that hold it.
  configure    Make git ask this helper, and no other, for the Rexec host:
               credential.<host>.helper gets an empty value, then rexec (or
               rexec --bearer).
  unconfigure  Remove what configure added.

Any other operation is ignored, and so is any capability but authtype. When
REXEC_TRACE is 1, 2 or true, each decision is traced on standard error (an
absolute path: appended to that file); never a token. When REXEC_TOKEN is set,
get answers with it for the effective host (REXEC_HOST, else the logged-in
host, else https://rexec.pipeops.io) before anything stored; it is never
written to disk. Logins are kept in ~/.rexec/config.json (the active one) and
~/.rexec/credentials.json (every account, and what store saves);
$REXEC_CONFIG_DIR overrides the directory. Exit status: 0 on success, also when
nothing matches; 2 malformed input; 4 unreadable or corrupted file, or git
config failed.
"""

from __future__ import annotations

from .. import commands, precedence, protocol, records

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

    from ..context import Args, Context
    from ..records import Query
    from ..state import State

OPERATIONS = ("get", "store", "erase")
SETUP = ("configure", "unconfigure")
BEARER = "--bearer"


class Options(commands.Options):
    """rexec-credential's options. `operation` is get, store, erase, configure, unconfigure
    or any other word git sends (ignored)."""

    __slots__ = ("operation", "bearer", "host", "system", "local")
    operation: str
    bearer: bool
    host: str | None
    system: bool
    local: bool

    @classmethod
    def from_docopt(cls, args: Mapping[str, Any]) -> Options:
        """From docopt's answer, whose command words become `operation`, or from
        quick_parse's (only <operation> and --bearer)."""
        word = next((op for op in OPERATIONS + SETUP if args.get(op)), "")
        return cls(
            operation=args.get("<operation>") or word,
            bearer=bool(args.get(BEARER)),
            host=args.get("--host"),
            system=bool(args.get("--system")),
            local=bool(args.get("--local")),
        )


def quick_parse(argv: list[str]) -> Args | None:
    """`rexec-credential [--bearer] OPERATION`, git's only forms (the helper `rexec` or
    `rexec --bearer`), without docopt (hot path); else None."""
    bearer = len(argv) == 2 and argv[0] == BEARER
    operation = argv[-1] if len(argv) == 1 or bearer else ""
    if operation and not operation.startswith("-") and operation not in SETUP:
        return {"<operation>": operation, BEARER: bearer}
    return None


def run(opts: Options, ctx: Context) -> int:
    """Answer one request; an unknown operation is ignored silently (gitcredentials(7))."""
    operation = opts.operation
    if operation in SETUP:
        return _set_up_git(operation, opts, ctx)
    action = _ACTIONS.get(operation)
    trace = ctx.trace
    if action is None:
        trace("an operation this helper does not know: ignored, nothing read")
        return 0
    request = records.announced(protocol.read(ctx.stdin))
    if trace.on:
        trace(f"{operation}{' --bearer' if opts.bearer else ''}: {_described(request)}")
    if protocol.is_true(request.get("quit")):
        trace("quit is true: nothing done")
        return 0
    action(request, ctx, opts.bearer)
    return 0


def _get(request: Query, ctx: Context, bearer: bool) -> None:
    state = ctx.storage.load()
    now = ctx.clock()
    found = precedence.git_answer(request, state, ctx.env, now, bearer)
    if ctx.trace.on:
        _trace_answer(ctx, found, state, request, now)
    if found.record is None:
        return  # no match: no output, exit 0 (git's convention)
    ctx.stdout.write(protocol.render(records.response(found.record, request)))
    ctx.stdout.flush()


def _store(request: Query, ctx: Context, bearer: bool) -> None:
    now = ctx.clock()
    changed = ctx.storage.update(lambda state: state.store(request, now))
    ctx.trace("stored" if changed else _not_stored(request, now))


def _erase(request: Query, ctx: Context, bearer: bool) -> None:
    changed = ctx.storage.update(lambda state: state.erase(request))
    ctx.trace("erased what matched" if changed else "nothing matched: nothing erased")


def _set_up_git(operation: str, opts: Options, ctx: Context) -> int:
    """configure / unconfigure: git's use of this helper for one Rexec host."""
    from .. import gitsetup

    state = ctx.storage.load_lenient()[0]  # a corrupted file: the host may come from elsewhere
    url, source = precedence.effective_host(state, ctx.env, opts.host)
    ctx.trace(f"host {url} (from {precedence.SOURCES[source]})")
    scope = "--system" if opts.system else "--local" if opts.local else "--global"
    git = gitsetup.GitConfig(scope, ctx.env, ctx.trace)
    where = f"{scope[2:]} git config"
    if operation == "configure":
        bearer = opts.bearer
        helper = gitsetup.BEARER_HELPER if bearer else gitsetup.HELPER
        how = " --bearer" if bearer else ""
        if gitsetup.configure(git, url, helper):
            ctx.success(
                f"git now asks rexec-credential{how}, and no other helper, for {url} ({where})"
            )
        else:
            ctx.success(f"git already asks rexec-credential{how} for {url} ({where})")
    elif gitsetup.unconfigure(git, url):
        ctx.success(f"git no longer asks rexec-credential for {url} ({where})")
    else:
        ctx.success(f"nothing to remove: git was not set up for {url} ({where})")
    return 0


_ACTIONS = {"get": _get, "store": _store, "erase": _erase}


# -- the trace (REXEC_TRACE): only when it is on, never a secret ----------------------------


def _described(request: Query) -> str:
    """A request in a trace: what it asks, the secrets it carries named, never shown."""
    shown = [
        f"{key}={request[key]}"
        for key in ("protocol", "host", "path", "username")
        if isinstance(request.get(key), str)
    ]
    given = [key for key in records.SECRET_KEYS + ("oauth_refresh_token",) if key in request]
    if given:
        shown.append(f"with {' and '.join(given)}")
    if records.capable(request):
        shown.append("capability[]=authtype")
    if protocol.is_true(request.get("ephemeral")):
        shown.append("ephemeral")
    return "request " + (" ".join(shown) if shown else "empty")


def _trace_answer(
    ctx: Context, found: precedence.Answer, state: State, request: Query, now: float
) -> None:
    trace = ctx.trace
    trace(f"{precedence.ENV_TOKEN}: {found.env_reason or 'answers'}")
    if found.record is None:
        query = found.query
        asked = " ".join(f"{k}={query[k]}" for k in records.MATCH_KEYS if k in query)
        if query is not request:
            host, source = precedence.effective_host(state, ctx.env)
            asked += f" (the request named none: {host}, from {precedence.SOURCES[source]})"
        trace(f"nothing answers {asked or 'anything'}:")
        for line in state.explain(query, now, records.capable(request)):
            trace(f"  {line}")
        return
    form = "authtype Bearer" if records.has_credential(found.record) else "username and password"
    if found.source == "env":
        what = precedence.ENV_TOKEN
    elif found.login is not None:
        what = f"the login {found.login.describe()}"
    else:
        what = f"a stored credential for {found.record.get('username', '')!r}"
    trace(f"answered with {what}, as {form}")


def _not_stored(request: Query, now: float) -> str:
    """Why store kept nothing (a trace line)."""
    if records.storable(request, now) is None:
        return "nothing stored: a key is missing, or it is ephemeral or expired"
    return f"nothing stored: already stored, or {precedence.ENV_TOKEN}'s value (never written)"
