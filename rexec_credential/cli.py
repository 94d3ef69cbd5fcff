"""The edge: parse the usage docstring, --help/--version, errors → exit codes (SPEC §4)."""

from __future__ import annotations

import os
import sys
from importlib import import_module

from . import __version__
from .errors import RexecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from .context import Context

USAGE_ERROR = 2
INTERRUPTED = 130


def run(command: str) -> NoReturn:
    """Entry point of bin/*: run a command in the real process and exit with its status."""
    from .context import Context

    try:
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else None
        status = main(command, sys.argv[1:], Context.from_process(), prog)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); say nothing more.
        sys.stdout = None  # type: ignore[assignment]
        status = 141
    sys.exit(status)


def main(command: str, argv: list, ctx: Context, prog: str | None = None) -> int:
    """Run `command` (a module of rexec_credential.commands) with argv; return the exit status.

    `prog` is the name the program was invoked as (git-credential-rexec or rexec-credential).
    """
    module = import_module(f"rexec_credential.commands.{command}")
    quick = getattr(module, "quick_parse", None)
    args = quick(argv) if quick else None
    if args is None:
        args = _parse(module.__doc__, argv, ctx, prog)
        if isinstance(args, int):
            return args
    try:
        return module.run(args, ctx)
    except RexecError as exc:
        ctx.warn(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        ctx.warn("Interrupted.")
        return INTERRUPTED


def _parse(usage: str, argv: list, ctx: Context, prog: str | None) -> dict | int:
    from docopt import DocoptExit, docopt

    try:
        args = docopt(usage, argv, default_help=False, version=None)
    except DocoptExit:
        # One line, and never argv itself: it may hold a mistyped token.
        prog = prog or _program(usage)
        ctx.warn(f"{prog}: invalid arguments; see '{prog} --help'")
        return USAGE_ERROR
    if args.get("--help"):
        ctx.out(usage.strip("\n"))
        return 0
    if args.get("--version"):
        ctx.out(f"{prog or _program(usage)} {__version__}")
        return 0
    return dict(args)


def _program(usage: str) -> str:
    return usage.split("Usage:", 1)[1].split()[0]
