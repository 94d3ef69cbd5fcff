"""A scripted "person at a browser" for the stand-in's /cli-login page (demos and tests).

    python -m rexec_credential.testing.scripted_browser [--user U] [--password P] URL

GETs the login page, posts its sign-in form, posts the "Authorize CLI access" form and
follows the redirect to the callback, like someone clicking through it; prints nothing
and exits 0 (1, with one line on stderr, if the pages are not what it expects).

To have `rexec-login` hand it the URL through Python's webbrowser module, set BROWSER to
`browser_command()`: webbrowser treats a BROWSER entry containing `%s` as a command line
(split with shlex, `%s` replaced by the URL) and waits for it, so give the interpreter's
full path rather than relying on PATH. Standard library only; no proxies (loopback).
"""

from __future__ import annotations

import argparse
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


def browser_command(user: str = USER, password: str = PASSWORD) -> str:
    """A BROWSER value that runs this module with this interpreter."""
    words = [sys.executable, "-m", __name__]
    if (user, password) != (USER, PASSWORD):
        words += ["--user", user, "--password", password]
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


def _opener(follow: bool) -> urllib.request.OpenerDirector:
    handlers: List[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if not follow:
        handlers.append(_KeepRedirects())
    return urllib.request.build_opener(*handlers)


def visit(
    url: str, form: Optional[Dict[str, str]] = None, follow: bool = True
) -> Tuple[int, str, str]:
    """GET (or POST a form to) url: (status, body, Location) whatever the status."""
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data)  # noqa: S310 (http on loopback)
    try:
        with _opener(follow).open(request, timeout=TIMEOUT) as response:
            return response.status, response.read().decode("utf-8", "replace"), ""
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        return exc.code, body, exc.headers.get("Location") or ""


def _form(url: str, body: str, action: str) -> Tuple[str, Dict[str, str]]:
    parser = _Forms()
    parser.feed(body)
    for found_action, fields in parser.forms:
        if found_action.split("?")[0].endswith(action):
            return urljoin(url, found_action), fields
    raise RuntimeError(f"no {action} form on {url.split('?')[0]}")


def authorize(login_url: str, user: str = USER, password: str = PASSWORD) -> str:
    """Sign in on the login page and authorize; return the callback address it redirects to."""
    _, page, _ = visit(login_url)
    action, fields = _form(login_url, page, "/cli-login")
    fields.update(username=user, password=password)
    _, page, _ = visit(action, fields)
    action, fields = _form(login_url, page, "/cli-login/authorize")
    status, _, location = visit(action, fields, follow=False)
    if status not in (301, 302, 303, 307) or not location:
        raise RuntimeError(f"authorize answered HTTP {status} without a redirect")
    return location


def main(argv: Optional[List[str]] = None) -> int:
    """Click through the login at URL, then open the callback it redirects to."""
    parser = argparse.ArgumentParser(prog="python -m rexec_credential.testing.scripted_browser")
    parser.add_argument("--user", default=USER)
    parser.add_argument("--password", default=PASSWORD)
    parser.add_argument("url")
    args = parser.parse_args(argv)
    try:
        visit(authorize(args.url, args.user, args.password))
    except (OSError, RuntimeError) as exc:
        print(f"scripted browser: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
