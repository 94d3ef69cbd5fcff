"""Shared fixtures: a clean world per test, in-process and subprocess runners, the stand-in."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rexec_credential import cli
from rexec_credential.context import Context

BIN_DIR = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


class Result:
    """What a command did: its stdout, stderr and exit status."""

    def __init__(self, out: str, err: str, code: int) -> None:
        self.out, self.err, self.code = out, err, code

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture(autouse=True)
def clean_world(tmp_path, monkeypatch):
    """HOME in tmp_path, no REXEC_* or proxy variables, loopback never proxied."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith(("REXEC_", "GIT_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)
    for name in ("BROWSER", "NO_COLOR", "XDG_CONFIG_HOME", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("PATH", f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    return home


@pytest.fixture
def home(clean_world) -> Path:
    """The test's HOME."""
    return clean_world


@pytest.fixture
def config_path(home) -> Path:
    """Where the config file lives for this test."""
    return home / ".rexec" / "config.json"


@pytest.fixture
def standin():
    """A running stand-in Rexec service on a free loopback port."""
    from rexec_credential.testing import StandIn

    with StandIn() as service:
        yield service


def call(command: str, argv: list, stdin: bytes = b"", env: dict | None = None,
         **ctx_options) -> Result:
    """Run a command in-process through cli.main with a Context built for the test."""
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(
        env=dict(os.environ if env is None else env),
        stdin=io.BytesIO(stdin),
        stdout=out,
        stderr=err,
        **ctx_options,
    )
    code = cli.main(command, argv, ctx)
    return Result(out.getvalue(), err.getvalue(), code)


def run_bin(name: str, *args: str, stdin: bytes | str = b"", env: dict | None = None,
            timeout: float = 60) -> Result:
    """Run an installed executable as a subprocess."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [str(BIN_DIR / name), *args], input=data, capture_output=True,
        env=dict(os.environ if env is None else env), timeout=timeout,
    )
    return Result(proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"),
                  proc.returncode)


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="stress suite: run the big numbers the README quotes")


def pytest_configure(config):
    # Read by tests/stress at import time, where round counts are fixed.
    if config.getoption("--full"):
        os.environ["REXEC_STRESS_FULL"] = "1"
