"""A scripted "person at a browser" for the stand-in's /cli-login page (demos and tests).

    python -m rexec_credential.testing.scripted_browser [--user U] [--password P]
        [--cookie-jar FILE] URL

GETs the login page, posts its sign-in form, posts the "Authorize CLI access" form and
follows the redirect to the callback, like someone clicking through it; prints nothing
and exits 0 (1, with one line on stderr, if the pages are not what it expects).

`authorize()` and `visit()` are a fresh browser each call (no cookies: it always signs
in). `ScriptedBrowser` is one browser across several logins: it keeps its cookies, so
while its web session lives the page skips the sign-in form and the CLI gets the same
JWT every time. `--cookie-jar FILE` does the same across runs of this module (the file
holds the browser's cookies between them).

To have `rexec-login` hand it the URL through Python's webbrowser module, set BROWSER to
`browser_command()`: webbrowser treats a BROWSER entry containing `%s` as a command line
(split with shlex, `%s` replaced by the URL) and waits for it, so give the interpreter's
full path rather than relying on PATH. Standard library only; no proxies (loopback).
"""

from __future__ import annotations

import argparse
import html
import http.cookiejar
import os
import re
import shlex
import sys
import urllib.error
import urllib.request
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

USER = "johndoe"
PASSWORD = "hunter2"  # the stand-in's demo account  # noqa: S105
TIMEOUT = 30.0


SIGN_IN = "/cli-login"
AUTHORIZE = "/cli-login/authorize"
SIGN_OUT = "/cli-login/sign-out"
_SIGNED_IN = re.compile(r'<p id="signed-in">Signed in as ([^<]*)</p>')


def browser_command(
    user: str = USER, password: str = PASSWORD, cookie_jar: Optional[str] = None
) -> str:
    """A BROWSER value that runs this module with this interpreter (one browser if cookie_jar)."""
    words = [sys.executable, "-m", __name__]
    if (user, password) != (USER, PASSWORD):
        words += ["--user", user, "--password", password]
    if cookie_jar is not None:
        words += ["--cookie-jar", os.path.abspath(cookie_jar)]
    return " ".join(shlex.quote(word) for word in words) + " %s"


