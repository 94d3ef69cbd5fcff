"""Hostile neighbours: other local clients of the callback port, and files planted beside
the config.

The callback server of a real `rexec-login --port 0 --no-browser` takes a burst of bad
requests (wrong or missing nonce, foreign or missing Host, other methods, headers and
request lines over 64 KiB, garbage) while 50 slow-loris connections and a few drip-feeding
ones hold sockets open, and still completes the genuine login through the stand-in's
/cli-login form flow within a few seconds, having handed no attacker's token to the
service. 2,000 bad requests with --full (the README's figure), 300 otherwise.

Files planted in ~/.rexec, at both files (config.json, credentials.json), the lock, the
temporary names (`.config.json.tmp-<pid>`, `.credentials.json.tmp-<pid>` for the next 300
pids) and the backup names (`<file>.corrupt-<UTC time>[-N]` for this second and the next
two): symbolic links (to a file, dangling), hard links, FIFOs, and files and directories
owned by another user (uid 65534). No command ever writes through a link, waits on a
FIFO or writes into a planted directory; what it cannot use it refuses (exit 4, one line)
or steps around. A config directory owned by another user is refused for writes; a file
owned by another user, or readable by others, is reported and replaced (ours, 0600) by
the next write of that file.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import random
import re
import secrets
import socket
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from conftest import BIN_DIR, run_bin

from rexec_credential import callback

from . import rounds

BURST = rounds(full=2000, ci=300)
SLOW_LORIS = 50
DRIP_FEEDERS = 8
GENUINE_WITHIN = 3.0  # seconds: under callback.CLIENT_TIMEOUT, so it never waited on a bad client
URL_LINE = re.compile(r"^(http://127\.0\.0\.1:\d+/cli-login\?callback=\S+)$")


# -- the callback server under a burst ---------------------------------------------------------


def raw_request(port: int, data: bytes) -> str:
    """Send bytes on a fresh connection; the response status, or closed/reset."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # refused mid-send (e.g. headers too large): read what it said
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except ConnectionResetError:
        return "reset"
    reply = b"".join(chunks)
    if not reply:
        return "closed"
    assert b"Login Successful" not in reply
    found = re.match(rb"HTTP/1\.[01] (\d{3}) ", reply)
    if found is None:  # an HTTP/0.9 answer is the bare page: go by its title
        title = re.search(rb"<title>([^<]*)</title>", reply)
        return "0.9 " + (title.group(1).decode() if title else "?")
    return found.group(1).decode()


def attack(port: int, kind: tuple) -> tuple:
    """One bad request: (name, outcome, refused statuses, resets met, seconds)."""
    name, data, refused = kind
    resets, started = 0, time.monotonic()
    outcome = raw_request(port, data)
    # A reset before any answer would be the listen backlog overflowing (the burst test
    # below guards against that), not an answer: try again to see what the server says.
    while outcome == "reset" and "reset" not in refused and resets < 5:
        resets += 1
        outcome = raw_request(port, data)
    return name, outcome, refused, resets, time.monotonic() - started


def request(
    method: str, target: str, host: str | None, extra: bytes = b"", version: str = " HTTP/1.1"
) -> bytes:
    lines = f"{method} {target}{version}\r\n".encode()
    if host is not None:
        lines += f"Host: {host}\r\n".encode()
    return lines + extra + b"\r\n"


