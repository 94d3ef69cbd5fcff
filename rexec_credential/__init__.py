"""rexec-credential: Rexec login and git credential helper. Imports nothing (hot path)."""

__version__ = "0.2.0"
