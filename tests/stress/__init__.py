"""The stress suite: `pytest tests/stress --full` runs the README's figures."""

from __future__ import annotations

import os


def rounds(full: int, ci: int) -> int:
    """How many rounds a stress test runs: `full` with --full, else `ci`."""
    return full if os.environ.get("REXEC_STRESS_FULL") == "1" else ci
