"""The request and reply records passed between the stand-in's HTTP handler and its routes."""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

LOOPBACK = "127.0.0.1"


def iso_time(at: Optional[float] = None) -> str:
    """A UTC time as the service writes it, e.g. 2026-12-01T10:00:00Z (default: now)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))


def go_time(ns: int, digits: int = 9) -> str:
    """A UTC instant (Unix nanoseconds) as Go's JSON writes it: RFC 3339, fraction trimmed."""
    # digits=9: a time.Now() of the Go server; digits=6: one read back from PostgreSQL,
    # which keeps microseconds (rounded). Go drops trailing zeros, and the dot with them.
    step = 10 ** (9 - digits)
    seconds, fraction = divmod((ns + step // 2) // step * step, 10**9)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


@dataclass(frozen=True)
class Request:
    """One HTTP request as the routes see it (path without query string)."""

    method: str
    path: str
    query: str = ""
    body: bytes = b""
    authorization: Optional[str] = None
    user_agent: str = ""
    client_ip: str = LOOPBACK
    cookie: str = ""


@dataclass
class Reply:
    """One HTTP answer, plus what the request log records about it."""

    status: int
    body: bytes = b""
    content_type: Optional[str] = None
    headers: List[Tuple[str, str]] = field(default_factory=list)
    user: Optional[str] = None
    fault: Optional[str] = None
    drop: bool = False


def json_reply(status: int, obj: Any, user: Optional[str] = None) -> Reply:
    """A JSON answer."""
    return Reply(status, json.dumps(obj).encode("utf-8"), "application/json", user=user)


def error_reply(status: int, message: str, user: Optional[str] = None) -> Reply:
    """A JSON answer {"error": message}."""
    return json_reply(status, {"error": message}, user=user)


def not_allowed(allow: str) -> Reply:
    """405 with its Allow header."""
    reply = error_reply(405, "method not allowed")
    reply.headers.append(("Allow", allow))
    return reply


def html_page(status: int, title: str, body_html: str, user: Optional[str] = None) -> Reply:
    """An HTML page (never cached) around `body_html`."""
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body_html}\n</body></html>\n"
    )
    reply = Reply(status, doc.encode("utf-8"), "text/html; charset=utf-8", user=user)
    reply.headers.append(("Cache-Control", "no-store"))
    return reply
