"""A real HTTP stand-in of the Rexec service (SPEC sections 2 and 6), standard library only.

It is the independent reference the client is tested against, so it imports nothing from the
rest of ``rexec_credential``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import socket
import socketserver
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

__all__ = ["StandIn", "User"]

LOOPBACK = "127.0.0.1"
GRANT_LIFETIME = 600.0
MAX_BODY = 1 << 20

INVALID_OR_EXPIRED = "Invalid or expired token"
BAD_SIGNATURE = "token signature is invalid"
JWT_EXPIRED = "token is expired"

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_MALFORMED_BODY = b"<html><body><h1>502 Bad Gateway</h1>upstream sent garbage</body></html>\n"

_LIMITS = {
    "free": {"containers": 2, "memory_mb": 512, "cpu_cores": 1, "session_minutes": 60},
    "pro": {"containers": 10, "memory_mb": 4096, "cpu_cores": 4, "session_minutes": 1440},
}


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(segment: str) -> bytes:
    if not _B64URL.match(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class User:
    """A Rexec account known to the stand-in."""

    username: str
    email: str
    name: str
    tier: str = "free"
    is_admin: bool = False
    password: str = "pw"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=_now_iso)

    def profile(self) -> Dict[str, Any]:
        """The user object as /api/profile answers it."""
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "name": self.name,
            "tier": self.tier,
            "is_admin": self.is_admin,
            "created_at": self.created_at,
        }


@dataclass
class _ApiToken:
    username: str
    expires_at: Optional[float] = None
    revoked: bool = False
    created_at: float = field(default_factory=time.time)


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: Optional[str] = None
    headers: List[Tuple[str, str]] = field(default_factory=list)
    user: Optional[str] = None
    fault: Optional[str] = None
    drop: bool = False


def _json(status: int, obj: Any, user: Optional[str] = None) -> _Reply:
    return _Reply(status, json.dumps(obj).encode("utf-8"), "application/json", user=user)


def _page(status: int, title: str, body_html: str, user: Optional[str] = None) -> _Reply:
    doc = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body_html}\n</body></html>\n"
    )
    reply = _Reply(status, doc.encode("utf-8"), "text/html; charset=utf-8", user=user)
    reply.headers.append(("Cache-Control", "no-store"))
    return reply


def _bearer(header: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """Split an Authorization header the way the service does: (token, error)."""
    if not header:
        return None, "authorization header required"
    scheme, sep, token = header.partition(" ")
    token = token.strip()
    if scheme != "Bearer" or not sep or not token or " " in token:
        return None, "invalid authorization format"
    return token, None


def _auth_kind(header: Optional[str]) -> str:
    if not header:
        return "none"
    token, err = _bearer(header)
    if err or token is None:
        return "other"
    if token.startswith("rexec_"):
        return "api"
    if _JWT_SHAPE.match(token):
        return "jwt"
    return "other"


def _clean_callback(value: str) -> Optional[str]:
    """Any callback URL is accepted, but it must be sendable in a Location header."""
    if not value or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
        return None
    return value


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
        """Stay quiet: a client hanging up mid-answer is routine in fault tests."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rexec-standin/1"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence http.server's stderr request log."""

    def do_GET(self) -> None:
        """Answer GET."""
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
                reply = _json(413, {"error": "request body too large"})
            elif path == "/api" or path.startswith("/api/"):
                reply = svc._api_request(self.command, path, auth)
            else:
                reply = svc._web_request(self.command, path, query, body)
        except Exception:  # the stand-in must keep serving whatever happens
            reply = _json(500, {"error": "internal server error"})
        svc._record(
            {
                "method": self.command,
                "path": path,
                "status": None if reply.drop else reply.status,
                "host_header": self.headers.get("Host"),
                "auth": _auth_kind(auth),
                "user": reply.user,
                "fault": reply.fault,
                "time": started,
            }
        )
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
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

    def __init__(self, port: int = 0, jwt_lifetime: int = 3600) -> None:
        """Prepare the service (default users included); start() or ``with`` binds it."""
        self.requested_port = port
        self.jwt_lifetime = jwt_lifetime
        self.legacy_profile = False
        self.cli_login_rejected = False
        self.users: Dict[str, User] = {}
        self.log: List[Dict[str, Any]] = []
        self._lock = threading.RLock()
        self._key = secrets.token_bytes(32)
        self._wrong_key = secrets.token_bytes(32)
        self._api_tokens: Dict[str, _ApiToken] = {}
        self._revoked_sids: set = set()
        self._grants: Dict[str, Tuple[str, str, float]] = {}
        self._faults: List[List[Any]] = []
        self._delays: List[List[Any]] = []
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self.add_user("johndoe", "johndoe@example.com", tier="pro", is_admin=True,
                      password="hunter2", name="John Doe")
        self.add_user("janedoe", "jane@example.com", tier="free", is_admin=False,
                      password="correct-horse", name="Jane Doe")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StandIn:
        """Bind 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server((LOOPBACK, self.requested_port), _Handler)
        server.standin = self
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(
            target=self._serve, args=(server,),
            name=f"rexec-standin:{server.server_port}", daemon=True,
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

    # -- accounts and tokens -----------------------------------------------------------------

    def add_user(self, username: str, email: str, tier: str = "free", is_admin: bool = False,
                 password: str = "pw", name: Optional[str] = None) -> User:  # noqa: S107
        """Create an account; raises ValueError if the username exists."""
        user = User(username=username, email=email, name=name if name is not None else username,
                    tier=tier, is_admin=is_admin, password=password)
        with self._lock:
            if username in self.users:
                raise ValueError(f"user {username!r} already exists")
            self.users[username] = user
        return user

    def _user(self, username: str) -> User:
        with self._lock:
            try:
                return self.users[username]
            except KeyError:
                raise KeyError(f"unknown user {username!r}") from None

    def mint_api_token(self, username: str, expires_at: Optional[float] = None) -> str:
        """Issue an API token ("rexec_" + 64 hex); only its sha256 is kept."""
        self._user(username)
        token = "rexec_" + secrets.token_hex(32)
        with self._lock:
            self._api_tokens[_sha256(token)] = _ApiToken(username, expires_at)
        return token

    def mint_jwt(self, username: str, lifetime: Optional[float] = None,
                 exp: Optional[float] = None) -> str:
        """Issue an HS256 JWT with the service's claims; exp overrides lifetime."""
        return self._sign(self._claims(username, lifetime, exp), self._key)

    def _claims(self, username: str, lifetime: Optional[float], exp: Optional[float]
                ) -> Dict[str, Any]:
        user = self._user(username)
        now = int(time.time())
        if exp is None:
            exp = now + (self.jwt_lifetime if lifetime is None else lifetime)
        return {
            "user_id": user.id,
            "email": user.email,
            "username": user.username,
            "tier": user.tier,
            "guest": False,
            "subscription_active": user.tier != "free",
            "exp": int(exp),
            "iat": now,
            "sid": secrets.token_hex(16),
        }

    @staticmethod
    def _sign(claims: Dict[str, Any], key: bytes) -> str:
        header = _b64e(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64e(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode("ascii")
        signature = hmac.new(key, signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64e(signature)}"

    def revoke(self, token: str) -> None:
        """Revoke an API token, or the session (sid) of a JWT."""
        if token.startswith("rexec_"):
            with self._lock:
                record = self._api_tokens.get(_sha256(token))
                if record is None:
                    raise KeyError("unknown API token")
                record.revoked = True
            return
        try:
            claims = json.loads(_b64d(token.split(".")[1]))
            sid = claims["sid"]
        except (ValueError, IndexError, KeyError, TypeError):
            raise ValueError("not a token issued by this service") from None
        with self._lock:
            self._revoked_sids.add(str(sid))

    # -- faults ------------------------------------------------------------------------------

    @staticmethod
    def _count(n: int) -> int:
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError("n must be a non-negative integer")
        return n

    def _queue_fault(self, kind: str, n: int, param: Any = None) -> None:
        if self._count(n):
            with self._lock:
                self._faults.append([kind, n, param])

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next n API requests answer `status` with a JSON error body."""
        if not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._queue_fault("fail", n, int(status))

    def malformed_next(self, n: int) -> None:
        """The next n API requests answer 200 with a body that is not JSON."""
        self._queue_fault("malformed", n)

    def drop_next(self, n: int) -> None:
        """The next n API requests are answered by closing the connection."""
        self._queue_fault("drop", n)

    def delay_next(self, n: int, seconds: float) -> None:
        """The next n API requests sleep `seconds` before answering."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        if self._count(n):
            with self._lock:
                self._delays.append([n, float(seconds)])

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def _take_faults(self) -> Tuple[Optional[float], Optional[Tuple[str, Any]]]:
        with self._lock:
            delay = None
            if self._delays:
                entry = self._delays[0]
                delay = entry[1]
                entry[0] -= 1
                if entry[0] <= 0:
                    self._delays.pop(0)
            fault = None
            if self._faults:
                entry = self._faults[0]
                fault = (entry[0], entry[2])
                entry[1] -= 1
                if entry[1] <= 0:
                    self._faults.pop(0)
            return delay, fault

    # -- log ---------------------------------------------------------------------------------

    def _record(self, entry: Dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)

    def requests_to(self, path: str) -> List[Dict[str, Any]]:
        """Log entries for one path (no query string)."""
        with self._lock:
            return [entry for entry in self.log if entry["path"] == path]

    def clear_log(self) -> None:
        """Empty the request log."""
        with self._lock:
            self.log.clear()

    # -- request handling (called from server threads) ---------------------------------------

    def _api_request(self, method: str, path: str, auth: Optional[str]) -> _Reply:
        delay, fault = self._take_faults()
        names = []
        if delay is not None:
            names.append("delay")
            self._stopping.wait(delay)
        reply: Optional[_Reply] = None
        if fault is not None:
            kind, param = fault
            names.append(kind)
            if kind == "fail":
                try:
                    phrase = HTTPStatus(param).phrase.lower()
                except ValueError:
                    phrase = "injected fault"
                reply = _json(param, {"error": phrase})
            elif kind == "malformed":
                reply = _Reply(200, _MALFORMED_BODY, "application/json")
            else:
                reply = _Reply(0, drop=True)
        if reply is None:
            reply = self._api_route(method, path, auth)
        reply.fault = "+".join(names) or None
        return reply

    def _api_route(self, method: str, path: str, auth: Optional[str]) -> _Reply:
        routes = {"/api/profile": self._profile, "/api/tokens/validate": self._validate}
        handler = routes.get(path)
        if handler is None:
            return _json(404, {"error": "not found"})
        if method not in ("GET", "HEAD"):
            reply = _json(405, {"error": "method not allowed"})
            reply.headers.append(("Allow", "GET, HEAD"))
            return reply
        token, err = _bearer(auth)
        if err or token is None:
            return _json(401, {"error": err})
        return handler(token)

    def _profile(self, token: str) -> _Reply:
        if token.startswith("rexec_"):
            user, err = self._check_api_token(token)
            if err:
                err = INVALID_OR_EXPIRED
        elif _JWT_SHAPE.match(token):
            user, err = self._check_jwt(token)
        else:
            return _json(401, {"error": "unauthorized"})
        if user is None:
            return _json(401, {"error": err or INVALID_OR_EXPIRED})
        profile = user.profile()
        if self.legacy_profile:
            return _json(200, profile, user=user.username)
        stats = {"containers": 0, "active_sessions": 0, "snippets": 0}
        limits = dict(_LIMITS.get(user.tier, _LIMITS["free"]))
        return _json(200, {"user": profile, "stats": stats, "limits": limits},
                     user=user.username)

    def _validate(self, token: str) -> _Reply:
        if not token.startswith("rexec_"):
            return _json(401, {"error": "invalid token"})
        user, err = self._check_api_token(token)
        if user is None:
            return _json(401, {"error": err or "invalid token"})
        return _json(200, {
            "valid": True,
            "user_id": user.id,
            "username": user.username,
            "email": user.email,
            "tier": user.tier,
            "scopes": ["read", "write"],
        }, user=user.username)

    def _check_api_token(self, token: str) -> Tuple[Optional[User], Optional[str]]:
        with self._lock:
            record = self._api_tokens.get(_sha256(token))
            if record is None:
                return None, "invalid token"
            if record.revoked:
                return None, "token revoked"
            if record.expires_at is not None and time.time() >= record.expires_at:
                return None, "token expired"
            user = self.users.get(record.username)
        return (user, None) if user is not None else (None, "invalid token")

    def _check_jwt(self, token: str) -> Tuple[Optional[User], Optional[str]]:
        head, payload, signature = token.split(".")
        try:
            header = json.loads(_b64d(head))
            claims = json.loads(_b64d(payload))
            sig = _b64d(signature)
        except ValueError:
            return None, INVALID_OR_EXPIRED
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None, INVALID_OR_EXPIRED
        if header.get("alg") != "HS256":
            return None, INVALID_OR_EXPIRED
        expected = hmac.new(self._key, f"{head}.{payload}".encode("ascii"),
                            hashlib.sha256).digest()
        if not hmac.compare_digest(expected, sig):
            return None, BAD_SIGNATURE
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None, INVALID_OR_EXPIRED
        if time.time() >= exp:
            return None, JWT_EXPIRED
        with self._lock:
            if str(claims.get("sid")) in self._revoked_sids:
                return None, INVALID_OR_EXPIRED
            user = next((u for u in self.users.values() if u.id == claims.get("user_id")), None)
        return (user, None) if user is not None else (None, INVALID_OR_EXPIRED)

    # -- web pages ---------------------------------------------------------------------------

    def _web_request(self, method: str, path: str, query: str, body: bytes) -> _Reply:
        if path == "/settings" and method in ("GET", "HEAD"):
            return self._settings_page()
        if path == "/cli-login" and method in ("GET", "HEAD"):
            params = parse_qs(query, keep_blank_values=True)
            return self._login_form((params.get("callback") or [""])[0])
        if path == "/cli-login" and method == "POST":
            return self._sign_in(self._form(body))
        if path == "/cli-login/authorize" and method == "POST":
            return self._authorize(self._form(body))
        if path in ("/settings", "/cli-login", "/cli-login/authorize"):
            return _json(405, {"error": "method not allowed"})
        return _json(404, {"error": "not found"})

    @staticmethod
    def _form(body: bytes) -> Dict[str, str]:
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}

    @staticmethod
    def _settings_page() -> _Reply:
        return _page(200, "Rexec settings", (
            "<h1>Settings</h1>\n"
            "<section id=\"api-tokens\">\n<h2>API Tokens</h2>\n"
            "<p>Generate a new token for the CLI or CI. Tokens start with "
            "<code>rexec_</code> and are shown only once.</p>\n"
            "<button type=\"button\" id=\"generate-token\">Generate New Token</button>\n"
            "</section>"
        ))

    @staticmethod
    def _bad_callback() -> _Reply:
        return _page(400, "Rexec CLI login", (
            "<h1>Rexec CLI login</h1>\n"
            "<p class=\"error\">Missing or invalid callback parameter.</p>"
        ))

    def _login_form(self, callback: str, error: str = "", username: str = "") -> _Reply:
        cb = _clean_callback(callback)
        if cb is None:
            return self._bad_callback()
        alert = (f"<p class=\"error\" role=\"alert\">{html.escape(error)}</p>\n" if error else "")
        return _page(401 if error else 200, "Rexec CLI login", (
            "<h1>Rexec CLI login</h1>\n"
            "<p>The Rexec command-line tool is asking for access to your account. "
            "Enter your credentials.</p>\n"
            f"{alert}"
            "<form method=\"post\" action=\"/cli-login\">\n"
            f"<input type=\"hidden\" name=\"callback\" value=\"{html.escape(cb)}\">\n"
            "<label for=\"username\">Username</label>\n"
            "<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" "
            f"value=\"{html.escape(username)}\">\n"
            "<label for=\"password\">Password</label>\n"
            "<input type=\"password\" id=\"password\" name=\"password\" "
            "autocomplete=\"current-password\">\n"
            "<button type=\"submit\" id=\"sign-in\">Sign in</button>\n"
            "</form>"
        ))

    def _sign_in(self, form: Dict[str, str]) -> _Reply:
        cb = _clean_callback(form.get("callback", ""))
        if cb is None:
            return self._bad_callback()
        username = form.get("username", "")
        password = form.get("password", "")
        with self._lock:
            user = self.users.get(username)
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            return self._login_form(cb, "Invalid username or password", username)
        grant = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            for key in [k for k, v in self._grants.items() if v[2] <= now]:
                del self._grants[key]
            self._grants[grant] = (user.username, cb, now + GRANT_LIFETIME)
        name = html.escape(user.username)
        return _page(200, "Rexec CLI login", (
            "<h1>Rexec CLI login</h1>\n"
            f"<p id=\"signed-in\">Signed in as {name}</p>\n"
            "<p>The Rexec command-line tool will receive a token for this account at:</p>\n"
            f"<p><code>{html.escape(cb)}</code></p>\n"
            "<form method=\"post\" action=\"/cli-login/authorize\">\n"
            f"<input type=\"hidden\" name=\"callback\" value=\"{html.escape(cb)}\">\n"
            f"<input type=\"hidden\" name=\"grant\" value=\"{html.escape(grant)}\">\n"
            "<button type=\"submit\" id=\"authorize\">Authorize CLI access</button>\n"
            "</form>"
        ), user=user.username)

    def _authorize(self, form: Dict[str, str]) -> _Reply:
        with self._lock:
            entry = self._grants.pop(form.get("grant", ""), None)
        if entry is None or entry[2] <= time.time() or entry[1] != form.get("callback"):
            return _page(400, "Rexec CLI login", (
                "<h1>Rexec CLI login</h1>\n"
                "<p class=\"error\">This sign-in has expired or was already used. "
                "Start again from the command line.</p>"
            ))
        username, callback, _ = entry
        key = self._wrong_key if self.cli_login_rejected else self._key
        token = self._sign(self._claims(username, None, None), key)
        reply = _Reply(302, b"", user=username)
        reply.headers.append(("Location", callback + "?token=" + token))
        reply.headers.append(("Cache-Control", "no-store"))
        reply.headers.append(("Referrer-Policy", "no-referrer"))
        return reply
