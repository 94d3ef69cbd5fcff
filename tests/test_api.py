"""The Rexec HTTP client against the real stand-in service over loopback."""

from __future__ import annotations

import socket
import struct

import pytest
from helpers import eventually

from rexec_credential.api import Client
from rexec_credential.errors import AuthError, ServiceError, UsageError


def client(url: str) -> Client:
    return Client(url, {}, sleep=lambda s: None)


def test_validate_api_token_returns_the_user(standin):
    token = standin.mint_api_token("johndoe")
    user = client(standin.url).validate_api_token(token)
    assert (user["username"], user["email"], user["tier"]) == (
        "johndoe",
        "johndoe@example.com",
        "pro",
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["nested-user", "legacy-flat"])
def test_profile_accepts_both_shapes(standin, legacy):
    standin.legacy_profile = legacy
    profile = client(standin.url).profile(standin.mint_jwt("janedoe"))
    assert profile["username"] == "janedoe" and profile["is_admin"] is False
    assert client(standin.url).profile(standin.mint_jwt("johndoe"))["is_admin"] is True


def test_sends_bearer_and_user_agent(standin):
    token = standin.mint_api_token("johndoe")
    client(standin.url).validate_api_token(token)
    entry = standin.log[-1]
    assert entry["auth"] == "api" and entry["user"] == "johndoe"


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda s: s.revoke(tok := s.mint_api_token("johndoe")) or tok, "invalid token"),
        (lambda s: "rexec_" + "0" * 64, "invalid token"),
    ],
    ids=["revoked", "unknown"],
)
def test_rejected_api_token_is_an_auth_error_with_the_server_reason(standin, make, reason):
    with pytest.raises(AuthError) as info:
        client(standin.url).validate_api_token(make(standin))
    assert info.value.message == f"Invalid token: {reason}"


def test_expired_jwt_is_an_auth_error(standin):
    with pytest.raises(AuthError, match="Invalid token: token is expired"):
        client(standin.url).profile(standin.mint_jwt("johndoe", exp=1000))


def test_5xx_is_retried_then_succeeds(standin):
    standin.fail_next(2, status=503)
    token = standin.mint_api_token("johndoe")
    assert client(standin.url).validate_api_token(token)["username"] == "johndoe"
    assert [e["status"] for e in standin.requests_to("/api/tokens/validate")] == [503, 503, 200]


@pytest.mark.parametrize("fault", ["fail", "malformed", "drop"])
def test_persistent_faults_are_service_errors_after_three_tries(standin, fault):
    getattr(standin, f"{fault}_next")(10)
    with pytest.raises(ServiceError) as info:
        client(standin.url).validate_api_token(standin.mint_api_token("johndoe"))
    assert info.value.exit_code == 3 and "\n" not in info.value.message
    tries = len(standin.requests_to("/api/tokens/validate"))
    assert tries == (1 if fault == "malformed" else 3)


def test_500_is_not_retried(standin):
    standin.fail_next(5, status=500)
    with pytest.raises(ServiceError, match="HTTP 500"):
        client(standin.url).profile(standin.mint_jwt("johndoe"))
    assert len(standin.requests_to("/api/profile")) == 1


def test_connection_refused_is_a_service_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ServiceError, match="connection refused"):
        client(f"http://127.0.0.1:{port}").profile("x.y.z")


# -- why a request failed is told by the types of the errors, never by their texts ----------


