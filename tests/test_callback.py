"""The one-shot loopback callback server, over real HTTP on 127.0.0.1 (http.client, so each
test controls the method and the Host header). Each attack is refused, leaves the one-shot
unused, and the genuine request afterwards still goes through."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from rexec_credential import answer_page, callback
from rexec_credential.callback import CallbackServer

NONCE = "n" * 43
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VybmFtZSI6ImpvaG5kb2UifQ.c2ln"


class Recorder:
    """An on_token that remembers what it was handed and answers a fixed verdict."""

    def __init__(self, verdict=(True, "Logged in.")) -> None:
        self.tokens: list = []
        self.verdict = verdict

    def __call__(self, token: str):
        self.tokens.append(token)
        if isinstance(self.verdict, BaseException):
            raise self.verdict
        return self.verdict


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder):
    with CallbackServer(recorder, port=0) as srv:
        yield srv


def get(
    server: CallbackServer,
    target: str | None = None,
    method: str = "GET",
    host: str | None = "default",
    headers: dict | None = None,
) -> tuple:
    """One request to the server; (status, body). target defaults to the genuine callback."""
    if target is None:
        target = urlsplit(server.url).path + "?token=" + TOKEN
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        if host == "default":
            conn.putheader("Host", f"127.0.0.1:{server.port}")
        elif host is not None:
            conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def path(server: CallbackServer) -> str:
    return urlsplit(server.url).path


def assert_genuine_request_still_works(server, recorder) -> None:
    status, body = get(server)
    assert status == 200
    assert "Login Successful!" in body
    assert recorder.tokens == [TOKEN]
    assert server.wait(5)


# -- pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "candidate, expected",
    [
        ("/callback/" + NONCE, True),
        ("/callback/" + NONCE[:-1], False),
        ("/callback/" + NONCE + "x", False),
        ("/callback/" + NONCE + "/", False),
        ("/callback/", False),
        ("/callback", False),
        ("/CALLBACK/" + NONCE, False),
        ("/callback/" + NONCE.upper(), False),
        ("/callback/\udcff\u00e9", False),
    ],
    ids=[
        "exact",
        "short",
        "long",
        "trailing-slash",
        "empty-nonce",
        "no-nonce",
        "case-path",
        "case-nonce",
        "non-ascii",
    ],
)
def test_path_matches_only_the_exact_callback_path(candidate, expected):
    assert callback.path_matches(candidate, NONCE) is expected


@pytest.mark.parametrize(
    "host, expected",
    [
        ("127.0.0.1:8080", True),
        ("localhost:8080", True),
        ("LOCALHOST:8080", True),
        ("127.0.0.1", False),
        ("127.0.0.1:8081", False),
        ("evil.example:8080", False),
        ("127.0.0.1.evil.example:8080", False),
        ("[::1]:8080", False),
        ("", False),
        (None, False),
    ],
    ids=[
        "ip",
        "localhost",
        "upper",
        "no-port",
        "other-port",
        "foreign",
        "suffix",
        "ipv6",
        "empty",
        "absent",
    ],
)
def test_host_allowed_is_the_loopback_address_and_port(host, expected):
    assert callback.host_allowed(host, 8080) is expected


def test_login_pages_escape_the_message():
    assert b"&lt;script&gt;" in answer_page.page("Login Failed", "<script>")


# -- the listener ---------------------------------------------------------------------------


def test_callback_url_has_a_fresh_nonce_of_at_least_128_bits(recorder):
    with CallbackServer(recorder, port=0) as one, CallbackServer(recorder, port=0) as two:
        for srv in (one, two):
            assert srv.url.startswith(f"http://127.0.0.1:{srv.port}/callback/")
            nonce = path(srv).rsplit("/", 1)[1]
            assert len(nonce) * 6 >= 128
            assert set(nonce) <= set(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            )
        assert path(one) != path(two)
        assert "?" not in one.url  # the service appends ?token= verbatim


def _listeners(port: int) -> list:
    """(table, local address) of LISTEN sockets on port, from /proc/net/tcp and tcp6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.rpartition(":")
            if int(hex_port, 16) == port and state == "0A":
                found.append((table, address))
    return found


def listeners(port: int) -> list:
    """The LISTEN sockets on port, or skip where /proc/net/tcp does not exist."""
    import os

    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("no /proc/net/tcp on this system")
    return _listeners(port)


def test_listener_is_bound_to_127_0_0_1_only(server):
    assert listeners(server.port) == [("/proc/net/tcp", "0100007F")]


