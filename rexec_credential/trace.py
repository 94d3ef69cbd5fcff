"""REXEC_TRACE: where a command writes what it decided and why, and what a line may show.

As with GIT_TRACE: `1`, `2` or `true` (in any case) trace to standard error; an absolute
path appends to that file, created 0600 whatever the umask and opened with O_NOFOLLOW
and O_NONBLOCK (a symbolic link, a FIFO or anything but a regular file is refused: never
followed, never waited on); `0`, `false` or an empty value trace nothing. Anything else —
a relative path, another word — is refused with one warning line on standard error,
which never repeats the value, and the command goes on untraced.

A line is the local time, the program and its process id, then the message. Every
message goes through `tokens.clean` with the tokens the command knows of: tokens are
masked (an API token shows as `rexec_…`, a JWT as its kind), control characters dropped
and line breaks folded, so that no line holds a token and no value read from a file can
forge a line. Writing never fails a command: a trace that cannot be written is dropped.
Only Context imports this module, and only when REXEC_TRACE is set: `get` pays nothing
for it otherwise.
"""

from __future__ import annotations

import os
import stat
import threading
import time

from . import tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Callable, Collection

ENV = "REXEC_TRACE"
TO_STDERR = ("1", "2", "true")
OFF = ("", "0", "false")
LIMIT = 2000  # characters of one message (a cleaned text is cut there)
REFUSED = (
    "warning: REXEC_TRACE is not 1, 2, true or an absolute path; not tracing "
    "(set it to 2 for standard error, or to /full/path/of/a/file)"
)


class Trace:
    """Writes trace lines; `on` is True (the stand-in when tracing is off has it False)."""

    on = True

    def __init__(
        self,
        write: Callable[[str], None],
        secrets: Collection[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = "rexec"  # the program, set by cli.main
        self._write = write
        self._secrets = [s for s in secrets if s]
        self._clock = clock
        self._pid = os.getpid()
        self._lock = threading.Lock()  # a login's callback thread traces too

    def __call__(self, message: str) -> None:
        """Write one line: the time, the program, then the message, cleaned."""
        now = self._clock()
        micro = int(now % 1 * 1_000_000)
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{micro:06d}"
        text = tokens.clean(message, self._secrets, LIMIT)
        line = f"{stamp} {self.name}[{self._pid}]: {text}\n"
        with self._lock:
            try:
                self._write(line)
            except (OSError, ValueError):
                pass  # a closed stderr, a full disk: the command goes on untraced


def start(
    value: str,
    stderr: IO[str],
    warn: Callable[[str], None],
    secrets: Collection[str] = (),
    clock: Callable[[], float] = time.time,
) -> Trace | None:
    """The trace REXEC_TRACE's value asks for, or None: off, or refused (one warning)."""
    word = value.strip().lower()
    if word in OFF:
        return None
    if word in TO_STDERR:

        def to_stderr(line: str) -> None:
            stderr.write(line)
            stderr.flush()

        return Trace(to_stderr, secrets, clock)
    if not os.path.isabs(value):
        warn(REFUSED)
        return None
    try:
        fd = _open(value)
    except OSError as exc:
        # The path is not repeated: it is an environment value (docs/contract.md §6).
        warn(f"warning: cannot append to the file REXEC_TRACE names ({_why(exc)}); not tracing")
        return None
    file = os.fdopen(fd, "ab", buffering=0)  # closed when the trace goes

    def to_file(line: str) -> None:
        file.write(line.encode("utf-8"))  # one write(2) with O_APPEND: lines never interleave

    return Trace(to_file, secrets, clock)


def _open(path: str) -> int:
    """A regular file opened for appending: created 0600, never through a link, never a FIFO."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        created = True
    except FileExistsError:  # (also a link, dangling or not: O_EXCL never follows one)
        fd = os.open(path, flags)
        created = False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        if created and stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(fd, 0o600)  # whatever the umask took away
    except BaseException:
        os.close(fd)
        raise
    return fd


def _why(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "it is a symbolic link"
    if exc.errno == errno.ENXIO:
        return "it is a FIFO or socket"
    return (exc.strerror or str(exc)).lower()
