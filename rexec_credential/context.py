"""The world a command runs in: env, streams, clocks, terminal, browser, files, API client.

The only module that reads process globals (in `Context.from_process`); tests
build their own Context instead of patching anything. The trace (REXEC_TRACE) is reached
here too: without the variable it is `QUIET`, and trace.py is never imported.
"""

from __future__ import annotations

import io
import os
import sys
import time

from . import precedence
from .storage import Storage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Callable, Dict, Mapping, Union

    from .api import Client
    from .terminal import Terminal
    from .trace import Trace

    Args = Dict[str, Any]  # a command's parsed command line (docopt's dictionary)
    Tracer = Union[Trace, "Quiet"]

TRACE_ENV = "REXEC_TRACE"


class Quiet:
    """The trace when REXEC_TRACE is unset: writes nothing, and costs nothing."""

    on = False
    name = ""

    def __call__(self, message: str) -> None:
        """Nothing."""


QUIET = Quiet()


class Context:
    """Everything a command may touch, passed in."""

    def __init__(
        self,
        env: Mapping[str, str],
        stdin: IO[bytes],
        stdout: IO[str],
        stderr: IO[str],
        clock: Callable[[], float] = time.time,
        open_browser: Callable[[str], bool] | None = None,
        read_secret: Callable[[str], str] | None = None,
        stdin_is_tty: bool = False,
        stdout_is_tty: bool = False,
        stderr_is_tty: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.env = env
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.clock = clock  # wall clock: token expiry, when a login was made
        self.monotonic = monotonic  # for timeouts and countdowns
        self.open_browser = open_browser or _standard_browser
        self.stdin_is_tty = stdin_is_tty
        self.stdout_is_tty = stdout_is_tty
        self.stderr_is_tty = stderr_is_tty
        self._read_secret = read_secret
        self._terminal: Terminal | None = None
        self._storage: Storage | None = None
        self._trace: Tracer | None = None

    @classmethod
    def from_process(cls) -> Context:
        """The real process: os.environ, sys streams, wall clock, webbrowser, getpass."""
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True)  # a pipe sees each line at once
        return cls(
            env=os.environ,
            stdin=sys.stdin.buffer if sys.stdin else io.BytesIO(),  # None when started closed
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdin_is_tty=_isatty(sys.stdin),
            stdout_is_tty=_isatty(sys.stdout),
            stderr_is_tty=_isatty(sys.stderr),
        )

    @property
    def terminal(self) -> Terminal:
        """The person at the terminal: hidden input, countdown, pasted lines."""
        if self._terminal is None:
            from .terminal import Terminal  # not on `get`'s path

            self._terminal = Terminal(
                self.stdin, self.stdout, self.stdin_is_tty, self.stdout_is_tty, self._read_secret
            )
        return self._terminal

    @property
    def trace(self) -> Tracer:
        """Where the command says what it decided and why (REXEC_TRACE); QUIET when unset."""
        if self._trace is None:
            value = self.env.get(TRACE_ENV)
            self._trace = QUIET
            if value:
                from . import trace

                secrets = [*precedence.kept_out(self.env), self.env.get(precedence.ENV_TOKEN, "")]
                started = trace.start(value, self.stderr, self.warn, secrets, self.clock)
                self._trace = started or QUIET
        return self._trace

    @property
    def storage(self) -> Storage:
        """config.json and credentials.json, located from this context's environment."""
        if self._storage is None:
            self._storage = Storage(
                precedence.config_directory(self.env),
                self.warn,
                precedence.kept_out(self.env),
                trace=self.trace,
            )
        return self._storage

    def api(self, host: str) -> Client:
        """An API client for host (imports requests only when called)."""
        from .api import Client

        return Client(host, self.env, trace=self.trace)

    def out(self, line: str = "") -> None:
        """A line of normal output."""
        self.stdout.write(line + "\n")
        self.stdout.flush()

    def success(self, message: str) -> None:
        """A '✓ message' line, the mark green on a terminal."""
        self.out(f"{self.colour('✓', '32')} {message}")

    def warn(self, line: str) -> None:
        """A one-line error or warning on stderr."""
        self.stderr.write(line + "\n")
        self.stderr.flush()

    def colour(self, text: str, code: str, stream: str = "stdout") -> str:
        """Wrap text in an ANSI colour when that stream is a terminal and NO_COLOR is unset."""
        tty = self.stdout_is_tty if stream == "stdout" else self.stderr_is_tty
        if not tty or not precedence.colour_allowed(self.env):
            return text
        return f"\033[{code}m{text}\033[0m"


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def _standard_browser(url: str) -> bool:
    import webbrowser  # honours $BROWSER

    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
