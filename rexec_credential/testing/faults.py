"""The fault queue: injected errors, garbage, dropped connections, delays and echoed tokens."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http import HTTPStatus
from typing import Callable, List, Optional, Tuple, TypeVar, Union

from .auth import presented_token
from .messages import Reply, Request, json_reply

MALFORMED_BODY = b"<html><body><h1>502 Bad Gateway</h1>upstream sent garbage</body></html>\n"

FAIL = "fail"
MALFORMED = "malformed"
DROP = "drop"
ECHO_TOKEN = "echo_token"
DELAY = "delay"

_T = TypeVar("_T", bound=Union["_Pending", "_Delay"])


@dataclass(frozen=True)
class Only:
    """Which requests a fault waits for: this method and/or this path (None: any)."""

    method: Optional[str] = None
    path: Optional[str] = None

    def __post_init__(self) -> None:
        if self.path is not None and (not self.path.startswith("/") or "?" in self.path):
            raise ValueError("path must start with / and carry no query string")
        if self.method is not None:
            object.__setattr__(self, "method", self.method.upper())

    def matches(self, request: Request) -> bool:
        """Whether the request is one this fault waits for."""
        return (self.method is None or request.method == self.method) and (
            self.path is None or request.path == self.path
        )


ANY = Only()


@dataclass
class _Pending:
    kind: str
    remaining: int
    status: int = 0
    template: str = ""
    only: Only = ANY


@dataclass
class _Delay:
    remaining: int
    seconds: float
    only: Only = ANY


def _count(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError("n must be a non-negative integer")
    return n


def _first(queue: List[_T], request: Request) -> Optional[_T]:
    """Take one use of the first queued item the request matches (dropping it when used up)."""
    for index, item in enumerate(queue):
        if item.only.matches(request):
            item.remaining -= 1
            if item.remaining <= 0:
                queue.pop(index)
            return item
    return None


class FaultQueue:
    """Faults for the next API requests, taken in the order they were queued."""

    # Each fault may wait for one kind of request (`only`: a method and/or a path); the
    # requests it does not match pass it by, leaving it queued.

    def __init__(self) -> None:
        """Nothing pending."""
        self._lock = threading.Lock()
        self._faults: List[_Pending] = []
        self._delays: List[_Delay] = []

    def _queue(self, fault: _Pending) -> None:
        if _count(fault.remaining):
            with self._lock:
                self._faults.append(fault)

    def fail_next(self, n: int, status: int = 503, only: Only = ANY) -> None:
        """The next n API requests answer `status` with a JSON error body."""
        if not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._queue(_Pending(FAIL, n, status=int(status), only=only))

    def malformed_next(self, n: int, only: Only = ANY) -> None:
        """The next n API requests answer 200 with a body that is not JSON."""
        self._queue(_Pending(MALFORMED, n, only=only))

    def drop_next(self, n: int, only: Only = ANY) -> None:
        """The next n API requests are answered by closing the connection."""
        self._queue(_Pending(DROP, n, only=only))

    def echo_token_next(
        self,
        n: int,
        status: int = 401,
        template: str = "invalid token {token}",
        only: Only = ANY,
    ) -> None:
        """The next n API requests answer `status` with an error text quoting their token."""
        if int(status) != 200 and not 400 <= int(status) <= 599:
            raise ValueError("status must be 200 or an HTTP error status (400-599)")
        try:
            template.format(token="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"template must use only {{token}}: {exc}") from None
        self._queue(_Pending(ECHO_TOKEN, n, status=int(status), template=template, only=only))

    def delay_next(self, n: int, seconds: float, only: Only = ANY) -> None:
        """The next n API requests sleep `seconds` before answering."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        if _count(n):
            with self._lock:
                self._delays.append(_Delay(n, float(seconds), only))

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def _take(self, request: Request) -> Tuple[Optional[_Delay], Optional[_Pending]]:
        with self._lock:
            return _first(self._delays, request), _first(self._faults, request)

    def intercept(
        self, request: Request, wait: Callable[[float], object]
    ) -> Tuple[Optional[Reply], Optional[str]]:
        """Apply the faults due for one request: (faulty reply or None, names for the log)."""
        # Names as the log shows them: "delay", "fail", "delay+drop", ...; `wait` sleeps a delay.
        delay, fault = self._take(request)
        names: List[str] = []
        if delay is not None:
            names.append(DELAY)
            wait(delay.seconds)
        reply: Optional[Reply] = None
        if fault is not None:
            names.append(fault.kind)
            reply = self._reply(fault, request.authorization)
        return reply, "+".join(names) or None

    @staticmethod
    def _reply(fault: _Pending, authorization: Optional[str]) -> Reply:
        if fault.kind == FAIL:
            try:
                phrase = HTTPStatus(fault.status).phrase.lower()
            except ValueError:
                phrase = "injected fault"
            return json_reply(fault.status, {"error": phrase})
        if fault.kind == MALFORMED:
            return Reply(200, MALFORMED_BODY, "application/json")
        if fault.kind == ECHO_TOKEN:
            text = fault.template.format(token=presented_token(authorization))
            if fault.status == 200:
                return json_reply(200, {"valid": False, "error": text})
            return json_reply(fault.status, {"error": text})
        return Reply(0, drop=True)
