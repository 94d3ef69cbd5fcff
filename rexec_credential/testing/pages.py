"""The stand-in's web pages: /settings and the /cli-login browser sign-in flow.

As in the web app, signing in opens the browser's web session: one JWT (and one server
session) per sign-in, which the real browser keeps in localStorage and the stand-in names
by a cookie. Every CLI login made from that browser while the session lives hands the CLI
that same JWT (``<callback>?token=<JWT>``); no new sign-in, no new token. When the JWT has
expired or its session was revoked (DELETE /api/sessions/<sid>), the browser is signed out:
the sign-in form comes back and the cookie is dropped. "Sign out" on the page only forgets
the session in this browser, as the web app's logout does: the JWT keeps working.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional
from urllib.parse import parse_qs

from .accounts import Accounts, Claims
from .auth import Auth
from .messages import Reply, Request, error_reply, html_page, not_allowed

GRANT_LIFETIME = 600.0
COOKIE = "rexec_web"
COOKIE_PATH = "/cli-login"
_TITLE = "Rexec CLI login"
_ALLOW = {
    "/settings": "GET, HEAD",
    "/cli-login": "GET, HEAD, POST",
    "/cli-login/authorize": "POST",
    "/cli-login/sign-out": "POST",
}


def _clean_callback(value: str) -> Optional[str]:
    """Any callback URL is accepted, but it must be sendable in a Location header."""
    if not value or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
        return None
    return value


def _form(body: bytes) -> Dict[str, str]:
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def cookie_value(header: str, name: str) -> Optional[str]:
    """The value of cookie `name` in a Cookie request header (the first, if repeated)."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip()
    return None


def _settings_page() -> Reply:
    return html_page(
        200,
        "Rexec settings",
        (
            "<h1>Settings</h1>\n"
            '<section id="api-tokens">\n<h2>API Tokens</h2>\n'
            "<p>Generate a new token for the CLI or CI. Tokens start with "
            "<code>rexec_</code> and are shown only once.</p>\n"
            '<button type="button" id="generate-token">Generate New Token</button>\n'
            "</section>"
        ),
    )


def _bad_callback() -> Reply:
    return html_page(
        400,
        _TITLE,
        (f'<h1>{_TITLE}</h1>\n<p class="error">Missing or invalid callback parameter.</p>'),
    )


def _expired_grant() -> Reply:
    return html_page(
        400,
        _TITLE,
        (
            f"<h1>{_TITLE}</h1>\n"
            '<p class="error">This sign-in has expired or was already used. '
            "Start again from the command line.</p>"
        ),
    )


def _login_form(callback: str, error: str = "", username: str = "") -> Reply:
    cb = _clean_callback(callback)
    if cb is None:
        return _bad_callback()
    alert = f'<p class="error" role="alert">{html.escape(error)}</p>\n' if error else ""
    return html_page(
        401 if error else 200,
        _TITLE,
        (
            f"<h1>{_TITLE}</h1>\n"
            "<p>The Rexec command-line tool is asking for access to your account. "
            "Enter your credentials.</p>\n"
            f"{alert}"
            '<form method="post" action="/cli-login">\n'
            f'<input type="hidden" name="callback" value="{html.escape(cb)}">\n'
            '<label for="username">Username</label>\n'
            '<input type="text" id="username" name="username" autocomplete="username" '
            f'value="{html.escape(username)}">\n'
            '<label for="password">Password</label>\n'
            '<input type="password" id="password" name="password" '
            'autocomplete="current-password">\n'
            '<button type="submit" id="sign-in">Sign in</button>\n'
            "</form>"
        ),
    )


def _signed_in_page(username: str, callback: str, grant: str) -> Reply:
    name, cb = html.escape(username), html.escape(callback)
    return html_page(
        200,
        _TITLE,
        (
            f"<h1>{_TITLE}</h1>\n"
            f'<p id="signed-in">Signed in as {name}</p>\n'
            "<p>The Rexec command-line tool will receive this browser's session token "
            "for this account at:</p>\n"
            f"<p><code>{cb}</code></p>\n"
            '<form method="post" action="/cli-login/authorize">\n'
            f'<input type="hidden" name="callback" value="{cb}">\n'
            f'<input type="hidden" name="grant" value="{html.escape(grant)}">\n'
            '<button type="submit" id="authorize">Authorize CLI access</button>\n'
            "</form>\n"
            '<form method="post" action="/cli-login/sign-out">\n'
            f'<input type="hidden" name="callback" value="{cb}">\n'
            '<button type="submit" id="sign-out">Not you? Sign out</button>\n'
            "</form>"
        ),
        user=username,
    )


@dataclass(frozen=True)
class _WebSession:
    """A browser's sign-in: the claims of its JWT (signed when handed out)."""

    username: str
    claims: Claims


@dataclass(frozen=True)
class _Grant:
    """One "Authorize CLI access" click allowed: for this web session and this callback."""

    web_id: str
    callback: str
    deadline: float


