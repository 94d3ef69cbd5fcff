"""Shared fixtures: a clean world per test, in-process and subprocess runners, the stand-in."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
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
    assert not service.errors, "the stand-in failed:\n" + "\n".join(service.errors)


@pytest.fixture
def git_world(tmp_path, home) -> dict:
    """An environment for git: no prompt, no askpass, an identity for commits."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_ASKPASS", "DISPLAY")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="T",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="T",
        GIT_COMMITTER_EMAIL="t@example.com",
        GIT_CEILING_DIRECTORIES=str(tmp_path),
    )
    return env


@pytest.fixture
def git_server(tmp_path, standin, git_world):
    """A smart-HTTP git server (tests/githttp.py) serving `repo.git` with one commit, which
    takes a Basic password only if the stand-in accepts it as a token."""
    from githttp import GitHTTPServer

    root = tmp_path / "srv"
    root.mkdir()
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", str(root / "repo.git")],
        check=True,
        env=git_world,
    )
    seed = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True, env=git_world)
    (seed / "README").write_text("hello\n")
    for args in (
        ["add", "README"],
        ["commit", "-q", "-m", "first"],
        ["push", "-q", str(root / "repo.git"), "main"],
    ):
        subprocess.run(["git", *args], cwd=seed, check=True, env=git_world, capture_output=True)
    with GitHTTPServer(str(root), standin.url) as srv:
        yield srv


def call(
    command: str, argv: list, stdin: bytes = b"", env: dict | None = None, **ctx_options
) -> Result:
    """Run a command in-process through cli.main with a Context built for the test.

    Its wall clock, unless given, reads time.time when called, so that freezegun's
    freeze_time reaches the command (Context's own default is bound once, at import)."""
    ctx_options.setdefault("clock", lambda: time.time())
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


def run_bin(
    name: str, *args: str, stdin: bytes | str = b"", env: dict | None = None, timeout: float = 60
) -> Result:
    """Run an installed executable as a subprocess."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [str(BIN_DIR / name), *args],
        input=data,
        capture_output=True,
        env=dict(os.environ if env is None else env),
        timeout=timeout,
    )
    return Result(
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        proc.returncode,
    )


def pytest_addoption(parser):
    parser.addoption(
        "--full", action="store_true", help="stress suite: run the big numbers the README quotes"
    )


def pytest_configure(config):
    # Read by tests/stress at import time, where round counts are fixed.
    if config.getoption("--full"):
        os.environ["REXEC_STRESS_FULL"] = "1"


def pytest_collection_modifyitems(config, items):
    """Everything under tests/stress carries the `stress` marker."""
    for item in items:
        if "stress" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.stress)