def attacks(port: int, path: str, evil: str) -> list:
    """(name, request bytes, statuses that count as refused) for every kind of bad request."""
    me = f"127.0.0.1:{port}"
    genuine = f"{path}?token={evil}"
    nonce = path.rsplit("/", 1)[1]
    wrong = [
        f"/callback/{secrets.token_urlsafe(32)}?token={evil}",
        f"/callback?token={evil}",
        f"/callback/?token={evil}",
        f"/?token={evil}",
        f"{path}/?token={evil}",
        f"{path.upper()}?token={evil}",
        f"{path[:-1]}?token={evil}",
        f"{path}%00?token={evil}",
        f"/callback/{nonce[:-1]}%{ord(nonce[-1]):02X}?token={evil}",
        f"/callback/x/../{nonce}?token={evil}",
        f"http://{me}{genuine}",
        f"/favicon.ico?token={evil}",
        "*",
    ]
    found = [("wrong or missing nonce", request("GET", t, me), {"404"}) for t in wrong]
    hosts = [
        "evil.example",
        "127.0.0.1",
        f"localhost:{port + 1}",
        f"127.0.0.1:{port}.evil.example",
        f"127.0.0.2:{port}",
        f"[::1]:{port}",
        f"0.0.0.0:{port}",
        f"evil.example:{port}",
        "",
    ]
    found += [("foreign Host", request("GET", genuine, h), {"421"}) for h in hosts]
    found += [
        ("no Host", request("GET", genuine, None, version=" HTTP/1.0"), {"421"}),
        ("HTTP/0.9 without Host", f"GET {genuine}\r\n".encode(), {"0.9 Misdirected request"}),
        ("two Host headers", request("GET", genuine, me, f"Host: {me}\r\n".encode()), {"421"}),
        (
            "two Host headers, one foreign",
            request("GET", genuine, me, b"Host: evil.example\r\n"),
            {"421"},
        ),
        (
            "absolute URL of another host",
            request("GET", f"http://evil.example{genuine}", me),
            {"404"},
        ),
    ]
    found += [
        (f"method {m}", request(m, genuine, me, b"Content-Length: 0\r\n"), {"405"})
        for m in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
    ]
    found += [
        (f"method {m}", request(m, genuine, me), {"501"}) for m in ("TRACE", "CONNECT", "FOO")
    ]
    huge = {"431", "0.9 Request too large", "reset", "closed"}
    found += [
        (
            "headers over 64 KiB",
            request("GET", genuine, me, b"X-Pad: " + b"a" * 70000 + b"\r\n"),
            huge,
        ),
        (
            "many headers over 64 KiB",
            request(
                "GET", genuine, me, b"".join(b"X-%d: %s\r\n" % (i, b"b" * 900) for i in range(80))
            ),
            huge,
        ),
        ("request line over 64 KiB", request("GET", genuine + "&pad=" + "c" * 70000, me), huge),
        (
            "garbage",
            bytes(random.Random(port).randbytes(300)) + b"\r\n\r\n",
            {"0.9 Error response", "400", "closed", "reset"},
        ),
        ("empty request line", b"\r\n\r\n", {"closed", "400"}),
        (
            "bad version",
            request("GET", genuine, me, version=" HTTP/9.9"),
            {"0.9 Error response", "505"},
        ),
        ("nothing at all", b"", {"closed"}),
    ]
    return found


def read_login_url(proc: subprocess.Popen, lines: queue.Queue) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        if line is None:
            break
        found = URL_LINE.match(line.rstrip("\n"))
        if found:
            return found.group(1)
    raise AssertionError("rexec-login printed no login address")


def authorize(svc, callback_url: str, user: str = "johndoe", password: str = "hunter2") -> str:
    """The stand-in's /cli-login form flow, as a browser would: the Location it redirects to."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def post(target: str, fields: dict) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
        conn.request("POST", target, urlencode(fields), form)
        response = conn.getresponse()
        response.body = response.read().decode()
        conn.close()
        return response

    page = post("/cli-login", {"callback": callback_url, "username": user, "password": password})
    grant = re.search(r'name="grant" value="([^"]+)"', page.body).group(1)
    answer = post("/cli-login/authorize", {"callback": callback_url, "grant": grant})
    assert answer.status == 302
    return answer.getheader("Location")


def _open(sock: socket.socket) -> bool:
    """True while the server has not closed the connection (a peek that never waits)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True  # open, nothing said: still waiting on us
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)


