"""Every command that talks to the service, against every fault: exit 3, one line, nothing lost.

The installed executables run as subprocesses; a read timeout (30 s in production) is
exercised in-process with the timeout shortened, so the suite stays fast.
"""

from __future__ import annotations

import socket
import time

import pytest
from conftest import call, run_bin

FAULTS = ["fail", "malformed", "drop", "refused"]


def free_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def logged_in(standin, config_path):
    token = standin.mint_api_token("janedoe")
    assert run_bin("rexec-login", "--token", "-", "--host", standin.url, stdin=token).code == 0
    return config_path.read_bytes()


def arrange(standin, fault: str) -> str:
    """Inject the fault; return the host URL the command should use."""
    if fault == "refused":
        return free_port_url()
    getattr(standin, f"{fault}_next")(100)
    return standin.url


def check(result, standin, fault, config_path, before):
    assert result.code == 3, result
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert config_path.read_bytes() == before
    retried = {"fail": 3, "drop": 3, "malformed": 1, "refused": 0}[fault]
    assert len(api_calls(standin)) == retried  # retries are visible and bounded


def api_calls(standin) -> list:
    return [e for e in standin.log if e["path"].startswith("/api/")]


@pytest.mark.parametrize("fault", FAULTS)
def test_login_token_under_fault(standin, config_path, logged_in, fault):
    standin.clear_log()
    host = arrange(standin, fault)
    result = run_bin("rexec-login", "--token", "-", "--host", host,
                     stdin=standin.mint_api_token("johndoe"))
    check(result, standin, fault, config_path, logged_in)


@pytest.mark.parametrize("fault", FAULTS)
def test_whoami_under_fault(standin, config_path, logged_in, fault, monkeypatch):
    standin.clear_log()
    host = arrange(standin, fault)
    result = run_bin("rexec-whoami", "--host", host)
    if fault == "refused":
        # The stored token is bound to its host: with another host there is none to send.
        assert result.code == 1 and "Not logged in" in result.err
        monkeypatch.setenv("REXEC_TOKEN", standin.mint_api_token("johndoe"))
        result = run_bin("rexec-whoami", "--host", host)
    check(result, standin, fault, config_path, logged_in)


@pytest.mark.parametrize("command, argv", [
    ("login", ["--token", "-"]),
    ("whoami", []),
])
def test_delay_past_the_read_timeout(standin, config_path, logged_in, monkeypatch, command, argv):
    monkeypatch.setattr("rexec_credential.api.READ_TIMEOUT", 0.2)
    monkeypatch.setattr("rexec_credential.api.BACKOFF", (0.01, 0.01))
    standin.clear_log()
    standin.delay_next(100, 1.0)
    result = call(command, [*argv, "--host", standin.url],
                  stdin=standin.mint_api_token("johndoe").encode())
    assert result.code == 3 and "did not answer in time" in result.err
    assert result.err.count("\n") == 1
    assert config_path.read_bytes() == logged_in
    deadline = time.monotonic() + 5  # the stand-in logs a delayed request when it answers
    while len(api_calls(standin)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(api_calls(standin)) == 3
