"""One exception tree; each class carries the exit status the contract gives it."""

from __future__ import annotations


class RexecError(Exception):
    """A failure a user or a peer program can cause: one line on stderr, an exit status."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthError(RexecError):
    """Not logged in, or a token that is malformed, invalid, expired or revoked."""

    exit_code = 1


class TokenRejected(AuthError):
    """The service refused a token; `reason` is its error text, already cleaned for display."""

    SESSION_REVOKED = "session_revoked"
    SESSION_LOCKED = "session_locked"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class UsageError(RexecError):
    """Bad command line or a refused host (plain http to a remote host)."""

    exit_code = 2


class ServiceError(RexecError):
    """The Rexec service is unreachable or answers garbage or 5xx."""

    exit_code = 3


class StorageError(RexecError):
    """The config file is corrupted, unreadable or unwritable."""

    exit_code = 4


class ProtocolError(RexecError):
    """Malformed credential-helper input from a peer program."""

    exit_code = 2