@pytest.fixture
def misbehaving():
    """misbehaving(act) → the URL of a loopback server that reads each request's head, then
    lets act(connection) answer it (or not)."""
    import threading

    servers = []

    def start(act) -> str:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        servers.append(server)

        def serve():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return  # closed: the test is over
                with conn:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    act(conn)

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{server.getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


def _reset(conn):
    """Close with a TCP reset (SO_LINGER 0) instead of an orderly close."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _close(conn):
    conn.shutdown(socket.SHUT_RDWR)


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"


@pytest.mark.parametrize(
    "act, reason",
    [
        (_reset, "connection dropped"),  # ConnectionResetError
        (_close, "connection dropped"),  # http.client's RemoteDisconnected
        (lambda c: c.sendall(b"SSH-2.0-OpenSSH_9.6\r\n"), "connection dropped"),  # no HTTP
        (lambda c: (c.sendall(HEAD + b'{"user":'), _reset(c)), "connection dropped"),
        (lambda c: (c.sendall(HEAD + b'{"user":'), _close(c)), "connection failed"),
    ],
    ids=["reset", "closed", "not-http", "reset-in-the-body", "body-cut-short"],
)
def test_a_connection_that_fails_is_named_by_how_it_failed(misbehaving, act, reason):
    url = misbehaving(act)
    with pytest.raises(ServiceError) as info:
        client(url).profile("x.y.z")
    assert info.value.message == f"cannot reach Rexec service at {url}: {reason}"


def test_a_host_that_does_not_resolve_is_named_as_such():
    """Its name holds the words the error texts once were searched for ("refused", "reset"):
    they do not matter. What the resolver says decides (a name it does not know: not
    found; no resolver to ask: a failed connection)."""
    host = "rexec-refused-reset.invalid"
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror as exc:
        known = exc.errno == socket.EAI_NONAME
    else:
        pytest.skip("this resolver answers for .invalid names")
    with pytest.raises(ServiceError) as info:
        client(f"https://{host}").profile("x.y.z")
    reason = "host not found" if known else "connection failed"
    assert info.value.message == f"cannot reach Rexec service at https://{host}: {reason}"


def test_read_timeout_is_a_service_error_and_not_retried(standin, monkeypatch):
    monkeypatch.setattr("rexec_credential.api.READ_TIMEOUT", 0.3)
    # Only the first request is held back: a retry would be answered at once and the call
    # would succeed. The held one is logged when the stand-in answers it, a second later.
    standin.delay_next(1, 1.0)
    with pytest.raises(ServiceError, match="did not answer in time"):
        client(standin.url).profile(standin.mint_jwt("johndoe"))
    assert eventually(lambda: standin.requests_to("/api/profile"))
    assert len(standin.requests_to("/api/profile")) == 1


def test_the_whole_budget_is_40_seconds():
    from rexec_credential import api

    assert api.TOTAL_BUDGET == 40.0
    # The worst case left: connection failures on every try, each its connect timeout,
    # plus the pauses between them, still ends before the budget cuts it.
    assert api.TRIES * api.CONNECT_TIMEOUT + sum(api.BACKOFF) < api.TOTAL_BUDGET


def test_plain_http_to_a_remote_host_is_refused_before_any_request():
    with pytest.raises(UsageError):
        Client("http://rexec.example.com", {})


def test_server_error_text_never_echoes_the_token(standin):
    token = standin.mint_api_token("johndoe")
    standin.revoke(token)
    with pytest.raises(AuthError) as info:
        client(standin.url).validate_api_token(token)
    assert token not in str(info.value)


def test_netrc_never_replaces_the_bearer_token(standin, home):
    (home / ".netrc").write_text("machine 127.0.0.1 login u password p\n")
    (home / ".netrc").chmod(0o600)
    token = standin.mint_api_token("johndoe")
    assert client(standin.url).validate_api_token(token)["username"] == "johndoe"
    assert standin.log[-1]["auth"] == "api"


# -- every text built from a server's answer is cleaned: tokens masked first, then shortened ---

JWT_ECHO = (  # the shape the service issues: its claims make it about 390 characters long
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ1c2VyX2lkIjoiNWYwYzZiMmUtMWQyYS00YzRlLTlmNTctMGEzZjJkNmI5ZTExIiwiZW1haWwiOiJqb2huZG9lQGV4"
    "YW1wbGUuY29tIiwidXNlcm5hbWUiOiJqb2huZG9lIiwidGllciI6InBybyIsImd1ZXN0IjpmYWxzZSwic3Vic2NyaXB0"
    "aW9uX2FjdGl2ZSI6dHJ1ZSwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjE3MDAwMDAwMDAsInNpZCI6IjAxMjM0NTY3ODlh"
    "YmNkZWYwMTIzNDU2Nzg5YWJjZGVmIn0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2ln"
)
API_ECHO = "rexec_" + "0123456789abcdef" * 4


@pytest.fixture
def answering():
    """answering(status, body) → the URL of a loopback server that answers every GET so."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    servers = []

    def start(status: int, body: dict) -> str:
        payload = json.dumps(body).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def leaked_pieces(token: str, text: str, piece: int = 10) -> list:
    """Every run of `piece` characters of the token (past a kind prefix) found in text."""
    start = len("rexec_") if token.startswith("rexec_") else 3
    return [
        token[i : i + piece]
        for i in range(start, len(token) - piece + 1)
        if token[i : i + piece] in text
    ]


@pytest.mark.parametrize(
    "status, body, call",
    [
        (200, {"valid": False, "error": f"token {API_ECHO} is not valid"}, "validate"),
        (401, {"error": "x" * 180 + " " + API_ECHO}, "validate"),  # the token straddles the cut
        (401, {"error": f"bad token {JWT_ECHO}"}, "profile"),
        (401, {"error": "y" * 150 + " " + JWT_ECHO}, "profile"),
    ],
    ids=["valid-false", "api-at-the-cut", "jwt", "jwt-at-the-cut"],
)
def test_an_echoed_token_never_shows_any_part(answering, status, body, call):
    token = API_ECHO if call == "validate" else JWT_ECHO
    url = answering(status, body)
    api = client(url)
    with pytest.raises(AuthError) as info:
        api.validate_api_token(token) if call == "validate" else api.profile(token)
    message = info.value.message
    assert message.startswith("Invalid token: ")
    assert leaked_pieces(token, message) == [], message
    assert len(message) <= 260


def test_control_characters_from_the_server_are_removed(answering):
    url = answering(401, {"error": "bad\x1b[2J\x1b]0;pwned\x07 token\r\nreally"})
    with pytest.raises(AuthError) as info:
        client(url).profile(JWT_ECHO)
    assert not any(ord(c) < 32 or ord(c) == 127 for c in info.value.message)
    assert "bad" in info.value.message and "really" in info.value.message


def test_a_profile_is_cleaned_of_control_characters_and_tokens(answering):
    url = answering(
        200, {"user": {"username": "evil\x1b[31m", "email": f"{JWT_ECHO}@x\x07", "tier": "pro\x1b"}}
    )
    profile = client(url).profile(JWT_ECHO)
    shown = " ".join(str(profile[k]) for k in ("username", "email", "tier"))
    assert not any(ord(c) < 32 or ord(c) == 127 for c in shown)
    assert leaked_pieces(JWT_ECHO, shown) == []
