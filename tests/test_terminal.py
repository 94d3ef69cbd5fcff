"""The person at the terminal (rexec_credential.terminal), called directly on real
pseudo-terminals (os.openpty) and pipes: a prompt read without echo (the real getpass, in a
child whose controlling terminal is the pty), echo off while a login waits, the countdown,
and lines pasted on stdin, read without ever blocking.

Elsewhere: rexec-login uses it through Context (`ctx.terminal`) in test_login_browser.py,
in-process with in-memory streams (the countdown, pasted lines, the prompt's stand-in for
getpass) and as the installed program on a pseudo-terminal (no echo, echo restored);
tests/stress/test_hostile_stdin.py feeds rexec-login hostile stdin.
"""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import termios
import threading
import time

import pytest

from rexec_credential.terminal import MAX_LINE, Countdown, PastedLines, Terminal

TIMEOUT = 10.0  # seconds any wait below may take before the test fails


class Pty:
    """A pseudo-terminal: what is typed goes in at the master; the program has the slave."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.transcript = b""  # everything the terminal showed

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, text: bytes) -> None:
        """Read what the terminal shows until text has appeared."""
        deadline = time.monotonic() + TIMEOUT
        while text not in self.transcript:
            if not self.read(deadline - time.monotonic()):
                raise AssertionError(f"no {text!r} in {self.transcript!r}")

    def read(self, timeout: float) -> bool:
        """Add what the terminal shows within timeout to the transcript; False if nothing."""
        if timeout <= 0 or not select.select([self.master], [], [], timeout)[0]:
            return False
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: nothing has the slave open any more
            return False
        self.transcript += chunk
        return bool(chunk)

    def echo(self) -> bool:
        return bool(termios.tcgetattr(self.master)[3] & termios.ECHO)

    def close_slave(self) -> None:
        """Close this process's copy of the slave (once: the number may be reused)."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def close(self) -> None:
        self.close_slave()
        os.close(self.master)


@pytest.fixture
def pty():
    terminal = Pty()
    try:
        yield terminal
    finally:
        terminal.close()


class Pipe:
    """A pipe: `stdin`, its read end as a program's binary stdin; the test writes the other."""

    def __init__(self) -> None:
        r, self._w = os.pipe()
        self.stdin = open(r, "rb")

    def write(self, data: bytes) -> None:
        os.write(self._w, data)

    def close_writer(self) -> None:
        """End of input (once: the number may be reused)."""
        if self._w >= 0:
            os.close(self._w)
            self._w = -1

    def close(self) -> None:
        self.close_writer()
        self.stdin.close()


@pytest.fixture
def pipe():
    channel = Pipe()
    try:
        yield channel
    finally:
        channel.close()


def collect(pasted: PastedLines, until) -> list:
    """Lines read from `pasted` until `until(lines)` holds; fails after TIMEOUT."""
    lines: list = []
    deadline = time.monotonic() + TIMEOUT
    while not until(lines):
        assert time.monotonic() < deadline, lines
        lines += pasted.read(0.05)
    return lines


def slave_stdin(pty: Pty):
    """The pty's slave as a program's binary stdin (unbuffered, the descriptor kept)."""
    return open(pty.slave, "rb", buffering=0, closefd=False)


# -- ask --------------------------------------------------------------------------------------


def test_ask_on_a_pipe_prints_the_prompt_and_reads_one_line(pipe):
    pipe.write(b"  answer \t\nnext\n")
    out = io.StringIO()
    term = Terminal(pipe.stdin, out, stdin_is_tty=False, stdout_is_tty=False)
    assert term.ask("Paste your token here: ") == "answer"
    assert out.getvalue() == "Paste your token here: \n"
    assert term.ask("Again: ") == "next"


def test_ask_on_a_pipe_at_end_of_input_is_empty(pipe):
    pipe.close_writer()
    assert Terminal(pipe.stdin, io.StringIO(), False, False).ask("Token: ") == ""


def test_ask_on_a_pipe_replaces_what_is_not_utf8(pipe):
    pipe.write(b"\xff\xfetoken\n")
    assert Terminal(pipe.stdin, io.StringIO(), False, False).ask("Token: ") == "\ufffd\ufffdtoken"


def test_ask_reads_no_more_than_max_line(tmp_path):
    path = tmp_path / "stdin"
    path.write_bytes(b"a" * (MAX_LINE + 10) + b"\n")
    with open(path, "rb") as stdin:
        assert Terminal(stdin, io.StringIO(), False, False).ask("Token: ") == "a" * MAX_LINE


