"""The page the callback server answers the browser with. Pure.

Self-contained (no external resource, nothing to leak the address to); its one script,
allowed by a Content-Security-Policy hash and nothing else, drops `?token=` from the
address bar. It cannot remove the entry the browser's saved history already holds (see
SECURITY.md).
"""

from __future__ import annotations

import base64
import hashlib
import html

FORGET_QUERY = 'history.replaceState(null, "", location.pathname);'
FORGET_QUERY_HASH = base64.b64encode(hashlib.sha256(FORGET_QUERY.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{FORGET_QUERY_HASH}'"
)


def page(title: str, message: str) -> bytes:
    """A minimal HTML page with a title and one paragraph."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><script>{FORGET_QUERY}</script></head>\n"
        '<body style="font-family: sans-serif; margin: 3em auto; max-width: 40em">\n'
        f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(message)}</p>\n</body></html>\n"
    ).encode()
