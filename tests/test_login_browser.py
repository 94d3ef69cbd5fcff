"""rexec-login's browser flow (docs/contract.md §5) against the stand-in service.

In-process tests run cli.main with a Context whose open_browser clicks through the
stand-in's pages from a thread (rexec_credential.testing.scripted_browser), firing
attacks at the callback first; subprocess tests run the installed rexec-login, some
through a pseudo-terminal so the no-echo paths are real.
"""

from __future__ import annotations

import fcntl
import http.client
import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import termios
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import BIN_DIR, Result, call, run_bin
from helpers import eventually

from rexec_credential import cli
from rexec_credential.commands import login as login_command
from rexec_credential.context import Context
from rexec_credential.paste import WRONG_ADDRESS
from rexec_credential.testing import scripted_browser

BANNER = (
    "╔══════════════════════════════════════════╗\n"
    "           Rexec CLI Login\n"
    "╚══════════════════════════════════════════╝\n"
)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
URL_LINE = re.compile(r"^(http://127\.0\.0\.1:\d+/cli-login\?callback=\S+)$", re.M)


# -- helpers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_port_bindable(port: int) -> None:
    """Nothing holds the port any more: a plain bind (no SO_REUSEADDR) and listen succeed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
        probe.listen()


def callback_of(login_url: str) -> str:
    """The callback URL the login page was given."""
    return parse_qs(urlsplit(login_url).query)["callback"][0]


def request(callback_url: str, target: str, method: str = "GET", host: str | None = None) -> int:
    """One raw request to the callback server; its status."""
    port = urlsplit(callback_url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


class Browser:
    """A Context.open_browser: from a thread, runs `before`, clicks through the stand-in's
    login as user, opens the callback it redirects to, then runs `after`."""

    def __init__(
        self,
        user: str = "johndoe",
        password: str = "hunter2",
        before=None,
        after=None,
        follow: bool = True,
    ) -> None:
        self.user, self.password = user, password
        self.before, self.after, self.follow = before, after, follow
        self.urls: list = []
        self.pages: list = []
        self.errors: list = []
        self.location = ""
        self._thread: threading.Thread | None = None

    def __call__(self, url: str) -> bool:
        self.urls.append(url)
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()
        return True

    def _run(self, url: str) -> None:
        try:
            if self.before:
                self.before(callback_of(url))
            self.location = scripted_browser.authorize(url, self.user, self.password)
            if self.follow:
                self.pages.append(scripted_browser.visit(self.location))
            if self.after:
                self.after(self.location)
        except BaseException as exc:  # surfaced by check()
            self.errors.append(exc)

    def check(self) -> None:
        """Wait for the thread; re-raise what went wrong in it."""
        if self._thread is not None:
            self._thread.join(20)
        if self.errors:
            raise self.errors[0]


def browser_flow(svc, *argv: str, browser=None, timeout: str = "10", **options) -> Result:
    """rexec-login's browser flow (a login without --token) in-process:
    rexec-login --host <stand-in> --port 0 --timeout <timeout> [argv], `browser` opening the
    address (a callable standing for the person's browser)."""
    args = ["--host", svc.url, "--port", "0", "--timeout", timeout, *argv]
    return call("login", args, open_browser=browser, **options)


def login_with_stdin(stream, argv: list, browser) -> Result:
    """Like conftest.call, with a real stream (e.g. a pipe) as stdin."""
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(env=dict(os.environ), stdin=stream, stdout=out, stderr=err, open_browser=browser)
    code = cli.main("login", argv, ctx)
    return Result(out.getvalue(), err.getvalue(), code)


def stored(config_path) -> dict | None:
    return json.loads(config_path.read_text()) if config_path.exists() else None


SUCCESS = "✓ Successfully logged in as johndoe (johndoe@example.com)\n"


def made_a_device_token(result, standin, config_path, location: str) -> None:
    """The login succeeded with a device token of johndoe stored (its line printed after
    the success line) and the browser's own session token (in the callback) nowhere."""
    assert SUCCESS + "Device token '" in result.out, result
    token = stored(config_path)["token"]
    assert standin.api_token_id(token) in [t["id"] for t in standin.api_tokens("johndoe")]
    session_jwt = location.split("?token=", 1)[1]
    for path in config_path.parent.iterdir():
        assert session_jwt not in path.read_text(errors="replace"), path


# -- the happy path -------------------------------------------------------------------------


def test_browser_login_prints_the_seed_lines_stores_and_says_who(standin, config_path):
    browser = Browser()
    result = browser_flow(standin, browser=browser)
    browser.check()
    assert result.code == 0, result
    url = browser.urls[0]
    assert result.out.startswith(
        BANNER + "\nOpening browser for login...\n\n"
        "If browser doesn't open, visit:\n" + url + "\n\n"
        "Waiting for login... (Press Ctrl+C to cancel)\n"
    )
    success, device = result.out.splitlines()[-2:]
    assert success == "✓ Successfully logged in as johndoe (johndoe@example.com)"
    name = login_command.default_token_name()
    assert re.fullmatch(
        f"Device token '{re.escape(name)}' made for this machine, valid until "
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC; revoke it at {re.escape(standin.url)}/settings",
        device,
    ), device
    assert result.err == ""
    # <host>/cli-login?callback=<percent-encoded http://127.0.0.1:PORT/callback/<nonce>>
    assert url.startswith(standin.url + "/cli-login?callback=http%3A%2F%2F127.0.0.1%3A")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback/[A-Za-z0-9_-]{43}", callback_of(url))
    status, body, _ = browser.pages[0]
    assert status == 200 and "Login Successful!" in body and "johndoe" in body
    data = stored(config_path)
    assert data["host"] == standin.url and data["username"] == "johndoe"
    # The device token is stored, never the browser's own session token.
    session_jwt = browser.location.split("?token=", 1)[1]
    [made] = standin.api_tokens("johndoe")
    assert data["token"].startswith(made["token_prefix"]) and made["name"] == name
    assert standin.api_token_id(data["token"]) == made["id"]
    for path in config_path.parent.iterdir():
        assert session_jwt not in path.read_text(errors="replace"), path
    assert data["token"] not in result.out + result.err  # tokens are never printed


def test_listener_is_bound_to_127_0_0_1_only_during_login(standin):
    seen = {}

    def inspect(callback_url):
        port = urlsplit(callback_url).port
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                continue
            with open(table) as handle:
                for row in handle.read().splitlines()[1:]:
                    local, state = row.split()[1], row.split()[3]
                    if int(local.rpartition(":")[2], 16) == port and state == "0A":
                        seen.setdefault(table, []).append(local.rpartition(":")[0])

    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("no /proc/net/tcp on this system")
    browser = Browser(before=inspect)
    result = browser_flow(standin, browser=browser)
    browser.check()
    assert result.code == 0, result
    assert seen == {"/proc/net/tcp": ["0100007F"]}  # 127.0.0.1, never 0.0.0.0 or ::


# -- attacks: none logs anyone in; the genuine request afterwards still works ---------------


def _wrong_nonce(cb, evil):
    nonce = cb.rsplit("/", 1)[1]
    wrong = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
    return request(cb, f"/callback/{wrong}?token={evil}")


ATTACKS = {
    "wrong_nonce": (_wrong_nonce, 404),
    "missing_nonce": (lambda cb, evil: request(cb, f"/callback?token={evil}"), 404),
    "foreign_host_header": (
        lambda cb, evil: request(
            cb, urlsplit(cb).path + f"?token={evil}", host=f"evil.example:{urlsplit(cb).port}"
        ),
        421,
    ),
    "post": (lambda cb, evil: request(cb, urlsplit(cb).path + f"?token={evil}", "POST"), 405),
    "other_path": (lambda cb, evil: request(cb, f"/favicon.ico?token={evil}"), 404),
    "missing_token": (lambda cb, evil: request(cb, urlsplit(cb).path), 400),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_on_the_callback_logs_no_one_in(standin, config_path, attack):
    send, expected = ATTACKS[attack]
    evil = standin.mint_jwt("janedoe")  # a real token for someone else
    statuses = []

    def attack_first(cb):
        statuses.append(send(cb, evil))
        assert not config_path.exists()

    browser = Browser(before=attack_first)
    result = browser_flow(standin, browser=browser)
    browser.check()
    assert statuses == [expected]
    assert result.code == 0, result
    assert "johndoe" in result.out and "janedoe" not in result.out
    data = stored(config_path)
    assert data["username"] == "johndoe" and data["token"] != evil


def test_replay_of_the_good_callback_after_success_logs_no_one_in(standin, config_path):
    evil = standin.mint_jwt("janedoe")
    replays = []

    def replay(location):
        for url in (location, location.split("?")[0] + "?token=" + evil):
            try:
                replays.append(scripted_browser.visit(url)[0])
            except OSError:
                replays.append("refused")  # the listener is already closed

    browser = Browser(after=replay)
    result = browser_flow(standin, browser=browser)
    browser.check()
    assert result.code == 0, result
    assert set(replays) <= {410, "refused"} and len(replays) == 2
    assert stored(config_path)["username"] == "johndoe"
    made_a_device_token(result, standin, config_path, browser.location)


# -- failures -------------------------------------------------------------------------------


def test_token_the_service_rejects_gets_a_failure_page_exit_1_nothing_stored(standin, config_path):
    standin.cli_login_rejected = True
    browser = Browser()
    result = browser_flow(standin, browser=browser)
    browser.check()
    assert result.code == 1
    assert result.err == "Invalid token: token signature is invalid\n"
    assert "Successfully" not in result.out
    status, body, _ = browser.pages[0]
    assert status == 401 and "Login Failed" in body and "token signature is invalid" in body
    assert not config_path.exists()


class Opener:
    """A Context.open_browser that runs `visit(url)` (if given) and records what it got.

    It runs in rexec-login's browser thread, which the login does not wait for: a test
    reads `results()`, which waits for the thread to have finished, never the list as it
    happens to be."""

    def __init__(self, visit=None) -> None:
        self.visit = visit
        self.urls: list = []
        self._results: list = []
        self._done = threading.Event()

    def __call__(self, url: str) -> bool:
        try:
            self.urls.append(url)
            self._results.append(self.visit(url) if self.visit else url)
        finally:
            self._done.set()
        return True

    def results(self, timeout: float = 20) -> list:
        assert self._done.wait(timeout), "the browser thread did not finish"
        return self._results


def test_service_unreachable_after_the_callback_exits_3(standin, config_path):
    down = f"http://127.0.0.1:{free_port()}"
    token = standin.mint_jwt("johndoe")
    opener = Opener(lambda url: scripted_browser.visit(callback_of(url) + "?token=" + token))
    result = call("login", ["--host", down, "--port", "0", "--timeout", "20"], open_browser=opener)
    assert result.code == 3, result
    assert "cannot reach Rexec service" in result.err
    (page,) = opener.results()
    assert page[0] == 401 and "Login Failed" in page[1]
    assert not config_path.exists()


def test_timeout_says_so_exits_1_frees_the_port_stores_nothing(standin, config_path):
    port = free_port()
    opener = Opener()
    result = call(
        "login",
        ["--host", standin.url, "--port", str(port), "--timeout", "0.3"],
        open_browser=opener,
    )
    assert result.code == 1
    assert result.err == "Login timed out. Please try again.\n"
    assert len(opener.results()) == 1
    assert_port_bindable(port)
    assert not config_path.exists()


def test_ctrl_c_while_waiting_says_cancelled_exits_130(standin, config_path):
    port = free_port()
    # interrupt_main() does nothing unless SIGINT's handler is Python's own: make sure it is
    # (a test runner or an earlier test in this process may have replaced it). A lost
    # interrupt then fails within --timeout, not after the default five minutes.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt(url):  # Ctrl+C reaches the main thread while it waits
        import _thread

        _thread.interrupt_main()
        return True

    try:
        result = call(
            "login",
            ["--host", standin.url, "--port", str(port), "--timeout", "30"],
            open_browser=interrupt,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (result.code, result.err) == (130, "Login cancelled.\n")
    assert_port_bindable(port)
    assert not config_path.exists()


def test_no_browser_prints_the_url_without_opening_anything(standin, config_path):
    opened = []
    result = browser_flow(
        standin, "--no-browser", timeout="0.2", browser=lambda url: opened.append(url) or True
    )
    assert opened == []
    assert "Opening browser" not in result.out
    assert "If browser doesn't open" not in result.out
    assert "\n\n" + standin.url + "/cli-login?callback=" in result.out
    assert result.code == 1 and "Login timed out" in result.err


def test_browser_that_cannot_open_is_reported_and_waiting_goes_on(standin):
    result = browser_flow(standin, timeout="0.2", browser=lambda url: False)
    assert "Couldn't open a browser; visit the address above." in result.err
    assert "Login timed out. Please try again." in result.err


def test_time_left_ticks_on_a_terminal_and_is_cleared(standin):
    result = browser_flow(
        standin, timeout="1.5", browser=lambda url: True, stdout_is_tty=True, stdin_is_tty=True
    )
    assert "\rTime left: 0:02\033[K" in result.out
    assert "\rTime left: 0:01\033[K" in result.out
    assert result.out.endswith("\r\033[K")
    assert "Paste the address it ends on (or the token)" in result.out
    assert result.code == 1


@pytest.mark.parametrize(
    "argv",
    [["--port", "xyzzy"], ["--port", "70000"], ["--timeout", "-17"], ["--timeout", "soon"]],
    ids=["port-word", "port-big", "timeout-negative", "timeout-word"],
)
def test_bad_port_or_timeout_is_a_usage_error(standin, argv):
    opened = []
    result = call("login", ["--host", standin.url, *argv], open_browser=opened.append)
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith(f"rexec-login: invalid {argv[0]}: ")
    assert argv[1] not in result.err  # never the value: it may be a mistyped secret
    assert opened == []


def test_plain_http_remote_host_is_refused_before_listening():
    opened = []
    result = call(
        "login", ["--host", "http://rexec.example", "--port", "0"], open_browser=opened.append
    )
    assert result.code == 2 and "refusing to send a token over plain http" in result.err
    assert opened == []


# -- pasting the address (remote shells) ----------------------------------------------------


def test_pasted_address_logs_in_and_a_wrong_nonce_is_refused(standin, config_path):
    read_fd, write_fd = os.pipe()
    evil = standin.mint_jwt("janedoe")

    def paste(location):  # the browser ran elsewhere and could not reach our loopback
        cb = location.split("?")[0]
        wrong = cb[:-1] + ("A" if cb[-1] != "A" else "B")
        cut_short = location[: location.index("?token=") + 30]
        lines = [wrong + "?token=" + evil, "hello", cut_short, location]
        os.write(write_fd, ("\n".join(lines) + "\n").encode())

    browser = Browser(follow=False, after=paste)
    with os.fdopen(read_fd, "rb", buffering=0) as stdin:
        result = login_with_stdin(
            stdin, ["--host", standin.url, "--port", "0", "--timeout", "10"], browser
        )
    os.close(write_fd)
    browser.check()
    assert result.code == 0, result
    made_a_device_token(result, standin, config_path, browser.location)
    assert result.err.splitlines() == [
        WRONG_ADDRESS,
        login_command.NOT_A_TOKEN,
        login_command.NOT_A_TOKEN,
    ]
    data = stored(config_path)
    assert data["username"] == "johndoe"
    assert data["token"] not in result.out + result.err


def test_pasted_bare_token_logs_in(standin, config_path):
    token = standin.mint_api_token("janedoe")
    result = browser_flow(standin, "--no-browser", stdin=token.encode() + b"\n")
    assert result.code == 0, result
    assert result.out.endswith("✓ Successfully logged in as janedoe (jane@example.com)\n")
    assert stored(config_path)["token"] == token


def test_pasted_token_the_service_rejects_is_reported_and_the_wait_goes_on(standin, config_path):
    revoked = standin.mint_api_token("janedoe")
    standin.revoke(revoked)
    good = standin.mint_api_token("johndoe")
    result = browser_flow(standin, "--no-browser", stdin=f"{revoked}\n{good}\n".encode())
    assert result.code == 0, result
    assert result.err == "Invalid token: invalid token\n"
    assert result.out.endswith("✓ Successfully logged in as johndoe (johndoe@example.com)\n")
    assert stored(config_path)["token"] == good


def test_pasted_rejected_token_then_nothing_times_out(standin, config_path):
    revoked = standin.mint_api_token("janedoe")
    standin.revoke(revoked)
    result = browser_flow(standin, "--no-browser", timeout="1", stdin=f"{revoked}\n".encode())
    assert result.code == 1
    assert result.err == "Invalid token: invalid token\nLogin timed out. Please try again.\n"
    assert not config_path.exists()


# -- port taken: manual login ---------------------------------------------------------------


@pytest.fixture
def taken_port():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        yield squatter.getsockname()[1]


MANUAL = (
    "\nManual login:\n1. Go to: {host}/settings\n2. Click on 'API Tokens' section\n"
    "3. Generate a new token and copy it\n\nPaste your token here: "
)


def test_port_taken_offers_manual_login_with_a_line_from_stdin(standin, config_path, taken_port):
    token = standin.mint_api_token("janedoe")
    result = call(
        "login", ["--host", standin.url, "--port", str(taken_port)], stdin=token.encode() + b"\n"
    )
    assert result.code == 0, result
    assert result.err == (
        f"Couldn't start local server: address already in use\n{login_command.PORT_HINT}\n"
    )
    assert "--port 0" in login_command.PORT_HINT
    assert result.out == (
        MANUAL.format(host=standin.url) + "\n✓ Logged in as janedoe (jane@example.com)\n"
    )
    assert stored(config_path)["token"] == token


def test_port_taken_prompts_without_echo_on_a_terminal(standin, config_path, taken_port):
    token = standin.mint_api_token("janedoe")
    prompts = []
    result = call(
        "login",
        ["--host", standin.url, "--port", str(taken_port)],
        stdin_is_tty=True,
        read_secret=lambda p: prompts.append(p) or token,
    )
    assert result.code == 0, result
    assert prompts == ["Paste your token here: "]
    assert token not in result.out


@pytest.mark.parametrize("stdin", [b"", b"\n", b"   \n"], ids=["eof", "empty", "blank"])
def test_port_taken_and_empty_answer_is_cancelled(standin, config_path, taken_port, stdin):
    result = call("login", ["--host", standin.url, "--port", str(taken_port)], stdin=stdin)
    assert result.code == 1
    assert result.err.splitlines()[-1] == "Cancelled"
    assert not config_path.exists()


def test_port_taken_and_rejected_token_is_invalid(standin, config_path, taken_port):
    token = standin.mint_api_token("janedoe")
    standin.revoke(token)
    result = call(
        "login", ["--host", standin.url, "--port", str(taken_port)], stdin=token.encode() + b"\n"
    )
    assert (result.code, result.err.splitlines()[-1]) == (1, "Invalid token: invalid token")
    assert not config_path.exists()


# -- the installed executable ---------------------------------------------------------------


def test_installed_rexec_login_opens_the_browser_named_by_BROWSER(standin, config_path):
    env = dict(os.environ, BROWSER=scripted_browser.browser_command())
    result = run_bin(
        "rexec-login", "--host", standin.url, "--port", "0", "--timeout", "20", env=env
    )
    assert result.code == 0, result
    assert "✓ Successfully logged in as johndoe (johndoe@example.com)" in result.out
    whoami = run_bin("rexec-whoami")
    assert whoami.code == 0 and "johndoe" in whoami.out


def test_timeout_of_the_executable_frees_the_port_and_writes_nothing(standin, config_path):
    port = free_port()
    result = run_bin(
        "rexec-login", "--host", standin.url, "--port", str(port), "--timeout", "1", "--no-browser"
    )
    assert result.code == 1
    assert result.err == "Login timed out. Please try again.\n"
    assert_port_bindable(port)
    assert not config_path.exists()


@pytest.fixture
def lingering_browser(tmp_path):
    """lingering_browser(then) → a BROWSER value for a program that runs `then` (a shell
    command, "$1" being the URL) and then stays open for 60 s, as a real browser started from
    a terminal does; every such program is killed at the end of the test."""
    pids = tmp_path / "browser-pids"
    made = []

    def make(then: str) -> str:
        script = tmp_path / f"browser-{len(made)}"
        # Its output goes elsewhere only so that the test's pipes see their end when
        # rexec-login exits (a browser started from a terminal shares the terminal).
        script.write_text(
            f"#!/bin/sh\necho $$ >> {pids}\n{then}\nexec sleep 60 </dev/null >/dev/null 2>&1\n"
        )
        script.chmod(0o755)
        made.append(script)
        return f"{script} %s"

    yield make
    if pids.exists():
        for pid in pids.read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_browser_that_stays_open_does_not_hold_up_the_login(
    standin, config_path, lingering_browser
):
    clicks = scripted_browser.browser_command().replace(" %s", ' "$1"')
    env = dict(os.environ, BROWSER=lingering_browser(clicks))
    result = run_bin(
        "rexec-login", "--host", standin.url, "--port", "0", "--timeout", "30", env=env, timeout=25
    )
    assert result.code == 0, result
    assert SUCCESS + "Device token '" in result.out, result
    assert stored(config_path)["username"] == "johndoe"


def test_a_browser_that_stays_open_does_not_stop_the_timeout(
    standin, config_path, lingering_browser
):
    env = dict(os.environ, BROWSER=lingering_browser(":"))
    result = run_bin(
        "rexec-login", "--host", standin.url, "--port", "0", "--timeout", "3", env=env, timeout=25
    )
    assert (result.code, result.err) == (1, "Login timed out. Please try again.\n")
    assert not config_path.exists()


def test_a_browser_that_stays_open_leaves_the_countdown_and_hidden_input(
    standin, config_path, lingering_browser
):
    os.environ["BROWSER"] = lingering_browser(":")  # clean_world restores the environment
    term = Terminal("--host", standin.url, "--port", "0", "--timeout", "20")
    try:
        term.expect(b"Time left: ", timeout=10)
        assert not term.echo_is_on()  # a pasted address stays off the screen and the shell
        url = URL_LINE.search(term.transcript.decode().replace("\r", "")).group(1)
        location = scripted_browser.authorize(url)
        term.send(location.encode() + b"\n")
        assert term.finish() == 0
    finally:
        term.close()
        del os.environ["BROWSER"]
    text = ANSI.sub("", term.transcript.decode())
    assert "✓ Successfully logged in as johndoe (johndoe@example.com)" in text
    assert location.split("?token=")[1] not in text


def asleep(pid: int) -> bool:
    """Whether the process's main thread is blocked (state S in /proc/<pid>/stat): once
    rexec-login has said it is waiting, it blocks only in its wait loop, a fifth of a second
    at a time."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "S"
    except OSError:  # no /proc here: signal at once, which must end the same way
        return True


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # even if the test runner ignores it


@pytest.mark.parametrize("stdin", [subprocess.DEVNULL, subprocess.PIPE], ids=["closed", "open"])
def test_sigint_cancels_frees_the_port_and_writes_nothing(standin, config_path, stdin):
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN_DIR / "rexec-login"),
            "--host",
            standin.url,
            "--port",
            str(port),
            "--timeout",
            "30",
            "--no-browser",
        ],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    try:
        for line in proc.stdout:
            if line.startswith(b"Waiting for login"):
                break
        assert eventually(lambda: asleep(proc.pid))  # in its wait loop
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130
    assert err.decode() == "Login cancelled.\n"
    assert_port_bindable(port)
    assert not config_path.exists()


class Terminal:
    """The installed rexec-login on a pseudo-terminal (its controlling terminal)."""

    def __init__(self, *argv: str) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [str(BIN_DIR / "rexec-login"), *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=self._take_terminal,
        )
        os.close(slave)
        self.transcript = b""

    @staticmethod
    def _take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        _default_sigint()

    def expect(self, text: bytes, timeout: float = 15) -> None:
        """Read until text has appeared."""
        deadline = time.monotonic() + timeout
        while text not in self.transcript:
            if not self._read(deadline - time.monotonic()):
                raise AssertionError(f"no {text!r} in {self.transcript!r}")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 20) -> int:
        """Read to the end; the exit status."""
        deadline = time.monotonic() + timeout
        while self._read(deadline - time.monotonic()):
            pass
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 1))

    def echo_is_on(self) -> bool:
        return bool(termios.tcgetattr(self.master)[3] & termios.ECHO)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)

    def _read(self, timeout: float) -> bool:
        if timeout <= 0 or not select.select([self.master], [], [], timeout)[0]:
            return False
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the other side has closed
            return False
        self.transcript += chunk
        return bool(chunk)


def test_port_taken_prompt_reads_the_token_through_a_terminal_without_echo(
    standin, config_path, taken_port
):
    token = standin.mint_api_token("janedoe")
    term = Terminal("--host", standin.url, "--port", str(taken_port))
    try:
        term.expect(b"Paste your token here: ")
        term.send(token.encode() + b"\n")
        assert term.finish() == 0
    finally:
        term.close()
    text = ANSI.sub("", term.transcript.decode())
    assert "Couldn't start local server: address already in use" in text
    assert "Manual login:" in text and f"1. Go to: {standin.url}/settings" in text
    assert "✓ Logged in as janedoe (jane@example.com)" in text
    assert token not in text  # not echoed back
    assert stored(config_path)["token"] == token


def test_pasted_address_through_a_terminal_is_not_echoed(standin, config_path):
    term = Terminal("--host", standin.url, "--port", "0", "--no-browser", "--timeout", "20")
    try:
        term.expect(b"Time left: ")  # inside the wait, echo is off
        url = URL_LINE.search(term.transcript.decode().replace("\r", "")).group(1)
        location = scripted_browser.authorize(url)
        cb = location.split("?")[0]
        term.send((cb[:-1] + ("A" if cb[-1] != "A" else "B") + location[len(cb) :] + "\n").encode())
        term.expect(WRONG_ADDRESS.encode())
        term.send(location.encode() + b"\n")
        assert term.finish() == 0
        assert term.echo_is_on()  # restored on the way out
    finally:
        term.close()
    text = ANSI.sub("", term.transcript.decode())
    assert "✓ Successfully logged in as johndoe (johndoe@example.com)" in text
    token = location.split("?token=")[1]
    assert token not in text
    made_a_device_token(Result(text.replace("\r", ""), "", 0), standin, config_path, location)
