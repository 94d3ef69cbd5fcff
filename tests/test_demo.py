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
        "Device token 'rexec-credential on ",
        "rexec-whoami --all",
        "✓ Renewed the token of janedoe on ",
        "✓ Switched to johndoe",
        "$ REXEC_TOKEN=<janedoe's device token> rexec-whoami\n  Error: Invalid token",
        "$ REXEC_TOKEN=<the browser's session token> rexec-whoami\n  User Profile",
    ):
        assert shown in proc.stdout, shown
    assert "Traceback" not in proc.stdout + proc.stderr
