"""A stand-in of the Rexec service for tests and demos (standard library only)."""

from __future__ import annotations

from .service import StandIn, User

__all__ = ["StandIn", "User"]