class SlowClients:
    """Connections that never finish their request: partial request lines, and drip-feeders
    that send one byte every 0.3 s (each byte resets a per-read timeout)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.partial: list = []
        self.drippers: list = []
        self.opened = 0
        self.stop = threading.Event()
        self.threads: list = []

    PARTIALS = [
        b"GET /callback/",
        b"GET ",
        b"G",
        b"GET /callback/x HTTP/1.1\r\nHost: 127.0",
        b"GET /callback/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ",
    ]

    def _connect(self, i: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(self.PARTIALS[i % len(self.PARTIALS)])
        return sock

    def open(self, count: int, drippers: int) -> None:
        with ThreadPoolExecutor(10) as pool:  # several at a time, as a real attacker would
            self.partial = list(pool.map(self._connect, range(count)))
        self.opened = count
        for _ in range(drippers):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            self.drippers.append(sock)
            thread = threading.Thread(target=self._drip, args=(sock,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def replenish(self) -> None:
        """Replace the partial requests the server has timed out, as a patient attacker
        would, so that all of them are open when the genuine redirect comes."""
        for _ in range(5):  # reconnecting can take a SYN retry, while others time out
            closed = [i for i, sock in enumerate(self.partial) if not _open(sock)]
            if not closed:
                return
            for i in closed:
                self.partial[i].close()
            with ThreadPoolExecutor(10) as pool:
                for i, sock in zip(closed, pool.map(self._connect, closed)):
                    self.partial[i] = sock
            self.opened += len(closed)

    def held(self) -> int:
        """How many of the connections the server has not closed."""
        return sum(map(_open, self.partial + self.drippers))

    def _drip(self, sock: socket.socket) -> None:
        data = b"GET /callback/" + secrets.token_urlsafe(64).encode()
        for byte in data:
            if self.stop.wait(0.3):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        for sock in self.partial + self.drippers:
            sock.close()


def test_callback_completes_the_genuine_login_under_a_burst_of_bad_requests(standin, config_path):
    """2,000 bad requests (--full; 300 in CI) of 43 kinds, plus 50 slow-loris and 8
    drip-feeding connections held open, at a real rexec-login's callback: every one is
    refused and none ends the wait or reaches the service; the genuine redirect from the
    stand-in's /cli-login flow is answered within 3 s and logs johndoe in."""
    proc = subprocess.Popen(
        [
            str(BIN_DIR / "rexec-login"),
            "--port",
            "0",
            "--no-browser",
            "--timeout",
            "60",
            "--host",
            standin.url,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    slow = None
    try:
        callback_url = parse_qs(urlsplit(read_login_url(proc, lines)).query)["callback"][0]
        port, path = urlsplit(callback_url).port, urlsplit(callback_url).path
        evil = standin.mint_jwt("janedoe")  # what a successful attack would log in as
        standin.clear_log()

        slow = SlowClients(port)
        slow.open(SLOW_LORIS, DRIP_FEEDERS)
        kinds = attacks(port, path, evil)
        burst = [kinds[i % len(kinds)] for i in range(BURST)]
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(lambda kind: attack(port, kind), burst))
        burst_seconds = time.monotonic() - started
        for name, outcome, refused, _, _ in outcomes:
            assert outcome in refused, (name, outcome)
        assert proc.poll() is None, "a bad request ended the wait"
        assert standin.requests_to("/api/profile") == []  # no attacker's token was validated

        # The genuine redirect, with the slow clients still connected.
        slow.replenish()
        held = slow.held()
        location = authorize(standin, callback_url)
        assert location.startswith(callback_url + "?token=")
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", location[len(f"http://127.0.0.1:{port}") :])
        response = conn.getresponse()
        body = response.read().decode()
        conn.close()
        genuine_seconds = time.monotonic() - started
        assert response.status == 200 and "Login Successful!" in body
        assert genuine_seconds < GENUINE_WITHIN
        code = proc.wait(timeout=15)  # the slow clients are still connected
    finally:
        if slow is not None:
            slow.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(iter(lambda: lines.get(timeout=5) or "", ""))
    err = proc.stderr.read()
    assert code == 0, err
    assert "✓ Successfully logged in as johndoe (johndoe@example.com)" in out
    assert err == "" and "Traceback" not in err
    stored = json.loads(config_path.read_text())
    assert stored["username"] == "johndoe" and stored["token"] != evil
    assert len(standin.requests_to("/api/profile")) == 1  # only the genuine token
    tried = len(burst) + slow.opened + DRIP_FEEDERS
    resets = sum(o[3] for o in outcomes)
    print(
        f"\ncallback: {tried} attacks tried ({len(burst)} bad requests of {len(kinds)} kinds "
        f"in {burst_seconds:.1f} s, slowest {max(o[4] for o in outcomes):.2f} s, {resets} "
        f"connections reset by the full backlog and retried; {slow.opened} slow-loris "
        f"connections ({SLOW_LORIS} at a time), {DRIP_FEEDERS} drip-feeders; {held} held "
        f"open while the genuine redirect was answered in {genuine_seconds * 1000:.0f} ms)"
    )
    assert held >= 0.9 * (SLOW_LORIS + DRIP_FEEDERS)  # they were there when it came


def test_callback_accepts_a_burst_of_concurrent_connections_without_dropping_one():
    """300 bad requests from 16 concurrent clients, with the genuine redirect sent in the
    middle of them: every connection is accepted and answered (no reset, none slower than
    0.5 s, i.e. no SYN retransmission), and the genuine one logs in."""
    handed = []
    with callback.CallbackServer(
        lambda token: handed.append(token) or (True, "ok"), port=0
    ) as server:
        port, path = server.port, urlsplit(server.url).path
        kinds = [k for k in attacks(port, path, "evil.jwt.token") if "reset" not in k[2]]
        burst = [kinds[i % len(kinds)] for i in range(300)]
        burst.insert(
            150,
            (
                "genuine",
                request("GET", f"{path}?token=good.jwt.token", f"127.0.0.1:{port}"),
                {"200"},
            ),
        )

        def timed(kind):
            started = time.monotonic()
            try:
                return kind[0], raw_request(port, kind[1]), time.monotonic() - started
            except AssertionError:  # raw_request refuses to return a success page
                return kind[0], "200", time.monotonic() - started

        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(timed, burst))
    assert handed == ["good.jwt.token"]
    assert [o for o in outcomes if o[1] == "reset"] == []
    assert max(o[2] for o in outcomes) < 0.5


