"""The stand-in's web pages: /settings and the /cli-login browser sign-in flow."""

from __future__ import annotations

import html
import secrets
import threading
import time
from typing import Dict, Optional, Tuple
from urllib.parse import parse_qs

from .accounts import Accounts
from .auth import Auth
from .messages import Reply, Request, error_reply, html_page, not_allowed

GRANT_LIFETIME = 600.0
_TITLE = "Rexec CLI login"
_ALLOW = {"/settings": "GET, HEAD", "/cli-login": "GET, HEAD, POST", "/cli-login/authorize": "POST"}


def _clean_callback(value: str) -> Optional[str]:
    """Any callback URL is accepted, but it must be sendable in a Location header."""
    if not value or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
        return None
    return value


def _form(body: bytes) -> Dict[str, str]:
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


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


class Pages:
    """Answers every request outside /api; holds the one-time grants of the login flow."""

    def __init__(self, accounts: Accounts, auth: Auth) -> None:
        """Sign in against these accounts; `cli_login_rejected` makes it issue unusable JWTs."""
        self.cli_login_rejected = False
        self._accounts = accounts
        self._auth = auth
        self._lock = threading.Lock()
        self._grants: Dict[str, Tuple[str, str, float]] = {}

    def handle(self, request: Request) -> Reply:
        """Answer one request for a page."""
        method, path = request.method, request.path
        if path == "/settings" and method in ("GET", "HEAD"):
            return _settings_page()
        if path == "/cli-login" and method in ("GET", "HEAD"):
            params = parse_qs(request.query, keep_blank_values=True)
            return _login_form((params.get("callback") or [""])[0])
        if path == "/cli-login" and method == "POST":
            return self._sign_in(_form(request.body))
        if path == "/cli-login/authorize" and method == "POST":
            return self._authorize(request, _form(request.body))
        if path in _ALLOW:
            return not_allowed(_ALLOW[path])
        return error_reply(404, "not found")

    def _sign_in(self, form: Dict[str, str]) -> Reply:
        cb = _clean_callback(form.get("callback", ""))
        if cb is None:
            return _bad_callback()
        username = form.get("username", "")
        user = self._accounts.sign_in(username, form.get("password", ""))
        if user is None:
            return _login_form(cb, "Invalid username or password", username)
        grant = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            for key in [k for k, v in self._grants.items() if v[2] <= now]:
                del self._grants[key]
            self._grants[grant] = (user.username, cb, now + GRANT_LIFETIME)
        name = html.escape(user.username)
        return html_page(
            200,
            _TITLE,
            (
                f"<h1>{_TITLE}</h1>\n"
                f'<p id="signed-in">Signed in as {name}</p>\n'
                "<p>The Rexec command-line tool will receive a token for this account at:</p>\n"
                f"<p><code>{html.escape(cb)}</code></p>\n"
                '<form method="post" action="/cli-login/authorize">\n'
                f'<input type="hidden" name="callback" value="{html.escape(cb)}">\n'
                f'<input type="hidden" name="grant" value="{html.escape(grant)}">\n'
                '<button type="submit" id="authorize">Authorize CLI access</button>\n'
                "</form>"
            ),
            user=user.username,
        )

    def _authorize(self, request: Request, form: Dict[str, str]) -> Reply:
        with self._lock:
            entry = self._grants.pop(form.get("grant", ""), None)
        if entry is None or entry[2] <= time.time() or entry[1] != form.get("callback"):
            return html_page(
                400,
                _TITLE,
                (
                    f"<h1>{_TITLE}</h1>\n"
                    '<p class="error">This sign-in has expired or was already used. '
                    "Start again from the command line.</p>"
                ),
            )
        username, callback, _ = entry
        token = self._auth.issue_jwt(
            username,
            ip_address=request.client_ip,
            user_agent=request.user_agent,
            foreign=self.cli_login_rejected,
        )
        reply = Reply(302, b"", user=username)
        reply.headers.append(("Location", callback + "?token=" + token))
        reply.headers.append(("Cache-Control", "no-store"))
        reply.headers.append(("Referrer-Policy", "no-referrer"))
        return reply
