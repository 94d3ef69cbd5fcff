"""What a person pastes while a browser login waits: the callback address, or a token. Pure.

On a remote shell the browser cannot reach this machine's loopback interface, so the
person pastes the address the browser ended on (checked as if the request had arrived:
this login's one-time path, a `token` parameter) or the token itself.
"""

from __future__ import annotations

from urllib.parse import parse_qs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional, Tuple

    Pasted = Tuple[Optional[str], Optional[str]]  # (token, None) or (None, why it was refused)

WRONG_ADDRESS = "That is not this login's callback address; still waiting."
NO_TOKEN = "That address carries no token; still waiting."


def token_from_query(query: str) -> str | None:
    """The `token` parameter of a query string, None when absent or empty."""
    values = parse_qs(query, keep_blank_values=True).get("token") or [""]
    return values[0] or None


def parse_pasted(text: str, is_callback_path: Callable[[str], bool]) -> Pasted:
    """A pasted callback address or bare token → (token, None), or (None, why not).

    A bare token (no '/', '?' or '=') is returned as it is; an address must name this
    login's callback path (`is_callback_path`) and carry a token.
    """
    text = text.strip()
    if not text:
        return None, NO_TOKEN
    if not any(c in text for c in "/?="):
        return text, None
    rest = text.split("://", 1)[1] if "://" in text else text
    slash = rest.find("/")
    target = rest[slash:] if slash >= 0 else ""
    path, _, query = target.split("#", 1)[0].partition("?")
    if not is_callback_path(path):
        return None, WRONG_ADDRESS
    token = token_from_query(query)
    return (token, None) if token else (None, NO_TOKEN)