# -- files planted in ~/.rexec -----------------------------------------------------------------

VICTIM = b'{"host": "https://victim.example", "token": "victim-secret"}\n'
UNRELATED = b"protocol=https\nhost=victim.example\nusername=u\npassword=p\n"
FOREIGN_UID = 65534
FILES = ["config.json", "credentials.json"]
TMP_PREFIXES = {"config.json": ".config.json.tmp-", "credentials.json": ".credentials.json.tmp-"}
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


def commands(svc) -> list:
    """(name, argv, stdin, documented exit statuses): every command that reads or writes."""
    return [
        (
            "login --token -",
            ["rexec-login", "--token", "-", "--host", svc.url],
            svc.mint_api_token("johndoe"),
            {0, 1, 2, 3, 4},
        ),
        ("credential store", ["rexec-credential", "store"], UNRELATED, {0, 2, 4}),
        (
            "credential erase",
            ["rexec-credential", "erase"],
            f"protocol=http\nhost={svc.url[7:]}\n",
            {0, 2, 4},
        ),
        ("credential get", ["rexec-credential", "get"], b"", {0, 2, 4}),
        ("whoami", ["rexec-whoami"], b"", {0, 1, 3, 4}),
        ("logout", ["rexec-logout"], b"", {0, 4}),
    ]


# Which file each command writes in these scenarios (a janedoe login, then the command):
# store keeps an unrelated credential (credentials.json only); erase names the login's host,
# so it drops the active login (config.json; its account too); login writes both.
WRITES = {
    "login --token -": {"config.json", "credentials.json"},
    "credential store": {"credentials.json"},
    "credential erase": {"config.json", "credentials.json"},
    "logout": {"config.json", "credentials.json"},
}


def run(argv: list, stdin) -> object:
    result = run_bin(argv[0], *argv[1:], stdin=stdin, timeout=20)
    assert "Traceback" not in result.err, result
    lines = result.err.splitlines()
    errors = [line for line in lines if not line.startswith("warning: ")]
    assert len(errors) <= 1 and len(lines) - len(errors) <= 1, result  # a line of each at most
    return result


def login_janedoe(svc) -> None:
    """The installed rexec-login, given an API token of janedoe on stdin; it must succeed."""
    token = svc.mint_api_token("janedoe")
    assert run_bin("rexec-login", "--token", "-", "--host", svc.url, stdin=token).code == 0


