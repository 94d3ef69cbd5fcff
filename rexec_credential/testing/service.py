"""The stand-in Rexec service (StandIn): lifecycle, HTTP server, request log, test controls."""

# The independent reference the client is tested against: this package imports nothing from
# the rest of rexec_credential (standard library only).

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

from .accounts import MINTED_NAME, Accounts, User
from .api import Api
from .auth import Auth, auth_kind
from .faults import ANY, FaultQueue, Only
from .messages import LOOPBACK, Reply, Request, error_reply
from .pages import COOKIE, Pages
from .sessions import Sessions

__all__ = ["StandIn", "User"]

MAX_BODY = 1 << 20
MINTED_USER_AGENT = "stand-in"
TOKENS_PATH = "/api/tokens"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: StandIn

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind: its getfqdn() can stall on a slow resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about a client hanging up (routine in fault tests); keep anything else
        in the stand-in's `errors`: the client got a closed connection for it."""
        if not isinstance(sys.exc_info()[1], OSError):
            self.standin._failed()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rexec-standin/1"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence http.server's stderr request log."""

    def do_GET(self) -> None:
        """Answer any method."""
        self._dispatch()

    do_HEAD = do_GET
    do_POST = do_GET
    do_PUT = do_GET
    do_PATCH = do_GET
    do_DELETE = do_GET
    do_OPTIONS = do_GET

    def _read_body(self) -> Optional[bytes]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        started = time.time()
        svc = self.server.standin
        self.close_connection = True
        raw = self.path
        if not raw.startswith("/"):
            # absolute-form request target: drop scheme and authority
            rest = raw.split("://", 1)[-1]
            raw = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        raw = raw.split("#", 1)[0]
        path, _, query = raw.partition("?")
        auth = self.headers.get("Authorization")
        body = self._read_body()
        try:
            if body is None:
                reply = error_reply(413, "request body too large")
            else:
                reply = svc._answer(
                    Request(
                        method=self.command,
                        path=path,
                        query=query,
                        body=body,
                        authorization=auth,
                        user_agent=self.headers.get("User-Agent") or "",
                        client_ip=str(self.client_address[0]),
                        cookie="; ".join(self.headers.get_all("Cookie") or []),
                    )
                )
        except Exception:  # the stand-in must keep serving whatever happens
            svc._failed()
            reply = error_reply(500, "internal server error")
        svc._record(
            {
                "method": self.command,
                "path": path,
                "status": None if reply.drop else reply.status,
                "host_header": self.headers.get("Host"),
                "auth": auth_kind(auth),
                "user": reply.user,
                "fault": reply.fault,
                "time": started,
            }
        )
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        try:
            if reply.drop:
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except OSError:
            pass


