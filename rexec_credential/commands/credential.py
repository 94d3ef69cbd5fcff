"""Hand Rexec tokens to git over its credential-helper protocol.

Usage:
  rexec-credential (get | store | erase)
  rexec-credential <operation>
  rexec-credential (-h | --help)
  rexec-credential --version

Options:
  -h --help  Show this help and exit.
  --version  Show the version and exit.

Also installed as git-credential-rexec, so that `git config credential.helper
rexec` finds it. The request is read from standard input as key=value lines
(protocol, host, path, username, password, url, ...) up to a blank line or the
end of input; only protocol lines are written to standard output.

  get    Print protocol, host, username and password (the token) of the first
         stored credential that matches the request, plus password_expiry_utc
         and oauth_refresh_token when known; print nothing when none matches.
         An empty request answers with the current login. When no username
         is known, the placeholder username x-rexec-token is given.
  store  Save the credential: one per protocol, host, username and path; a new
         password replaces the old one.
  erase  Remove every matching credential; with a password, only those that
         hold that password.

Any other operation is ignored. When REXEC_TOKEN is set, get answers with it
for the effective host (REXEC_HOST, else the logged-in host, else
https://rexec.pipeops.io) before anything stored; it is never written to disk.
Credentials are kept in ~/.rexec/config.json ($REXEC_CONFIG_DIR overrides the
directory). Exit status: 0 on success, also when nothing matches; 2 malformed
input; 4 unreadable or corrupted configuration file.
"""

from __future__ import annotations

import os

from .. import hosts, protocol, store, tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

    from ..context import Context

OPERATIONS = ("get", "store", "erase")


def quick_parse(argv: list) -> dict | None:
    """`rexec-credential OPERATION`, git's only form, without docopt (hot path); else None."""
    if len(argv) == 1 and argv[0] and not argv[0].startswith("-"):
        return {"<operation>": argv[0]}
    return None


def run(args: dict, ctx: Context) -> int:
    """Answer one request; an unknown operation is ignored silently (gitcredentials(7))."""
    operation = args.get("<operation>") or next((op for op in OPERATIONS if args.get(op)), None)
    action = _ACTIONS.get(operation)
    if action is None:
        return 0
    request = protocol.read(ctx.stdin)
    if protocol.is_true(request.get("quit")):
        return 0
    action(request, ctx)
    return 0


def _get(request: Mapping, ctx: Context) -> None:
    data = ctx.config.load()
    now = ctx.clock()
    record = _from_env(request, data, ctx.env, now) or store.find(
        data, _query(request, data, ctx.env), now
    )
    if record is None:
        return  # no match: no output, exit 0 (git's convention)
    answer = {k: v for k, v in record.items() if k in protocol.CREDENTIAL_KEYS and k != "path"}
    if "path" in request:
        answer["path"] = request["path"]
    ctx.stdout.write(protocol.render(answer))
    ctx.stdout.flush()


def precedence_host(data: Mapping, env: Mapping) -> str:
    """The effective host URL: REXEC_HOST, else the config's, else the default."""
    from .. import precedence  # only for an empty request or REXEC_TOKEN

    return precedence.resolve(data, env).host


def _effective(data: Mapping, env: Mapping) -> dict:
    """The effective host as a query."""
    scheme, host = hosts.git_parts(precedence_host(data, env))
    return {"protocol": scheme, "host": host}


def _query(request: Mapping, data: Mapping, env: Mapping) -> Mapping:
    # An empty request (`rexec-credential get </dev/null`) asks for the current login,
    # which is bound to the effective host (SPEC §3).
    if any(k in request for k in store.MATCH_KEYS):
        return request
    return _effective(data, env)


def _from_env(request: Mapping, data: Mapping, env: Mapping, now: float) -> dict | None:
    """REXEC_TOKEN as a record for the effective host, if the request matches it."""
    token = env.get("REXEC_TOKEN")
    if not token:
        return None
    claimed = tokens.jwt_claims(token).get("username")
    # An API token names no user: any username asked for is taken, else the placeholder.
    username = claimed if isinstance(claimed, str) and claimed else request.get(
        "username", store.PLACEHOLDER_USERNAME
    )
    if hosts.sends_in_clear(precedence_host(data, env), env):
        return None  # the token would cross the network in clear, as the other commands refuse
    where = _effective(data, env)
    record = store.token_record(where["protocol"], where["host"], username, token)
    if store.matches(request, record) and not store.expired(record, now):
        return record
    return None


def _store(request: Mapping, ctx: Context) -> None:
    now, env_token = ctx.clock(), ctx.env.get("REXEC_TOKEN")
    if store.storable(request, now, env_token):  # else touch nothing, not even ~/.rexec
        ctx.config.update(lambda data: store.store(data, request, now, env_token))


def _erase(request: Mapping, ctx: Context) -> None:
    if store.erasable(request) and os.path.lexists(ctx.config.path):
        ctx.config.update(lambda data: store.erase(data, request))


_ACTIONS = {"get": _get, "store": _store, "erase": _erase}
