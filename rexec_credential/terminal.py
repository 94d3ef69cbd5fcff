"""The person at the terminal: hidden input, a countdown, lines pasted while a login waits.

Reached through Context (`ctx.terminal`), so a command never touches file descriptors,
termios or getpass itself, and a test gives it in-memory streams. On a pipe nothing is
hidden and no countdown is drawn.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Callable, Iterator

MAX_LINE = 65536  # bytes of one pasted line; longer is not something anyone pasted


class Terminal:
    """stdin/stdout, whether each is a terminal, and a no-echo prompt (getpass)."""

    def __init__(
        self,
        stdin: IO[bytes],
        stdout: IO[str],
        stdin_is_tty: bool,
        stdout_is_tty: bool,
        read_secret: Callable[[str], str] | None = None,
    ) -> None:
        self.stdin, self.stdout = stdin, stdout
        self.stdin_is_tty, self.stdout_is_tty = stdin_is_tty, stdout_is_tty
        self._read_secret = read_secret or _getpass

    def ask(self, prompt: str) -> str:
        """One answer: typed without echo on a terminal, a line of stdin otherwise; '' at
        end of input. Ctrl+C is left to the caller (KeyboardInterrupt)."""
        try:
            if self.stdin_is_tty:
                return self._read_secret(prompt).strip()
            self.stdout.write(prompt)
            self.stdout.flush()
            line = self.stdin.readline(MAX_LINE)
            self.stdout.write("\n")
            self.stdout.flush()
        except EOFError:
            return ""
        return line.decode("utf-8", "replace").strip()

    @contextmanager
    def hidden(self) -> Iterator[None]:
        """Echo off on a terminal while inside, so a pasted address or token is not shown."""
        fd = _fileno(self.stdin) if self.stdin_is_tty else None
        saved = None
        if fd is not None:
            import termios

            try:
                saved = termios.tcgetattr(fd)
                quiet = termios.tcgetattr(fd)
                quiet[3] &= ~termios.ECHO
                termios.tcsetattr(fd, termios.TCSANOW, quiet)
            except (OSError, termios.error):
                saved = None
        try:
            yield
        finally:
            if fd is not None and saved is not None:
                termios.tcsetattr(fd, termios.TCSANOW, saved)

    def countdown(self) -> Countdown:
        """The time left, drawn in place on a terminal."""
        return Countdown(self.stdout, self.stdout_is_tty)

    def pasted(self) -> PastedLines:
        """Lines arriving on stdin, read without blocking."""
        return PastedLines(self.stdin)


class Countdown:
    """`Time left: M:SS`, rewritten in place on a terminal; nothing on a pipe."""

    def __init__(self, stream: IO[str], drawn: bool) -> None:
        self._stream = stream
        self._drawn = drawn
        self._shown = ""

    def show(self, left: float) -> None:
        """Show the seconds left (only when the text changes)."""
        if not self._drawn:
            return
        seconds = math.ceil(left)
        text = f"Time left: {seconds // 60}:{seconds % 60:02d}"
        if text != self._shown:
            self._write(f"\r{text}\033[K")
            self._shown = text

    def clear(self) -> None:
        """Remove it, so that a message can be printed on a clean line."""
        if self._shown:
            self._write("\r\033[K")
            self._shown = ""

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


class PastedLines:
    """Lines pasted on stdin while waiting, read without ever blocking the wait."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._fd = _fileno(stream)
        self._partial = b""
        self.open = True

    def read(self, timeout: float) -> list[str]:
        """The complete lines that arrive within timeout seconds (and the rest at EOF)."""
        chunk = self._chunk(timeout)
        if chunk is None:
            return []
        if not chunk or self._fd is None:
            self.open = False
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop() if self.open else b""
        if len(self._partial) > MAX_LINE:
            self._partial = b""  # not something anyone pasted
        return [line.decode("utf-8", "replace") for line in lines]

    def _chunk(self, timeout: float) -> bytes | None:
        if self._fd is None:  # an in-memory stream: all it will ever hold is there now
            return self._stream.read(MAX_LINE)
        import select

        try:
            if not select.select([self._fd], [], [], timeout)[0]:
                return None
            # os.read, not the buffered stream: it returns what is there without waiting
            # for more, and leaves no thread holding the stream's lock at exit.
            return os.read(self._fd, 4096)
        except (OSError, ValueError):
            return b""


def _fileno(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def _getpass(prompt: str) -> str:
    import getpass

    return getpass.getpass(prompt)
