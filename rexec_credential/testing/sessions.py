"""Sign-in sessions behind the stand-in's JWTs: their records, revocation and the screen lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .messages import iso_time

SESSION_REVOKED = "session_revoked"
SESSION_LOCKED = "session_locked"
SESSION_UNKNOWN = "session_unknown"


@dataclass
class Session:
    """One sign-in session; each JWT the stand-in issues names its own by the ``sid`` claim."""

    id: str
    username: str
    created_at: str
    last_seen_at: str
    ip_address: str
    user_agent: str
    revoked_at: Optional[str] = None
    revoked_reason: Optional[str] = None
    locked: bool = False

    def record(self, current: bool = False) -> Dict[str, Any]:
        """The session as GET /api/sessions lists it."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "last_seen_at": self.last_seen_at,
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "revoked_at": self.revoked_at,
            "revoked_reason": self.revoked_reason,
            "is_current": current,
        }


class Sessions:
    """Every session the stand-in has opened, by id."""

    def __init__(self) -> None:
        """No sessions yet."""
        self._lock = threading.Lock()
        self._sessions: Dict[str, Session] = {}

    def open(self, session_id: str, username: str, ip_address: str, user_agent: str) -> None:
        """Record a new live session; it is not locked, even while the user's screen is."""
        now = iso_time()
        with self._lock:
            self._sessions[session_id] = Session(
                session_id, username, now, now, ip_address, user_agent
            )

    def owner(self, session_id: str) -> Optional[str]:
        """The username a session belongs to, or None if there is no such session."""
        with self._lock:
            session = self._sessions.get(session_id)
            return None if session is None else session.username

    def is_open(self, session_id: str) -> bool:
        """Whether the session exists and has not been revoked (a locked one is open)."""
        with self._lock:
            session = self._sessions.get(session_id)
            return session is not None and session.revoked_at is None

    def use(self, session_id: str, ip_address: str, user_agent: str) -> Optional[str]:
        """Admit a request naming the session and note it as last seen; else why not."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return SESSION_UNKNOWN
            if session.revoked_at is not None:
                return SESSION_REVOKED
            if session.locked:
                return SESSION_LOCKED
            session.last_seen_at = iso_time()
            session.ip_address = ip_address
            session.user_agent = user_agent
            return None

    def revoke(self, session_id: str, reason: str, username: Optional[str] = None) -> bool:
        """Revoke a session (of `username`, when given); False if there is no such session."""
        # Revoking a revoked session succeeds and keeps the first revocation's time and reason.
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or (username is not None and session.username != username):
                return False
            if session.revoked_at is None:
                session.revoked_at = iso_time()
                session.revoked_reason = reason
            return True

    def listing(self, username: str, current: Optional[str] = None) -> List[Dict[str, Any]]:
        """The user's sessions, oldest first, as the API lists them."""
        with self._lock:
            return [
                s.record(s.id == current) for s in self._sessions.values() if s.username == username
            ]

    def lock_screen(self, username: str) -> None:
        """Lock the user's screen: the sessions existing now answer 423 until unlocked."""
        with self._lock:
            for session in self._sessions.values():
                if session.username == username:
                    session.locked = True

    def unlock_screen(self, username: str) -> None:
        """Unlock the user's screen: every session locked by it works again."""
        with self._lock:
            for session in self._sessions.values():
                if session.username == username:
                    session.locked = False
