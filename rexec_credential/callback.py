"""The one-shot loopback server that receives the browser's redirect with ?token=.

The service appends `?token=<jwt>` verbatim to whatever callback URL it was given and
accepts any URL, so the only thing binding a redirect to *this* login is an unguessable
one-time path segment (the role RFC 8252 §8.9 gives OAuth's `state`; it cannot be a query
parameter here). The server listens on the 127.0.0.1 literal only and for this one login
(RFC 8252 §7.3, §8.3), refuses every request that is not `GET /callback/<nonce>` with a
loopback `Host` (a foreign Host means DNS rebinding), and hands exactly one token to
`on_token` (docs/contract.md §5, rexec-login); it knows nothing of the files or the API.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .answer_page import CONTENT_SECURITY_POLICY, page
from .paste import parse_pasted, token_from_query

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Tuple

    from .paste import Pasted

    Verdict = Tuple[bool, str]

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 9876
NONCE_BYTES = 32  # 256 bits; at least 128 are needed
MAX_REQUEST_BYTES = 16384  # request line and headers together; a callback needs ~1 KiB
CLIENT_TIMEOUT = 5.0  # seconds a connection may take to send its whole request

_OPEN, _CLAIMED, _DONE, _CLOSED = "open", "claimed", "done", "closed"


# -- pure helpers -------------------------------------------------------------------------


def callback_path(nonce: str) -> str:
    """The one path the server answers: /callback/<nonce>."""
    return f"/callback/{nonce}"


def path_matches(path: str, nonce: str) -> bool:
    """True when path is exactly /callback/<nonce>, compared in constant time."""
    expected = callback_path(nonce).encode("ascii")
    return hmac.compare_digest(path.encode("utf-8", "surrogateescape"), expected)


def host_allowed(host: str | None, port: int) -> bool:
    """True for a Host header naming this listener: 127.0.0.1:PORT or localhost:PORT."""
    if not host:
        return False
    return host.strip().lower() in (f"{LOOPBACK}:{port}", f"localhost:{port}")


# -- the server ---------------------------------------------------------------------------


class CallbackServer:
    """Waits on 127.0.0.1 for one `GET /callback/<nonce>?token=…`; a context manager."""

    def __init__(self, on_token: Callable[[str], Verdict], port: int = DEFAULT_PORT) -> None:
        self._on_token = on_token
        self._requested_port = port
        self._nonce = secrets.token_urlsafe(NONCE_BYTES)
        self._lock = threading.Lock()
        self._state = _OPEN
        self._settled = threading.Event()
        self._answering = False  # a request settled the login and is being answered
        self._answered = threading.Event()
        self._error: BaseException | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> CallbackServer:
        """Bind 127.0.0.1:port and serve in a daemon thread; OSError when the port is taken."""
        httpd = _HTTPServer((LOOPBACK, self._requested_port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"rexec-callback:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        with self._lock:
            if self._state == _OPEN:
                self._state = _CLOSED
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> CallbackServer:
        """Start serving (if not already)."""
        return self if self._httpd is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        """Close the listener."""
        self.close()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("the callback server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The callback URL to give the service: http://127.0.0.1:PORT/callback/<nonce>."""
        return f"http://{LOOPBACK}:{self.port}{callback_path(self._nonce)}"

    # -- waiting

    def done(self) -> bool:
        """True once a token has been handed to on_token and its answer given."""
        return self._settled.is_set()

    def wait(self, timeout: float) -> bool:
        """Block until a token has been handled or timeout seconds pass; True if handled."""
        return self._settled.wait(timeout)

    def finish(self) -> bool:
        """Take no more tokens; wait for one already being handled and for the browser's
        answer to it to be sent; True if a token was handled.

        A token being handled is waited for however long on_token takes: its own limits
        bound it (rexec-login: each service call's budget and the lock wait), and a login
        cut short here would be reported as not made while it is still being stored. The
        answer is written by a daemon thread after the token settles the login: a process
        that exits without waiting for it leaves the browser with a dropped connection
        instead of its page. Re-raises an unexpected exception from on_token (a bug must
        show).
        """
        with self._lock:
            if self._state == _OPEN:
                self._state = _CLOSED
            pending = self._state == _CLAIMED
        if pending:
            self._settled.wait()
        if self._answering:
            self._answered.wait(CLIENT_TIMEOUT)
        if self._error is not None:
            raise self._error
        return self._settled.is_set()

    # -- tokens

    def answered(self) -> None:
        """The request that settled the login has had its answer (or its browser left)."""
        self._answered.set()

    def is_callback_path(self, path: str) -> bool:
        """True when path is this login's /callback/<nonce>."""
        return path_matches(path, self._nonce)

    def check_pasted(self, text: str) -> Pasted:
        """What was pasted, checked against this login's callback path (paste.parse_pasted)."""
        return parse_pasted(text, self.is_callback_path)

    def hand_over(self, token: str, final: bool = True) -> Verdict | None:
        """Give a token to on_token, one at a time; None when the login is already settled.

        `final` (a request arrived at the callback address): the verdict settles the
        login either way, so the nonce is used once. Not final (a token pasted in the
        terminal): a rejected token leaves the login open for another try.
        """
        with self._lock:
            if self._state != _OPEN:
                return None
            self._state = _CLAIMED
        try:
            verdict = self._on_token(token)
        except Exception as exc:  # a bug: re-raised from finish() in the waiting thread
            self._error = exc
            verdict = (False, "Something went wrong; see the terminal.")
        with self._lock:
            settled = final or verdict[0] or self._error is not None
            self._state = _DONE if settled else _OPEN
            self._answering = final
        if settled:
            self._settled.set()
        return verdict


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a client that never finishes its request cannot hold us up
    allow_reuse_address = True  # a previous login's TIME_WAIT connections must not block us
    # Never SO_REUSEPORT (some Python releases set it on HTTPServer): it would let another
    # local process bind the same port and be handed some of the connections.
    allow_reuse_port = False
    # socketserver's default listen backlog is 5: a few concurrent or idle connections (a
    # hostile local client, a browser's pre-connects) overflow it, and the kernel drops SYNs
    # (1 s retransmits) or resets connections, the genuine redirect's included.
    request_queue_size = 128
    owner: CallbackServer

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind: its getfqdn() can stall on a slow resolver.
        socketserver.TCPServer.server_bind(self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: a client hanging up is no concern of the terminal."""


class _CappedReader:
    """Wraps the request stream so a client can make us read neither more than a budget
    nor for longer than CLIENT_TIMEOUT in all (a client dripping a byte at a time)."""

    def __init__(self, stream: Any, budget: int, connection: Any) -> None:
        self._stream = stream
        self._connection = connection
        self._deadline = time.monotonic() + CLIENT_TIMEOUT
        self.budget = budget
        self.exceeded = False

    def readline(self, size: int = -1) -> bytes:
        """Read a line within the remaining budget and time; past the deadline, a timeout."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            # socket.timeout is what the handler catches on 3.9 (TimeoutError from 3.10).
            raise socket.timeout("request took too long")
        self._connection.settimeout(left)
        if self.budget <= 0:
            self.exceeded = True
            return b""
        limit = self.budget if size is None or size < 0 else min(size, self.budget)
        line: bytes = self._stream.readline(limit)
        self.budget -= len(line)
        return line

    def read(self, size: int = -1) -> bytes:
        """Callback requests have no body: read nothing."""
        return b""

    def close(self) -> None:
        """Close the underlying stream."""
        self._stream.close()


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = CLIENT_TIMEOUT
    server_version = "rexec-login"
    sys_version = ""

    def setup(self) -> None:
        """Cap what one request may send."""
        super().setup()
        self.rfile = _CappedReader(  # type: ignore[assignment]
            self.rfile, MAX_REQUEST_BYTES, self.connection
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Say nothing: the request line carries the token."""

    def do_GET(self) -> None:
        """The callback: checks, then the one-shot hand-over."""
        refusal = self._refusal()
        if refusal is not None:
            self._send(*refusal)
            return
        token = token_from_query(self.path.partition("?")[2])
        if token is None:
            self._send(400, "Missing token", "The address carries no token.")
            return
        verdict = self.server.owner.hand_over(token)
        try:
            self._answer(verdict)
        finally:
            if verdict is not None:
                self.server.owner.answered()

    def _answer(self, verdict: Verdict | None) -> None:
        if verdict is None:
            self._send(
                410,
                "Login link already used",
                "This login has already been completed or cancelled. You can close this tab.",
            )
        elif verdict[0]:
            self._send(
                200,
                "Login Successful!",
                f"{verdict[1]} You can close this tab and return to the terminal.",
            )
        else:
            self._send(401, "Login Failed", f"{verdict[1]} Return to the terminal.")

    def _refusal(self) -> tuple[int, str, str] | None:
        if self.rfile.exceeded:  # type: ignore[attr-defined]
            return 431, "Request too large", "Request header fields too large."
        if len(self.headers.get_all("Host") or []) != 1 or not host_allowed(
            self.headers.get("Host"), self.server.server_address[1]
        ):
            return 421, "Misdirected request", "This server answers only its loopback address."
        if not self.server.owner.is_callback_path(self.path.partition("?")[0]):
            return 404, "Not found", "Nothing here."
        return None

    def _refuse_method(self) -> None:
        self._send(405, "Method not allowed", "Only GET is accepted.", [("Allow", "GET")])

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def _send(
        self, status: int, title: str, message: str, extra: list[tuple[str, str]] | None = None
    ) -> None:
        body = page(title, message)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.send_header("Connection", "close")
            for name, value in extra or []:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass  # the browser went away; the outcome stands