def empty(directory: Path) -> None:
    if directory.exists():
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                entry.rmdir()
            else:
                entry.unlink()


def last_pid() -> int:
    with open("/proc/sys/kernel/ns_last_pid") as f:
        return int(f.read())


def likely_tmp_names(directory: Path, prefix: str, count: int = 300) -> list:
    first = last_pid() + 1
    return [directory / f"{prefix}{pid}" for pid in range(first, first + count)]


class Victim:
    """A file outside ~/.rexec (or a path where none exists) that links point at."""

    def __init__(self, root: Path, dangling: bool) -> None:
        self.path = root / "victim-dir" / "victim.json"
        self.path.parent.mkdir(exist_ok=True)
        self.dangling = dangling
        if not dangling:
            self.path.write_bytes(VICTIM)
            self.path.chmod(0o644)

    def check(self, label: str) -> None:
        if self.dangling:
            assert not os.path.lexists(self.path), f"{label}: created a file through a link"
        else:
            assert self.path.read_bytes() == VICTIM, f"{label}: wrote through a link"
            assert stat.S_IMODE(self.path.stat().st_mode) == 0o644, f"{label}: chmod'ed it"
        assert os.listdir(self.path.parent) == ([] if self.dangling else ["victim.json"])


@pytest.mark.parametrize("dangling", [False, True], ids=["to a file", "dangling"])
@pytest.mark.parametrize(
    "where",
    [
        "config.json",
        "credentials.json",
        "config.json.lock",
        ".config.json.tmp-<pid>",
        ".credentials.json.tmp-<pid>",
    ],
)
def test_planted_symlink_is_never_written_through(standin, config_path, tmp_path, where, dangling):
    """A symbolic link at either file, the lock, or every likely temporary-file name of
    either file, pointing at another file (or at nothing): login --token, credential
    store/erase/get, whoami and logout never change that file's bytes or mode, nor create
    it; a link at either file is refused (exit 4, one line naming it) by all but logout."""
    victim = Victim(tmp_path, dangling)
    config_dir = config_path.parent
    for name, argv, stdin, allowed in commands(standin):
        empty(config_dir)
        login_janedoe(standin)  # a genuine login beside the link, so each command has work to do
        if where in ("config.json", "credentials.json", "config.json.lock"):
            targets = [config_dir / where]
            targets[0].unlink()
        else:
            targets = likely_tmp_names(config_dir, where[: -len("<pid>")])
        for target in targets:
            os.symlink(victim.path, target)
        result = run(argv, stdin)
        label = f"{name} with a link at {where}"
        assert result.code in allowed, (label, result)
        victim.check(label)
        if where in FILES and name != "logout":
            assert result.code == 4 and "symbolic link" in result.err, (label, result)
            assert str(config_dir / where) in result.err, (label, result)
            assert os.readlink(config_dir / where) == str(victim.path)
        if where.endswith("<pid>"):
            assert result.code == 0, (label, result)
        for target in targets:
            assert not os.path.lexists(target) or os.readlink(target) == str(victim.path)


@pytest.mark.parametrize("file", FILES)
def test_hard_link_at_either_file_is_replaced_not_written_through(
    standin, config_path, tmp_path, file
):
    """Either file hard-linked to another file: every write replaces the directory entry,
    so the other file's bytes never change."""
    victim = Victim(tmp_path, dangling=False)
    path = config_path.parent / file
    for name, argv, stdin, allowed in commands(standin)[:3]:
        empty(config_path.parent)
        login_janedoe(standin)
        victim.path.write_bytes(path.read_bytes())  # what the file holds, so it is used
        victim.path.chmod(0o600)
        before = victim.path.read_bytes()
        path.unlink()
        os.link(victim.path, path)
        result = run(argv, stdin)
        assert result.code == 0, (name, result)
        assert victim.path.read_bytes() == before, name
        if file in WRITES[name]:
            assert path.stat().st_ino != victim.path.stat().st_ino, f"{name}: not replaced"


def backup_names(path: Path, seconds: int = 3, suffixes: int = 3) -> list:
    """Where a corrupted file would be moved aside this second and the next ones."""
    now = time.time()
    names = []
    for ahead in range(seconds):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now + ahead))
        base = f"{path}.corrupt-{stamp}"
        names += [Path(base)] + [Path(f"{base}-{n}") for n in range(1, suffixes + 1)]
    return names


