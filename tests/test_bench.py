"""bench/credential_get.py runs and reports (its timings are not asserted here)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "bench" / "credential_get.py"


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_bench_reports_medians_and_ratios():
    proc = bench("--runs", "2", "--warmup", "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert "2 interleaved runs each" in out
    for name in (
        "rexec-credential get (1 stored)",
        "rexec-credential get (100 stored)",
        "rexec-credential get (10,000 stored)",
        'python -c "import json"',
        "git credential-store get",
    ):
        assert name in out
    assert "rexec-credential get / import json floor = " in out and "target 1.3x" in out
    assert "get with 10,000 stored / get with 1 = " in out and "target 2.0x" in out


def test_bench_rejects_a_zero_run_count():
    proc = bench("--runs", "0")
    assert proc.returncode == 2 and "--runs" in proc.stderr


def test_bench_fails_when_the_helper_does_not_answer(tmp_path):
    fake = tmp_path / "fake-helper"
    fake.write_text("#!/bin/sh\ncat >/dev/null\nexit 0\n")
    fake.chmod(0o755)
    proc = bench("--runs", "1", "--helper", str(fake))
    assert proc.returncode == 1 and "did not answer" in proc.stderr