def test_close_releases_the_port(recorder):
    srv = CallbackServer(recorder, port=0).start()
    port = srv.port
    get(srv)
    srv.close()
    srv.close()  # idempotent
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
def test_port_cannot_be_shared_by_another_listener_with_so_reuseport(server):
    with socket.socket() as thief:
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError):
            thief.bind(("127.0.0.1", server.port))
            thief.listen()


def test_taken_port_raises_oserror(recorder):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        with pytest.raises(OSError) as info:
            CallbackServer(recorder, port=squatter.getsockname()[1]).start()
    assert "in use" in (info.value.strerror or "").lower()


# -- attacks: each refused, nothing handed over, the genuine request still works ------------


def test_wrong_nonce_is_refused(server, recorder):
    nonce = path(server).rsplit("/", 1)[1]
    wrong = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
    assert get(server, f"/callback/{wrong}?token=evil")[0] == 404
    assert recorder.tokens == [] and not server.done()
    assert_genuine_request_still_works(server, recorder)


@pytest.mark.parametrize(
    "target",
    ["/callback?token=evil", "/callback/?token=evil", "/?token=evil"],
    ids=["no-segment", "empty-segment", "root"],
)
def test_missing_nonce_is_refused(server, recorder, target):
    assert get(server, target)[0] == 404
    assert recorder.tokens == []
    assert_genuine_request_still_works(server, recorder)


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "127.0.0.1:1", "127.0.0.1", "[::1]:{port}", None],
    ids=["foreign-name", "rebound-name-same-port", "other-port", "no-port", "ipv6", "absent"],
)
def test_foreign_host_header_is_refused(server, recorder, host):
    # DNS rebinding: a page at evil.example resolving to 127.0.0.1 sends Host: evil.example.
    status, _ = get(server, host=None if host is None else host.format(port=server.port))
    assert status == 421
    assert recorder.tokens == []
    assert_genuine_request_still_works(server, recorder)


def test_duplicate_host_headers_are_refused(server, recorder):
    status, _ = get(server, headers={"Host": "evil.example"})
    assert status == 421
    assert_genuine_request_still_works(server, recorder)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
def test_post_and_other_methods_are_refused(server, recorder, method):
    target = path(server) + "?token=" + TOKEN
    status, _ = get(server, target, method=method, headers={"Content-Length": "0"})
    assert status == 405
    assert recorder.tokens == []
    assert_genuine_request_still_works(server, recorder)


@pytest.mark.parametrize(
    "target",
    [
        "/favicon.ico",
        "/",
        "/robots.txt",
        "/callback/{nonce}/x",
        "http://127.0.0.1:{port}/callback/{nonce}?token=evil",
    ],
    ids=["favicon", "root", "robots", "below-callback", "absolute-form"],
)
def test_other_paths_are_refused(server, recorder, target):
    nonce = path(server).rsplit("/", 1)[1]
    status, _ = get(server, target.format(nonce=nonce, port=server.port))
    assert status == 404
    assert recorder.tokens == []
    assert_genuine_request_still_works(server, recorder)


@pytest.mark.parametrize(
    "query",
    ["", "?", "?token=", "?tok=x"],
    ids=["no-query", "empty-query", "empty-token", "other-key"],
)
def test_missing_token_answers_400_and_keeps_waiting(server, recorder, query):
    status, body = get(server, path(server) + query)
    assert status == 400
    assert "Missing token" in body
    assert recorder.tokens == [] and not server.done()
    assert_genuine_request_still_works(server, recorder)


def test_replay_of_the_good_callback_after_success_is_refused(server, recorder):
    assert_genuine_request_still_works(server, recorder)
    status, body = get(server)
    assert status == 410
    assert "already" in body
    assert recorder.tokens == [TOKEN]


def test_oversized_request_headers_are_refused(server, recorder):
    status, _ = get(server, headers={f"X-Filler-{i}": "x" * 1000 for i in range(20)})
    assert status == 431
    assert recorder.tokens == []
    assert_genuine_request_still_works(server, recorder)


def test_slow_client_does_not_block_the_genuine_request(server, recorder):
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        slow.sendall(b"GET /callback/")  # ... and never finishes its request line
        started = time.monotonic()
        assert_genuine_request_still_works(server, recorder)
        assert time.monotonic() - started < callback.CLIENT_TIMEOUT


def test_requests_are_never_logged(server, recorder, capfd):
    get(server, "/favicon.ico")
    get(server, path(server) + "?token=")
    get(server, host="evil.example")
    get(server)
    get(server, method="POST")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# -- the one-shot ---------------------------------------------------------------------------