# The commands that must rewrite a corrupted file (and so move it aside first): with either
# file corrupted there is no login for erase to drop, nor does store touch config.json.
MOVES = {
    "config.json": {"login --token -"},
    "credentials.json": {"login --token -", "credential store"},
}
PLANTS = [
    "symlink to a file",
    "dangling symlink",
    "file of another user",
    "directory of another user",
    "fifo",
]


class Planted:
    """Things planted at a list of names, and the check that they are as they were."""

    def __init__(self, how: str, victim: Victim | None) -> None:
        self.how, self.victim, self.paths = how, victim, []

    def at(self, path: Path) -> None:
        if "symlink" in self.how:
            os.symlink(self.victim.path, path)
        elif self.how == "file of another user":
            path.write_bytes(VICTIM)
            os.chown(path, FOREIGN_UID, FOREIGN_UID)
            path.chmod(0o644)
        elif self.how == "directory of another user":
            path.mkdir(mode=0o755)
            os.chown(path, FOREIGN_UID, FOREIGN_UID)
        else:
            os.mkfifo(path, 0o600)
        self.paths.append(path)

    def check(self, label: str, may_be_removed: bool = False) -> None:
        if self.victim is not None:
            self.victim.check(label)
        for path in self.paths:
            if not os.path.lexists(path):
                assert may_be_removed, f"{label}: {path.name} removed"
                continue
            info = os.lstat(path)
            if "symlink" in self.how:
                assert os.readlink(path) == str(self.victim.path), label
            elif self.how == "file of another user":
                assert stat.S_ISREG(info.st_mode) and path.read_bytes() == VICTIM, label
                assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (FOREIGN_UID, 0o644), label
            elif self.how == "directory of another user":
                assert stat.S_ISDIR(info.st_mode) and info.st_uid == FOREIGN_UID, label
                assert os.listdir(path) == [], f"{label}: wrote into {path.name}"
            else:
                assert stat.S_ISFIFO(info.st_mode), label


def planted(how: str, tmp_path: Path) -> Planted:
    victim = Victim(tmp_path, how == "dangling symlink") if "symlink" in how else None
    return Planted(how, victim)


@root_only
@pytest.mark.parametrize("how", PLANTS)
@pytest.mark.parametrize("file", FILES)
def test_things_at_the_backup_names_are_never_written_through(
    standin, config_path, tmp_path, file, how
):
    """A corrupted config.json or credentials.json plus a link, a foreign file or directory
    or a FIFO at every backup name for this second and the next two (with -1..-3 suffixes):
    a command that must write that file moves it to a fresh 0600 backup (named on stderr)
    and never writes through, into or over what was planted, nor waits on it; readers
    report the corruption (exit 4) and move nothing; a command that need not write it
    leaves it; logout moves it aside like a writer (it may hold other logins)."""
    plants = planted(how, tmp_path)
    directory = config_path.parent
    path = directory / file
    corrupted = b'{"host": "https://rexec.pipeops.io", "token": "rexec_' + b"9" * 40 + b'"'
    for name, argv, stdin, allowed in commands(standin):
        directory.mkdir(mode=0o700, exist_ok=True)
        empty(directory)
        if file == "credentials.json":
            login_janedoe(standin)  # a valid config.json beside it
        path.write_bytes(corrupted)
        path.chmod(0o600)
        plants.paths = []
        for link in backup_names(path):
            plants.at(link)
        result = run(argv, stdin)
        label = f"{name} on a corrupted {file}, {how} at its backup names"
        assert result.code in allowed, (label, result)
        plants.check(label)
        backups = [
            p for p in directory.iterdir() if ".corrupt-" in p.name and p not in plants.paths
        ]
        if name in ("credential get", "whoami"):
            assert result.code == 4 and "is corrupted" in result.err, (label, result)
            assert path.read_bytes() == corrupted and backups == []
        elif name == "logout" or name in MOVES[file]:  # logout never deletes one either
            assert result.code == 0, (label, result)
            assert len(backups) == 1 and backups[0].read_bytes() == corrupted, label
            assert stat.S_ISREG(os.lstat(backups[0]).st_mode)
            assert stat.S_IMODE(backups[0].stat().st_mode) == 0o600
            moved = f"warning: configuration file was corrupted; moved it to {backups[0]}"
            assert moved in result.err.splitlines(), label
        else:  # nothing it must change is in the corrupted file: it is not rewritten
            assert (result.code, result.err) == (0, ""), (label, result)
            assert path.read_bytes() == corrupted and backups == [], label