class StandIn:
    """A loopback HTTP server that behaves like the Rexec service; use it as a context manager."""

    # Browser sign-in (/cli-login): a sign-in opens the browser's web session (one JWT, one
    # session, a cookie); every CLI login from that browser gets that same JWT until the
    # session ends. Observe it with web_session_jwts(user) and last_sign_in_jwt().
    #
    # Token API: POST/GET /api/tokens, DELETE /api/tokens/<id>[/permanent]; inspect it with
    # api_tokens(user), api_token_id(token), expire_api_token(id).
    #
    # Switches: legacy_profile (old /api/profile shape), cli_login_rejected (the browser
    # flow hands out JWTs the API rejects), token_api (False: an older service without the
    # token API: /api/tokens and /api/tokens/<id>... answer 404 {"error": "not found"};
    # /api/tokens/validate stays). Faults for the next API requests: fail_next,
    # malformed_next, drop_next, delay_next, echo_token_next, each optionally only for one
    # method and/or path; fail_token_creation_next(n, status) for POST /api/tokens alone.

    def __init__(self, port: int = 0, jwt_lifetime: int = 3600) -> None:
        """Prepare the service (demo users included); start() or ``with`` binds it."""
        self.requested_port = port
        self.log: List[Dict[str, Any]] = []
        # The traceback of every request the stand-in's own code failed on (its client got a
        # 500 or a closed connection); the tests' fixture fails a test that left one here.
        self.errors: List[str] = []
        self.accounts = Accounts(jwt_lifetime)
        self.session_store = Sessions()
        self.auth = Auth(self.accounts, self.session_store)
        self.faults = FaultQueue()
        self.api = Api(self.accounts, self.session_store, self.auth)
        self.pages = Pages(self.accounts, self.auth)
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- settings delegated to the parts -----------------------------------------------------

    @property
    def users(self) -> Dict[str, User]:
        """The accounts by username."""
        return self.accounts.users

    @property
    def jwt_lifetime(self) -> int:
        """Lifetime in seconds of the JWTs it issues."""
        return self.accounts.jwt_lifetime

    @jwt_lifetime.setter
    def jwt_lifetime(self, seconds: int) -> None:
        self.accounts.jwt_lifetime = seconds

    @property
    def legacy_profile(self) -> bool:
        """Whether /api/profile answers the bare user object (the old shape)."""
        return self.api.legacy_profile

    @legacy_profile.setter
    def legacy_profile(self, value: bool) -> None:
        self.api.legacy_profile = value

    @property
    def cli_login_rejected(self) -> bool:
        """Whether the browser flow hands out JWTs the API then rejects (bad signature)."""
        return self.pages.cli_login_rejected

    @cli_login_rejected.setter
    def cli_login_rejected(self, value: bool) -> None:
        self.pages.cli_login_rejected = value

    @property
    def token_api(self) -> bool:
        """Whether it has the token API (False: /api/tokens[/<id>...] answer 404, as before it)."""
        return self.api.token_api

    @token_api.setter
    def token_api(self, value: bool) -> None:
        self.api.token_api = value

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StandIn:
        """Bind 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server((LOOPBACK, self.requested_port), _Handler)
        server.standin = self
        self.pages.cookie_name = f"{COOKIE}_{server.server_port}"
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(
            target=self._serve,
            args=(server,),
            name=f"rexec-standin:{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def _serve(self, server: _Server) -> None:
        server.timeout = 0.5
        while not self._stopping.is_set():
            server.handle_request()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # ends the serving loop and cuts injected delays short
        try:  # wake the loop's select() at once instead of waiting for its timeout
            socket.create_connection(server.socket.getsockname()[:2], timeout=1).close()
        except OSError:
            pass
        if thread is not None:
            thread.join(timeout=5)
        server.server_close()
        self._server = None
        self._thread = None

    close = stop

    def __enter__(self) -> StandIn:
        """Start the service."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Shut down and close the socket."""
        self.stop()

    @property
    def address(self) -> Tuple[str, int]:
        """The (host, port) the listening socket is bound to."""
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        host, port = self._server.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self.address[1]

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (no trailing slash)."""
        host, port = self.address
        return f"http://{host}:{port}"

    # -- accounts, tokens and sessions -------------------------------------------------------

    def add_user(
        self,
        username: str,
        email: str,
        tier: str = "free",
        is_admin: bool = False,
        password: str = "pw",  # noqa: S107 (the stand-in's demo accounts)
        name: Optional[str] = None,
    ) -> User:
        """Create an account; raises ValueError if the username exists."""
        return self.accounts.add_user(
            username, email, tier=tier, is_admin=is_admin, password=password, name=name
        )

    def mint_api_token(
        self,
        username: str,
        expires_at: Optional[float] = None,
        name: str = MINTED_NAME,
        scopes: Optional[List[str]] = None,
    ) -> str:
        """Issue an API token ("rexec_" + 64 hex) as POST /api/tokens does; only its sha256 kept."""
        # expires_at: a Unix time (None: never); GET /api/tokens lists it under `name`.
        return self.accounts.mint_api_token(username, expires_at, name, scopes)

    def api_tokens(self, username: str, revoked: bool = False) -> List[Dict[str, Any]]:
        """The user's API tokens as GET /api/tokens lists them (revoked too, if asked)."""
        return [record.listing() for record in self.accounts.api_tokens(username, revoked)]

    def api_token_id(self, token: str) -> str:
        """The id of an API token, revoked or not; KeyError if unknown or deleted."""
        return self.accounts.api_token_id(token)

    def expire_api_token(self, token_id: str, at: Optional[float] = None) -> None:
        """Make the API token with this id expire at Unix time `at` (default: now)."""
        when = time.time() if at is None else at
        self.accounts.set_api_token_expiry(token_id, int(when * 1e9))

    def mint_jwt(
        self, username: str, lifetime: Optional[float] = None, exp: Optional[float] = None
    ) -> str:
        """Issue an HS256 JWT with the service's claims and a session of its own."""
        return self.auth.issue_jwt(
            username, lifetime, exp, ip_address=LOOPBACK, user_agent=MINTED_USER_AGENT
        )

    def revoke(self, token: str) -> None:
        """Revoke an API token, or the session of a JWT (it then answers session_revoked)."""
        self.auth.revoke(token, "revoked by test")

    def web_session_jwts(self, username: str) -> List[str]:
        """The JWTs of the user's live browser sign-ins (what /cli-login hands the CLI)."""
        # Live: its browser still holds it (no sign-out, no later sign-in in the same
        # browser), it has not expired, and its session was not revoked. Oldest first.
        self.accounts.user(username)
        return self.pages.web_session_jwts(username)

    def last_sign_in_jwt(self) -> Optional[str]:
        """The JWT of the latest browser sign-in (on any browser), live or not; None before any."""
        return self.pages.last_sign_in_jwt()

    def sessions(self, username: str) -> List[Dict[str, Any]]:
        """The user's sessions as GET /api/sessions lists them (is_current False)."""
        self.accounts.user(username)
        return self.session_store.listing(username)

    def lock_screen(self, username: str) -> None:
        """Lock the user's screen: the user's JWTs issued so far answer 423 session_locked."""
        self.accounts.user(username)
        self.session_store.lock_screen(username)

    def unlock_screen(self, username: str) -> None:
        """Unlock the user's screen: its locked JWTs work again."""
        self.accounts.user(username)
        self.session_store.unlock_screen(username)

    # -- faults ------------------------------------------------------------------------------

    # Each takes `method` and `path` (no query string): the fault then waits for the next
    # API requests with that method and/or path, and every other request passes it by.

    def fail_next(
        self,
        n: int,
        status: int = 503,
        *,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """The next n API requests answer `status` with a JSON error body."""
        self.faults.fail_next(n, status, _only(method, path))

    def fail_token_creation_next(self, n: int, status: int = 500) -> None:
        """The next n POST /api/tokens answer `status` (400-599) and make no token."""
        # e.g. 500, 503, 403, 401, 405, 501; the body is {"error": "<reason phrase>"}.
        self.fail_next(n, status, method="POST", path=TOKENS_PATH)

    def malformed_next(
        self, n: int, *, method: Optional[str] = None, path: Optional[str] = None
    ) -> None:
        """The next n API requests answer 200 with a body that is not JSON."""
        self.faults.malformed_next(n, _only(method, path))

    def drop_next(
        self, n: int, *, method: Optional[str] = None, path: Optional[str] = None
    ) -> None:
        """The next n API requests are answered by closing the connection."""
        self.faults.drop_next(n, _only(method, path))

    def delay_next(
        self,
        n: int,
        seconds: float,
        *,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """The next n API requests sleep `seconds` before answering."""
        self.faults.delay_next(n, seconds, _only(method, path))

    def echo_token_next(
        self,
        n: int,
        status: int = 401,
        template: str = "invalid token {token}",
        *,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """Next n API requests: `status`, error text template.format(token=the token sent)."""
        # The body is {"error": text}, or {"valid": false, "error": text} when status is 200.
        self.faults.echo_token_next(n, status, template, _only(method, path))

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self.faults.clear()

    # -- log ---------------------------------------------------------------------------------

    def _record(self, entry: Dict[str, Any]) -> None:
        with self._log_lock:
            self.log.append(entry)

    def _failed(self) -> None:
        """Keep the exception being handled: a defect of the stand-in, never of its client."""
        with self._log_lock:
            self.errors.append(traceback.format_exc())

    def requests_to(self, path: str) -> List[Dict[str, Any]]:
        """Log entries for one path (no query string)."""
        with self._log_lock:
            return [entry for entry in self.log if entry["path"] == path]

    def clear_log(self) -> None:
        """Empty the request log."""
        with self._log_lock:
            self.log.clear()

    # -- request handling (called from server threads) ---------------------------------------

    def _answer(self, request: Request) -> Reply:
        if request.path != "/api" and not request.path.startswith("/api/"):
            return self.pages.handle(request)
        reply, fault = self.faults.intercept(request, self._stopping.wait)
        if reply is None:
            reply = self.api.handle(request)
        reply.fault = fault
        return reply


def _only(method: Optional[str], path: Optional[str]) -> Only:
    """The requests a fault waits for (any, when neither is given)."""
    return ANY if method is None and path is None else Only(method, path)