def test_rejected_token_gets_a_failure_page_and_consumes_the_nonce(recorder):
    recorder.verdict = (False, "Invalid token: token signature is invalid")
    with CallbackServer(recorder, port=0) as srv:
        status, body = get(srv)
        assert status == 401
        assert "Login Failed" in body and "token signature is invalid" in body
        assert "Login Successful" not in body
        assert srv.finish() is True
        assert get(srv)[0] == 410


def test_unexpected_error_in_on_token_is_reraised_by_finish(recorder):
    recorder.verdict = ZeroDivisionError("bug")
    with CallbackServer(recorder, port=0) as srv:
        status, body = get(srv)
        assert status == 401 and TOKEN not in body
        with pytest.raises(ZeroDivisionError):
            srv.finish()


def test_hand_over_of_a_pasted_token_settles_the_login_once(server, recorder):
    assert server.hand_over(TOKEN, final=False) == (True, "Logged in.")
    assert server.done()
    assert server.hand_over("another", final=False) is None
    assert get(server)[0] == 410
    assert recorder.tokens == [TOKEN]


def test_a_refused_pasted_token_leaves_the_login_open():
    verdicts = iter([(False, "Invalid token: token revoked"), (True, "Logged in.")])
    seen = []
    with CallbackServer(lambda token: seen.append(token) or next(verdicts), port=0) as srv:
        assert srv.hand_over("pasted", final=False) == (False, "Invalid token: token revoked")
        assert not srv.done()
        status, body = get(srv, f"{path(srv)}?token={TOKEN}")
        assert status == 200 and srv.done()
    assert seen == ["pasted", TOKEN]


def test_a_refused_callback_request_settles_the_login(recorder):
    recorder.verdict = (False, "Invalid token: nope")
    with CallbackServer(recorder, port=0) as srv:
        assert get(srv, f"{path(srv)}?token={TOKEN}")[0] == 401
        assert srv.done()
        assert srv.hand_over("pasted", final=False) is None


def test_finish_stops_taking_tokens(server, recorder):
    assert server.finish() is False
    assert get(server)[0] == 410
    assert recorder.tokens == []


def test_finish_waits_for_a_token_being_checked():
    entered, release = threading.Event(), threading.Event()

    def slow(token):
        entered.set()
        release.wait(5)
        return True, "ok"

    with CallbackServer(slow, port=0) as srv:
        thread = threading.Thread(target=get, args=(srv,))
        thread.start()
        assert entered.wait(5)
        threading.Timer(0.2, release.set).start()
        assert srv.finish() is True
        thread.join(5)


def test_wait_returns_false_on_timeout(server):
    started = time.monotonic()
    assert server.wait(0.1) is False
    assert time.monotonic() - started < 2


def test_finish_waits_until_the_browser_has_its_answer(monkeypatch):
    # The token is settled before its page is written: finish() (after which rexec-login
    # exits, taking the daemon handler thread with it) must wait for the answer to be sent.
    rendering, release = threading.Event(), threading.Event()
    real_page = answer_page.page

    def slow_page(title, message):
        rendering.set()
        release.wait(10)
        return real_page(title, message)

    monkeypatch.setattr(callback, "page", slow_page)
    answers: list = []
    finished = threading.Event()
    with CallbackServer(Recorder(), port=0) as srv:
        client = threading.Thread(target=lambda: answers.append(get(srv)))
        client.start()
        assert srv.wait(10) and rendering.wait(10)
        finisher = threading.Thread(target=lambda: (srv.finish(), finished.set()))
        finisher.start()
        assert not finished.wait(0.3)  # still writing the page: finish() must not return
        release.set()
        assert finished.wait(10)
        client.join(10)
        finisher.join(10)
    assert answers and answers[0][0] == 200


EXITS_AFTER_FINISH = """
import sys, time
from rexec_credential import answer_page, callback
real_page = answer_page.page
def slow_page(title, message):  # the answer takes a while to write
    time.sleep(0.5)
    return real_page(title, message)
callback.page = slow_page
with callback.CallbackServer(lambda token: (True, "Logged in."), port=0) as srv:
    print(srv.url, flush=True)
    srv.wait(30)
    srv.finish()
"""


def test_the_browser_gets_its_answer_although_the_process_exits_at_once():
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", EXITS_AFTER_FINISH], stdout=subprocess.PIPE, text=True
    )
    try:
        url = urlsplit(process.stdout.readline().strip())
        conn = http.client.HTTPConnection("127.0.0.1", url.port, timeout=10)
        conn.request("GET", url.path + "?token=" + TOKEN, headers={"Host": url.netloc})
        response = conn.getresponse()
        assert (response.status, b"Logged in." in response.read()) == (200, True)
    finally:
        assert process.wait(30) == 0