@root_only
@pytest.mark.parametrize("how", ["file of another user", "directory of another user", "fifo"])
def test_things_at_the_temporary_names_are_never_written_through(
    standin, config_path, tmp_path, how
):
    """A foreign file, a foreign directory or a FIFO at the next 300 temporary names of both
    files: every command finishes (no FIFO waited on), nothing is written into or through
    them; a writer clears the leftovers of the files it writes (a killed writer's may hold a
    token), and a directory at its own temporary name makes it refuse (exit 4, "cannot
    write") rather than write elsewhere."""
    directory = config_path.parent
    for name, argv, stdin, allowed in commands(standin):
        empty(directory)
        login_janedoe(standin)
        plants = {file: planted(how, tmp_path) for file in FILES}
        for file, plant in plants.items():
            for target in likely_tmp_names(directory, TMP_PREFIXES[file]):
                plant.at(target)
        result = run(argv, stdin)
        label = f"{name} with a {how} at the temporary names"
        assert result.code in allowed, (label, result)
        writes = WRITES.get(name, set())
        if how == "directory of another user" and writes and result.code:
            assert result.code == 4 and result.err.startswith("cannot write"), (label, result)
        else:
            assert result.code == 0, (label, result)
        for file, plant in plants.items():
            plant.check(label, may_be_removed=file in writes and how != "directory of another user")
            if file in writes and how != "directory of another user" and result.code == 0:
                left = [p for p in plant.paths if os.path.lexists(p)]
                assert not left, f"{label}: {file}'s leftovers not cleared: {left[:3]}"


@root_only
def test_config_directory_owned_by_another_user_is_refused_for_writes(standin, config_path):
    """~/.rexec owned by uid 65534: login --token, credential store and erase are refused
    (exit 4, one line naming the directory and its owner) and change nothing in it."""
    login_janedoe(standin)
    directory = config_path.parent
    os.chown(directory, FOREIGN_UID, FOREIGN_UID)
    for file in FILES:
        os.chown(directory / file, FOREIGN_UID, FOREIGN_UID)
    before = {file: (directory / file).read_bytes() for file in FILES}
    listing = sorted(os.listdir(directory))
    for name, argv, stdin, _ in commands(standin)[:3]:
        result = run(argv, stdin)
        assert result.code == 4, (name, result)
        assert result.err.endswith(
            f"configuration directory {directory} belongs to "
            "another user (uid 65534); refusing to write credentials "
            "there\n"
        ), name
        # Reading it first says whose file it is (both files are chowned), once at most.
        assert result.err.count("belongs to another user") <= 2, name
        assert {file: (directory / file).read_bytes() for file in FILES} == before, name
        assert sorted(os.listdir(directory)) == listing, name
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


@root_only
@pytest.mark.parametrize(
    "file, writer",
    [
        ("config.json", "login --token -"),
        ("credentials.json", "credential store"),
        ("credentials.json", "login --token -"),
    ],
)
def test_file_owned_by_another_user_is_reported_and_replaced_by_the_next_write(
    standin, config_path, file, writer
):
    """config.json or credentials.json owned by uid 65534 in our ~/.rexec: get and whoami
    still answer (exit 0) and say whose it is in one stderr line; the next write of that
    file replaces it with one of ours (0600), after which nothing is reported."""
    login_janedoe(standin)
    host = standin.url[len("http://") :]
    assert (
        run(
            "rexec-credential store".split(),
            f"protocol=http\nhost={host}\nusername=other\npassword=p2\n",
        ).code
        == 0
    )
    path = config_path.parent / file
    os.chown(path, FOREIGN_UID, FOREIGN_UID)
    warning = (
        f"warning: {path} belongs to another user (uid 65534); the credentials in it "
        "may not be yours\n"
    )
    whoami = run(["rexec-whoami"], b"")
    assert (whoami.code, whoami.err) == (0, warning) and "janedoe" in whoami.out
    get = run(["rexec-credential", "get"], f"protocol=http\nhost={host}\n")
    assert (get.code, get.err) == (0, warning) and "password=" in get.out
    argv, stdin = {
        "credential store": (["rexec-credential", "store"], UNRELATED),
        "login --token -": (
            ["rexec-login", "--token", "-", "--host", standin.url],
            standin.mint_api_token("johndoe"),
        ),
    }[writer]
    result = run_bin(argv[0], *argv[1:], stdin=stdin)
    assert result.code == 0 and result.err == warning, result
    info = path.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o600)
    again = run(["rexec-credential", "get"], f"protocol=http\nhost={host}\n")
    assert (again.code, again.err) == (0, "")