ASK = """
import fcntl, signal, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes this session's terminal (/dev/tty)
# Ctrl+C as at a shell prompt, even when this runs under a shell's background job, which
# starts its children with SIGINT ignored (Python then installs no handler of its own).
signal.signal(signal.SIGINT, signal.default_int_handler)
from rexec_credential.terminal import Terminal
try:
    answer = Terminal(sys.stdin.buffer, sys.stdout, True, True).ask("Token: ")
except KeyboardInterrupt:
    answer = "KeyboardInterrupt"
sys.stderr.write(repr(answer))
"""


@pytest.mark.parametrize(
    "typed, answer",
    [
        (b"  s3cret-token \r", "s3cret-token"),  # Enter on a terminal sends \r
        (b"\x04", ""),  # Ctrl+D: end of input
        (b"\x03", "KeyboardInterrupt"),  # Ctrl+C: left to the caller
    ],
    ids=["typed", "ctrl-d", "ctrl-c"],
)
def test_ask_on_a_terminal_reads_without_echo(pty, typed, answer):
    child = subprocess.Popen(
        [sys.executable, "-c", ASK],
        stdin=pty.slave,
        stdout=pty.slave,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        pty.close_slave()  # the child's copy is the terminal's only reader now
        pty.expect(b"Token: ")
        assert not pty.echo()  # off before the prompt was shown
        pty.type(typed)
        _, err = child.communicate(timeout=TIMEOUT)
        while pty.read(0.05):  # the rest the terminal shows
            pass
    finally:
        child.kill()
        child.wait()
    assert err.decode() == repr(answer)
    assert b"s3cret" not in pty.transcript
    assert pty.echo()  # restored, whichever way the prompt ended


def test_ask_on_a_terminal_asks_the_given_reader_and_leaves_stdin_alone(pty):
    prompts = []

    def read_secret(prompt: str) -> str:  # what Context passes for getpass in tests
        prompts.append(prompt)
        return "  typed \n"

    out = io.StringIO()
    with slave_stdin(pty) as stdin:
        term = Terminal(stdin, out, True, True, read_secret=read_secret)
        pty.type(b"not read\r")
        assert term.ask("Token: ") == "typed"
        assert (prompts, out.getvalue()) == (["Token: "], "")  # the reader shows the prompt
        assert collect(term.pasted(), until=bool) == ["not read"]


# -- hidden -----------------------------------------------------------------------------------


def test_hidden_turns_echo_off_inside_and_restores_the_terminal(pty):
    with slave_stdin(pty) as stdin:
        term = Terminal(stdin, io.StringIO(), True, True)
        before = termios.tcgetattr(pty.slave)
        assert before[3] & termios.ECHO
        with term.hidden():
            inside = termios.tcgetattr(pty.slave)
            assert not inside[3] & termios.ECHO
            pty.type(b"s3cret\r")
            assert collect(term.pasted(), until=bool) == ["s3cret"]
        assert termios.tcgetattr(pty.slave) == before
    # Only echo changed, and nothing was shown while it was off: what is typed now is.
    assert inside[:3] + inside[4:] == before[:3] + before[4:]
    assert inside[3] == before[3] & ~termios.ECHO
    pty.type(b"shown\r")
    pty.expect(b"shown")
    assert b"s3cret" not in pty.transcript


def test_hidden_restores_echo_when_the_wait_is_interrupted(pty):
    with slave_stdin(pty) as stdin:
        term = Terminal(stdin, io.StringIO(), True, True)
        with pytest.raises(KeyboardInterrupt):
            with term.hidden():
                assert not pty.echo()
                raise KeyboardInterrupt
        assert pty.echo()


def test_hidden_leaves_the_terminal_alone_when_stdin_is_not_one(pty):
    with slave_stdin(pty) as stdin:
        with Terminal(stdin, io.StringIO(), False, True).hidden():
            assert pty.echo()


@pytest.mark.parametrize("stdin", ["pipe", "memory"])
def test_hidden_on_what_only_claims_to_be_a_terminal_just_runs_the_body(pipe, stdin):
    stream = pipe.stdin if stdin == "pipe" else io.BytesIO(b"")
    ran = []
    with Terminal(stream, io.StringIO(), True, True).hidden():
        ran.append(True)
    assert ran == [True]


# -- countdown --------------------------------------------------------------------------------


def test_countdown_is_drawn_in_place_only_when_the_text_changes():
    out = io.StringIO()
    countdown = Countdown(out, drawn=True)
    for left in (61.2, 61.05, 60.0, 59.5, 59.0, 0.01):
        countdown.show(left)
    assert out.getvalue().split("\r")[1:] == [
        "Time left: 1:02\033[K",
        "Time left: 1:00\033[K",  # 61.05 rounds up to 1:02 too; 59.5 to 1:00
        "Time left: 0:59\033[K",
        "Time left: 0:01\033[K",  # never 0:00 while time is left
    ]


def test_countdown_clear_erases_the_line_once_and_the_next_show_draws_again():
    out = io.StringIO()
    countdown = Countdown(out, drawn=True)
    countdown.clear()
    assert out.getvalue() == ""  # nothing drawn: nothing to clear
    countdown.show(3600)
    countdown.clear()
    countdown.clear()
    countdown.show(3600)
    assert out.getvalue() == "\rTime left: 60:00\033[K\r\033[K\rTime left: 60:00\033[K"


def test_countdown_draws_nothing_on_a_pipe():
    out = io.StringIO()
    countdown = Terminal(io.BytesIO(), out, stdin_is_tty=True, stdout_is_tty=False).countdown()
    countdown.show(30)
    countdown.clear()
    assert out.getvalue() == ""


def test_countdown_on_a_terminal(pty):
    with open(pty.slave, "w", closefd=False) as stdout:
        countdown = Terminal(io.BytesIO(), stdout, False, stdout_is_tty=True).countdown()
        countdown.show(125)
        pty.expect(b"\rTime left: 2:05\x1b[K")
        countdown.clear()
        pty.expect(b"\x1b[K\r\x1b[K")


# -- pasted lines -----------------------------------------------------------------------------


def test_pasted_lines_never_block_when_nothing_arrives(pipe):
    pasted = Terminal(pipe.stdin, io.StringIO(), False, False).pasted()
    got: list = []
    reader = threading.Thread(target=lambda: got.append(pasted.read(0)), daemon=True)
    reader.start()
    reader.join(TIMEOUT)
    blocked = reader.is_alive()
    pipe.close_writer()  # a reader that did block returns now
    reader.join(TIMEOUT)
    assert not blocked
    assert got == [[]] and pasted.open


def test_pasted_lines_come_whole_and_the_rest_at_end_of_input(pipe):
    pasted = PastedLines(pipe.stdin)
    pipe.write(b"first\nsecond\nthi")  # written before the read: all there at once
    assert pasted.read(TIMEOUT) == ["first", "second"]
    pipe.write(b"rd\nfou")
    assert pasted.read(TIMEOUT) == ["third"]
    pipe.close_writer()
    assert pasted.read(TIMEOUT) == ["fou"]
    assert not pasted.open


def test_pasted_lines_replace_what_is_not_utf8(pipe):
    pipe.write(b"\xffa\xc3\n")
    assert PastedLines(pipe.stdin).read(TIMEOUT) == ["\ufffda\ufffd"]


def test_an_overlong_pasted_line_is_dropped_not_kept_whole(pipe):
    pasted = PastedLines(pipe.stdin)
    long_line = b"x" * (MAX_LINE * 3 // 2)

    def paste() -> None:  # more than a pipe holds: written while the lines are read
        pipe.write(long_line + b"\nafter\n")

    writer = threading.Thread(target=paste)
    writer.start()
    try:
        lines = collect(pasted, until=lambda lines: "after" in lines)
    finally:
        writer.join(TIMEOUT)
    assert lines[-1] == "after"
    assert max(len(line) for line in lines) < len(long_line)


def test_pasted_lines_on_a_terminal_arrive_at_enter(pty):
    with slave_stdin(pty) as stdin:
        pasted = Terminal(stdin, io.StringIO(), True, True).pasted()
        pty.type(b"http://127.0.0.1:9876/callback/n?token=t\r")
        assert collect(pasted, until=bool) == ["http://127.0.0.1:9876/callback/n?token=t"]
        pty.type(b"one\rtwo\r")
        assert collect(pasted, until=lambda lines: len(lines) >= 2) == ["one", "two"]
        assert pasted.open


def test_pasted_lines_from_memory_are_all_there_at_once():
    pasted = PastedLines(io.BytesIO(b"a\nb\n\nlast"))
    assert pasted.read(0) == ["a", "b", "", "last"]
    assert not pasted.open