class Pages:
    """Answers every request outside /api; holds the browsers' web sessions and the grants."""

    def __init__(self, accounts: Accounts, auth: Auth) -> None:
        """Sign in against these accounts; `cli_login_rejected` makes it hand out unusable JWTs."""
        # While cli_login_rejected is set, a web session's JWT is signed, when handed to the
        # CLI, with a key the API rejects (token signature is invalid); the same session hands
        # out its good JWT again once it is cleared. cookie_name is set per port by the
        # service: a cookie, unlike localStorage, is shared by every port of a host.
        self.cli_login_rejected = False
        self.cookie_name = COOKIE
        self._accounts = accounts
        self._auth = auth
        self._lock = threading.Lock()
        self._grants: Dict[str, _Grant] = {}
        self._web: Dict[str, _WebSession] = {}
        self._last: Optional[Claims] = None

    # -- what tests observe ------------------------------------------------------------------

    def _jwt(self, claims: Claims) -> str:
        return self._accounts.sign(claims, foreign=self.cli_login_rejected)

    def web_session_jwts(self, username: str) -> List[str]:
        """The JWTs of the user's live web sessions (signed-in browsers), oldest first."""
        with self._lock:
            signed_in = [w.claims for w in self._web.values() if w.username == username]
        return [self._jwt(claims) for claims in signed_in if self._auth.live(claims)]

    def last_sign_in_jwt(self) -> Optional[str]:
        """The JWT of the latest browser sign-in, live or not; None before any."""
        with self._lock:
            claims = self._last
        return None if claims is None else self._jwt(claims)

    # -- requests ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Answer one request for a page."""
        method, path = request.method, request.path
        if path == "/settings" and method in ("GET", "HEAD"):
            return _settings_page()
        if path == "/cli-login" and method in ("GET", "HEAD"):
            params = parse_qs(request.query, keep_blank_values=True)
            return self._login_page(request, (params.get("callback") or [""])[0])
        if path == "/cli-login" and method == "POST":
            return self._sign_in(request, _form(request.body))
        if path == "/cli-login/authorize" and method == "POST":
            return self._authorize(request, _form(request.body))
        if path == "/cli-login/sign-out" and method == "POST":
            return self._sign_out(request, _form(request.body))
        if path in _ALLOW:
            return not_allowed(_ALLOW[path])
        return error_reply(404, "not found")

    def _browser_session(self, request: Request) -> Optional[str]:
        """The web session id the request's cookie names, if it sent one."""
        return cookie_value(request.cookie, self.cookie_name)

    def _live(self, web_id: Optional[str]) -> Optional[_WebSession]:
        """The web session, if it is still signed in (its JWT unexpired, session open)."""
        if web_id is None:
            return None
        with self._lock:
            web = self._web.get(web_id)
        if web is None or not self._auth.live(web.claims):
            return None
        return web

    def _forget(self, reply: Reply, web_id: Optional[str]) -> Reply:
        """Drop the web session and tell the browser to drop its cookie."""
        if web_id is None:
            return reply
        with self._lock:
            self._web.pop(web_id, None)
        reply.headers.append(
            (
                "Set-Cookie",
                f"{self.cookie_name}=; Path={COOKIE_PATH}; Max-Age=0; "
                "Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax",
            )
        )
        return reply

    def _grant_page(self, web_id: str, web: _WebSession, callback: str) -> Reply:
        grant = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            for key in [k for k, v in self._grants.items() if v.deadline <= now]:
                del self._grants[key]
            self._grants[grant] = _Grant(web_id, callback, now + GRANT_LIFETIME)
        return _signed_in_page(web.username, callback, grant)

    def _login_page(self, request: Request, callback: str) -> Reply:
        cb = _clean_callback(callback)
        if cb is None:
            return _bad_callback()
        web_id = self._browser_session(request)
        web = self._live(web_id)
        if web_id is not None and web is not None:
            return self._grant_page(web_id, web, cb)
        return self._forget(_login_form(cb), web_id)

    def _sign_in(self, request: Request, form: Dict[str, str]) -> Reply:
        cb = _clean_callback(form.get("callback", ""))
        if cb is None:
            return _bad_callback()
        username = form.get("username", "")
        user = self._accounts.sign_in(username, form.get("password", ""))
        if user is None:
            return _login_form(cb, "Invalid username or password", username)
        claims = self._auth.open_session(
            user.username, ip_address=request.client_ip, user_agent=request.user_agent
        )
        web_id = secrets.token_urlsafe(32)
        web = _WebSession(user.username, claims)
        replaced = self._browser_session(request)  # a new sign-in replaces the browser's
        with self._lock:
            if replaced is not None:
                self._web.pop(replaced, None)
            self._web[web_id] = web
            self._last = claims
        reply = self._grant_page(web_id, web, cb)
        reply.headers.append(
            (
                "Set-Cookie",
                f"{self.cookie_name}={web_id}; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax",
            )
        )
        return reply

    def _sign_out(self, request: Request, form: Dict[str, str]) -> Reply:
        # The web app's logout forgets the token in the browser; the session stays open.
        return self._forget(_login_form(form.get("callback", "")), self._browser_session(request))

    def _authorize(self, request: Request, form: Dict[str, str]) -> Reply:
        with self._lock:
            grant = self._grants.pop(form.get("grant", ""), None)
        if grant is None or grant.deadline <= time.time() or grant.callback != form.get("callback"):
            return _expired_grant()
        web = self._live(grant.web_id)
        if web is None:  # signed out, or its session ended, since the page was shown
            with self._lock:
                self._web.pop(grant.web_id, None)
            mine = self._browser_session(request) == grant.web_id
            return self._forget(_expired_grant(), grant.web_id if mine else None)
        reply = Reply(302, b"", user=web.username)
        reply.headers.append(("Location", grant.callback + "?token=" + self._jwt(web.claims)))
        reply.headers.append(("Cache-Control", "no-store"))
        reply.headers.append(("Referrer-Policy", "no-referrer"))
        return reply