@pytest.mark.parametrize(
    "file, writer",
    [
        ("config.json", "login --token -"),
        ("config.json", "credential erase (the login)"),
        ("credentials.json", "credential store"),
        ("credentials.json", "credential erase"),
        ("credentials.json", "login --token -"),
    ],
)
def test_loose_file_is_reported_by_readers_and_tightened_by_the_next_write(
    standin, config_path, file, writer
):
    """A 0644 config.json or credentials.json in a 0755 ~/.rexec: whoami and credential get
    still answer (exit 0) and say so in one stderr line naming the file and its mode; the
    next write of that file sets 0600/0700, after which nothing is reported."""
    login_janedoe(standin)
    host = standin.url[len("http://") :]
    stored = f"protocol=http\nhost={host}\nusername=other\npassword=p2\n"
    assert run("rexec-credential store".split(), stored).code == 0
    path = config_path.parent / file
    path.chmod(0o644)
    config_path.parent.chmod(0o755)
    warning = (
        f"warning: {path} is accessible by others (mode 0644); it holds your "
        "token. It will be set to 0600 on the next write\n"
    )
    whoami = run(["rexec-whoami"], b"")
    assert (whoami.code, whoami.err) == (0, warning) and "janedoe" in whoami.out
    get = run(["rexec-credential", "get"], f"protocol=http\nhost={host}\n")
    assert (get.code, get.err) == (0, warning) and "password=" in get.out
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # reading changes nothing

    argv, stdin = {
        "credential store": (["rexec-credential", "store"], UNRELATED),
        "credential erase": (["rexec-credential", "erase"], stored),
        "credential erase (the login)": (
            ["rexec-credential", "erase"],
            f"protocol=http\nhost={host}\nusername=janedoe\n",
        ),
        "login --token -": (
            ["rexec-login", "--token", "-", "--host", standin.url],
            standin.mint_api_token("johndoe"),
        ),
    }[writer]
    result = run_bin(argv[0], *argv[1:], stdin=stdin)
    # login --token reads the files twice (host, then under the lock): warned once all the same.
    assert result.code == 0 and result.err == warning, result
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_path.parent.stat().st_mode) == 0o700
    again = run(["rexec-credential", "get"], f"protocol=http\nhost={host}\n")
    assert (again.code, again.err) == (0, "")


@pytest.mark.parametrize(
    "argv, stdin",
    [(["rexec-credential", "get"], b""), (["rexec-credential", "store"], UNRELATED)],
    ids=["credential get", "credential store"],
)
@pytest.mark.parametrize("file", FILES)
def test_fifo_at_either_file_does_not_hang(config_path, file, argv, stdin):
    """A FIFO planted at config.json or credentials.json is refused as not a regular file
    (exit 4, one line naming it) by get and store alike, within 2 s: it never blocks git's
    hot path, and it is left for the user to remove."""
    config_path.parent.mkdir(mode=0o700)
    fifo = config_path.parent / file
    os.mkfifo(fifo, 0o600)
    result = run_bin(argv[0], *argv[1:], stdin=stdin, timeout=2)
    assert "Traceback" not in result.err and result.err.count("\n") == 1
    assert result.code == 4 and "not a regular file" in result.err, result
    assert str(fifo) in result.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