class _Forms(HTMLParser):
    """Collects each form's action and its inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: List[Tuple[str, Dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.forms.append((found.get("action") or "", {}))
        elif tag == "input" and self.forms and found.get("name"):
            self.forms[-1][1][found["name"] or ""] = found.get("value") or ""


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # let the 302 surface as an HTTPError carrying Location


def _opener(
    follow: bool, cookies: Optional[http.cookiejar.CookieJar] = None
) -> urllib.request.OpenerDirector:
    handlers: List[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if cookies is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(cookies))
    if not follow:
        handlers.append(_KeepRedirects())
    return urllib.request.build_opener(*handlers)


def _visit(
    url: str,
    form: Optional[Dict[str, str]],
    follow: bool,
    cookies: Optional[http.cookiejar.CookieJar],
) -> Tuple[int, str, str]:
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data)  # noqa: S310 (http on loopback)
    try:
        with _opener(follow, cookies).open(request, timeout=TIMEOUT) as response:
            return response.status, response.read().decode("utf-8", "replace"), ""
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        return exc.code, body, exc.headers.get("Location") or ""


def visit(
    url: str, form: Optional[Dict[str, str]] = None, follow: bool = True
) -> Tuple[int, str, str]:
    """GET (or POST a form to) url: (status, body, Location) whatever the status (no cookies)."""
    return _visit(url, form, follow, None)


def _forms(body: str) -> List[Tuple[str, Dict[str, str]]]:
    parser = _Forms()
    parser.feed(body)
    return parser.forms


def _has_form(body: str, action: str) -> bool:
    return any(found.split("?")[0].endswith(action) for found, _ in _forms(body))


def _form(url: str, body: str, action: str) -> Tuple[str, Dict[str, str]]:
    for found_action, fields in _forms(body):
        if found_action.split("?")[0].endswith(action):
            return urljoin(url, found_action), fields
    raise RuntimeError(f"no {action} form on {url.split('?')[0]}")


def signed_in_as(body: str) -> Optional[str]:
    """The user a login page says the browser is signed in as, or None (the sign-in form)."""
    found = _SIGNED_IN.search(body)
    return html.unescape(found.group(1)) if found else None


class ScriptedBrowser:
    """One browser across several logins: it keeps its cookies (its web session) between calls."""

    def __init__(
        self,
        user: str = USER,
        password: str = PASSWORD,
        cookies: Optional[http.cookiejar.CookieJar] = None,
    ) -> None:
        """A browser whose person signs in as user/password when a page asks them to."""
        self.user, self.password = user, password
        self.cookies = http.cookiejar.CookieJar() if cookies is None else cookies

    def visit(
        self, url: str, form: Optional[Dict[str, str]] = None, follow: bool = True
    ) -> Tuple[int, str, str]:
        """GET (or POST a form to) url with this browser's cookies: (status, body, Location)."""
        return _visit(url, form, follow, self.cookies)

    def authorize(
        self, login_url: str, user: Optional[str] = None, password: Optional[str] = None
    ) -> str:
        """Click through the login page (signing in only if asked); return the callback address."""
        # With `user` given, a page signed in as someone else is signed out of first; without
        # it, whoever this browser is signed in as authorizes. Credentials asked for are
        # user/password, else the browser's own.
        _, page, _ = self.visit(login_url)
        shown = signed_in_as(page)
        if user is not None and shown is not None and shown != user:
            action, fields = _form(login_url, page, SIGN_OUT)
            _, page, _ = self.visit(action, fields)
        if _has_form(page, SIGN_IN):
            action, fields = _form(login_url, page, SIGN_IN)
            fields.update(
                username=self.user if user is None else user,
                password=self.password if password is None else password,
            )
            _, page, _ = self.visit(action, fields)
        action, fields = _form(login_url, page, AUTHORIZE)
        status, _, location = self.visit(action, fields, follow=False)
        if status not in (301, 302, 303, 307) or not location:
            raise RuntimeError(f"authorize answered HTTP {status} without a redirect")
        return location

    def sign_out(self, login_url: str) -> None:
        """Sign this browser out (the web app forgets its token; the session stays open)."""
        _, page, _ = self.visit(login_url)
        if signed_in_as(page) is not None:
            action, fields = _form(login_url, page, SIGN_OUT)
            self.visit(action, fields)


def authorize(login_url: str, user: str = USER, password: str = PASSWORD) -> str:
    """Sign in on the login page and authorize; return the callback address it redirects to."""
    return ScriptedBrowser(user, password).authorize(login_url)


def main(argv: Optional[List[str]] = None) -> int:
    """Click through the login at URL, then open the callback it redirects to."""
    parser = argparse.ArgumentParser(prog="python -m rexec_credential.testing.scripted_browser")
    parser.add_argument("--user", help=f"sign in as USER (default: {USER})")
    parser.add_argument("--password", help="with this password (default: the demo one)")
    parser.add_argument(
        "--cookie-jar",
        metavar="FILE",
        help="keep the browser's cookies in FILE between runs: one browser, signed in once",
    )
    parser.add_argument("url")
    args = parser.parse_args(argv)
    jar = None if args.cookie_jar is None else http.cookiejar.LWPCookieJar(args.cookie_jar)
    try:
        if jar is not None and os.path.exists(args.cookie_jar):
            jar.load(ignore_discard=True)
        browser = ScriptedBrowser(args.user or USER, args.password or PASSWORD, jar)
        location = browser.authorize(args.url, args.user, args.password)
        if jar is not None:
            os.close(os.open(args.cookie_jar, os.O_WRONLY | os.O_CREAT, 0o600))
            jar.save(ignore_discard=True)
        browser.visit(location)
    except (OSError, RuntimeError) as exc:  # http.cookiejar.LoadError is an OSError
        print(f"scripted browser: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
