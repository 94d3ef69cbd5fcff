"""The README's demo command runs the whole flow and reports success."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_every_step_successfully():
    proc = subprocess.run(
        [sys.executable, "-m", "rexec_credential.testing.demo"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo finished: every step did what it should" in proc.stdout
    for shown in (
        "Successfully logged in as janedoe",
        "rexec-whoami --all",
        "✓ Switched to johndoe",
        "(session_revoked)",
    ):
        assert shown in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
