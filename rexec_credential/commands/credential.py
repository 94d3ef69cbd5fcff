"""Hand Rexec tokens to git over its credential-helper protocol.

Usage:
  rexec-credential (get | store | erase)
  rexec-credential configure [--host=URL] [--system | --local]
  rexec-credential unconfigure [--host=URL] [--system | --local]
  rexec-credential <operation>
  rexec-credential (-h | --help)
  rexec-credential --version

Options:
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
               username x-rexec-token is given.
  store        Save the credential: one per protocol, host, username and path;
               a new password replaces the old one.
  erase        Remove every matching credential; with a password, only those
               that hold that password.
  configure    Make git ask this helper, and no other, for the Rexec host:
               credential.<host>.helper gets an empty value, then rexec.
  unconfigure  Remove what configure added.

Any other operation is ignored. When REXEC_TOKEN is set, get answers with it
for the effective host (REXEC_HOST, else the logged-in host, else
https://rexec.pipeops.io) before anything stored; it is never written to disk.
Logins are kept in ~/.rexec/config.json (the active one) and
~/.rexec/credentials.json (every account, and what store saves);
$REXEC_CONFIG_DIR overrides the directory. Exit status: 0 on success, also when
nothing matches; 2 malformed input; 4 unreadable or corrupted file, or git
config failed.
"""

from __future__ import annotations

from .. import precedence, protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..context import Args, Context
    from ..records import Query

OPERATIONS = ("get", "store", "erase")
SETUP = ("configure", "unconfigure")


def quick_parse(argv: list[str]) -> Args | None:
    """`rexec-credential OPERATION`, git's only form, without docopt (hot path); else None."""
    if len(argv) == 1 and argv[0] and not argv[0].startswith("-") and argv[0] not in SETUP:
        return {"<operation>": argv[0]}
    return None


def run(args: Args, ctx: Context) -> int:
    """Answer one request; an unknown operation is ignored silently (gitcredentials(7))."""
    operation = args.get("<operation>") or next(
        (op for op in OPERATIONS + SETUP if args.get(op)), ""
    )
    if operation in SETUP:
        return _set_up_git(operation, args, ctx)
    action = _ACTIONS.get(operation)
    if action is None:
        return 0
    request = protocol.read(ctx.stdin)
    if protocol.is_true(request.get("quit")):
        return 0
    action(request, ctx)
    return 0


def _get(request: Query, ctx: Context) -> None:
    state = ctx.storage.load()
    now = ctx.clock()
    record = precedence.env_answer(request, state, ctx.env, now) or state.find(
        precedence.git_query(request, state, ctx.env), now
    )
    if record is None:
        return  # no match: no output, exit 0 (git's convention)
    answer = {k: v for k, v in record.items() if k in protocol.CREDENTIAL_KEYS and k != "path"}
    if "path" in request:
        answer["path"] = request["path"]
    ctx.stdout.write(protocol.render(answer))
    ctx.stdout.flush()


def _store(request: Query, ctx: Context) -> None:
    now = ctx.clock()
    ctx.storage.update(lambda state: state.store(request, now))


def _erase(request: Query, ctx: Context) -> None:
    ctx.storage.update(lambda state: state.erase(request))


def _set_up_git(operation: str, args: Args, ctx: Context) -> int:
    """configure / unconfigure: git's use of this helper for one Rexec host."""
    from .. import gitsetup

    state = ctx.storage.load_lenient()[0]  # a corrupted file: the host may come from elsewhere
    url = precedence.effective_host(state, ctx.env, args.get("--host"))[0]
    scope = "--system" if args.get("--system") else "--local" if args.get("--local") else "--global"
    git = gitsetup.GitConfig(scope, ctx.env)
    where = f"{scope[2:]} git config"
    if operation == "configure":
        if gitsetup.configure(git, url):
            ctx.success(f"git now asks rexec-credential, and no other helper, for {url} ({where})")
        else:
            ctx.success(f"git already asks rexec-credential for {url} ({where})")
    elif gitsetup.unconfigure(git, url):
        ctx.success(f"git no longer asks rexec-credential for {url} ({where})")
    else:
        ctx.success(f"nothing to remove: git was not set up for {url} ({where})")
    return 0


_ACTIONS = {"get": _get, "store": _store, "erase": _erase}
