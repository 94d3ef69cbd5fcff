"""The edge: parse the usage docstring into the command's Options, --help/--version,
errors → exit codes."""

from __future__ import annotations

import os
import sys
from importlib import import_module

from . import __version__
from .errors import RexecError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from .commands import Options
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
        sys.stdout = None  # nothing more may be written to it, not even at exit
        status = 141
    sys.exit(status)


def main(command: str, argv: list[str], ctx: Context, prog: str | None = None) -> int:
    """Run `command` (a module of rexec_credential.commands) with argv; return the exit status.

    `prog` is the name the program was invoked as (git-credential-rexec or rexec-credential).
    """
    module = import_module(f"rexec_credential.commands.{command}")
    usage = module.__doc__ or ""
    trace = ctx.trace
    if trace.on:
        trace.name = prog or _program(usage)
        started = ctx.monotonic()
    quick = getattr(module, "quick_parse", None)
    args = quick(argv) if quick else None
    if args is None:
        args = _parse(usage, argv, ctx, prog)
        if isinstance(args, int):
            if trace.on:
                trace(f"exit {args}: help, version or a usage error ({len(argv)} arguments)")
            return args
    if trace.on:
        trace(f"arguments: {_named(args) or 'none'}")
    status = _run(module, module.Options.from_docopt(args), ctx, prog, usage)
    if trace.on:
        trace(f"exit {status} after {round((ctx.monotonic() - started) * 1000)} ms")
    return status


def _run(module: Any, opts: Options, ctx: Context, prog: str | None, usage: str) -> int:
    try:
        status: int = module.run(opts, ctx)
        return status
    except UsageError as exc:
        ctx.warn(f"{prog or _program(usage)}: {exc.message}")
        return exc.exit_code
    except RexecError as exc:
        ctx.warn(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl+C, wherever it lands: one line, the command's words
        ctx.warn(getattr(module, "CANCELLED", "Interrupted."))
        return INTERRUPTED


def _named(args: dict[str, Any]) -> str:
    """The options and command words given, by name only: a value may be a token."""
    return " ".join(
        key
        for key, value in args.items()
        if value not in (None, False, 0, [])
        and (key.startswith("-") or not key.startswith("<") and value is True)
    )


def _parse(usage: str, argv: list[str], ctx: Context, prog: str | None) -> dict[str, Any] | int:
    from docopt import DocoptExit, docopt

    prog = prog or _program(usage)
    try:
        args = docopt(usage, argv, default_help=False, version=None)
    except DocoptExit:
        # One line, and never argv itself: it may hold a mistyped token.
        unknown = unknown_option(usage, argv)
        what = f"unknown option {unknown}" if unknown else "invalid arguments"
        ctx.warn(f"{prog}: {what}; see '{prog} --help'")
        return USAGE_ERROR
    if args.get("--help"):
        ctx.out(usage_for(prog, usage).strip("\n"))
        return 0
    if args.get("--version"):
        ctx.out(f"{prog} {__version__}")
        return 0
    return dict(args)


def _program(usage: str) -> str:
    return usage.split("Usage:", 1)[1].split()[0]


def usage_for(prog: str, usage: str) -> str:
    """The usage text with its usage lines naming the program as it was invoked."""
    program = _program(usage)
    head, _, rest = usage.partition("Usage:\n")
    block, blank, tail = rest.partition("\n\n")
    lines = [
        f"  {prog}{line[len(program) + 2 :]}" if line.startswith(f"  {program} ") else line
        for line in block.split("\n")
    ]
    return head + "Usage:\n" + "\n".join(lines) + blank + tail


def unknown_option(usage: str, argv: list[str]) -> str | None:
    """The first option in argv that the usage does not know, by its name only.

    DocoptExit does not name it (its `left` is empty then, and its message shows the
    leftover arguments with their values, which may be a token). But docopt's own argv
    parser adds each option it does not know to the option list it is given, so argv is
    parsed once more with the usage's options and the first one added is the answer:
    prefixes, `--opt=value`, bundled short options and `--` as docopt reads them. (These
    functions are docopt-ng's, outside its `__all__`: tests/test_cli.py holds them to it.)
    """
    import docopt

    sections = docopt.parse_docstring_sections(usage)
    options = docopt.parse_options(sections.before_usage)
    options += docopt.parse_options(sections.after_usage)
    docopt.parse_pattern(docopt.formal_usage(sections.usage_body), options)  # usage-only options
    known = len(options)
    rest = docopt.Tokens(argv)
    while True:
        try:
            docopt.parse_argv(rest, options)
            break
        except docopt.DocoptExit:  # a known option without its value, or with one too many:
            continue  # the options after it are read all the same
    unknown = options[known:]
    return _shown(unknown[0].name or "") if unknown else None


def _shown(name: str) -> str | None:
    ok = len(name) <= 40 and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    return name if ok else None
