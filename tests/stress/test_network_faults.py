"""Every command that talks to the service, against every fault: exit 3, one line, nothing lost.

login and whoami give up with exit 3 and one line, leaving config.json and
credentials.json byte for byte. logout of a login made in the browser (a JWT) asks the
service to end its session; under a fault it removes the login here all the same (exit 0)
and says in one line where to end the session by hand. Retries are visible in the
service's log and bounded (3 tries for 5xx and dropped connections, 1 for a malformed
answer or a read timeout).

The installed executables run as subprocesses; a read timeout (30 s in production) is
exercised in-process with the timeout shortened, so the suite stays fast.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from conftest import call, run_bin
from helpers import accounts, credentials, eventually

FAULTS = ["fail", "malformed", "drop", "refused"]


def free_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def snapshot(config_path) -> dict:
    """Both files' bytes (None for a file that is not there)."""
    directory = config_path.parent
    return {
        name: (directory / name).read_bytes() if (directory / name).exists() else None
        for name in ("config.json", "credentials.json")
    }


@pytest.fixture
def logged_in(standin, config_path):
    token = standin.mint_api_token("janedoe")
    assert run_bin("rexec-login", "--token", "-", "--host", standin.url, stdin=token).code == 0
    before = snapshot(config_path)
    assert None not in before.values()
    return before


def arrange(standin, fault: str) -> str:
    """Inject the fault; return the host URL the command should use."""
    if fault == "refused":
        return free_port_url()
    getattr(standin, f"{fault}_next")(100)
    return standin.url


def check(result, standin, fault, config_path, before):
    assert result.code == 3, result
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert snapshot(config_path) == before
    retried = {"fail": 3, "drop": 3, "malformed": 1, "refused": 0}[fault]
    assert len(api_calls(standin)) == retried  # retries are visible and bounded


def api_calls(standin) -> list:
    return [e for e in standin.log if e["path"].startswith("/api/")]


@pytest.mark.parametrize("fault", FAULTS)
def test_login_token_under_fault(standin, config_path, logged_in, fault):
    standin.clear_log()
    host = arrange(standin, fault)
    result = run_bin(
        "rexec-login", "--token", "-", "--host", host, stdin=standin.mint_api_token("johndoe")
    )
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


@pytest.mark.parametrize(
    "command, argv",
    [
        ("login", ["--token", "-"]),
        ("whoami", []),
    ],
)
def test_delay_past_the_read_timeout(standin, config_path, logged_in, monkeypatch, command, argv):
    monkeypatch.setattr("rexec_credential.api.READ_TIMEOUT", 0.2)
    monkeypatch.setattr("rexec_credential.api.BACKOFF", (0.01, 0.01))
    standin.clear_log()
    # Only the first request is held back: a retry would be answered at once and the command
    # would succeed. The held one is logged when the stand-in answers it, a second later.
    standin.delay_next(1, 1.0)
    result = call(
        command, [*argv, "--host", standin.url], stdin=standin.mint_api_token("johndoe").encode()
    )
    assert result.code == 3 and "did not answer in time" in result.err
    assert result.err.count("\n") == 1
    assert snapshot(config_path) == logged_in
    assert eventually(lambda: api_calls(standin))
    assert len(api_calls(standin)) == 1  # a read that timed out is not tried again


@pytest.mark.parametrize("kind", ["device", "session"])
@pytest.mark.parametrize("fault", FAULTS)
def test_logout_under_fault(standin, config_path, fault, kind):
    """A device-token login (revoked at logout), or a JWT login with --end-session, logged
    out while the service fails: exit 0, the login removed here all the same (config.json
    gone, its token gone from credentials.json, another login and a credential kept), one
    stderr line saying the token may still be valid and where to revoke it; the calls
    bounded as every other call."""
    from rexec_credential.testing import StandIn

    other = standin.mint_api_token("johndoe")  # a second login, which must stay
    assert run_bin("rexec-login", "--token", "-", "--host", standin.url, stdin=other).code == 0
    kept = "protocol=https\nhost=git.example.com\nusername=u\npassword=p\n"
    assert run_bin("rexec-credential", "store", stdin=kept).code == 0

    def login_janedoe(service) -> str:
        jwt = service.mint_jwt("janedoe")
        assert run_bin("rexec-login", "--token", "-", "--host", service.url, stdin=jwt).code == 0
        if kind == "device":  # the JWT login becomes a device-token login
            assert run_bin("rexec-login", "--renew").code == 0
        return str(json.loads(config_path.read_text())["token"])

    if fault == "refused":
        with StandIn() as gone:  # a service that has stopped since the login
            host, token = gone.url, login_janedoe(gone)
    else:
        host, token = standin.url, login_janedoe(standin)
        getattr(standin, f"{fault}_next")(100)
    standin.clear_log()
    argv = [] if kind == "device" else ["--end-session"]
    result = run_bin("rexec-logout", *argv)
    assert result.code == 0, result
    assert (
        result.out == f"✓ Logged out janedoe (jane@example.com) on {host} (1 other login remains)\n"
    ), result
    assert result.err.count("\n") == 1 and "Traceback" not in result.err, result
    what = "revoke the device token" if kind == "device" else "end the session"
    assert result.err.startswith(f"warning: could not {what} of janedoe"), result
    assert result.err.endswith(f"it may still be valid: revoke it at {host}/settings\n"), result
    assert token not in result.out + result.err
    assert not config_path.exists()
    assert token not in (config_path.parent / "credentials.json").read_text()
    assert [a["token"] for a in accounts(config_path.parent)] == [other]
    assert [c["host"] for c in credentials(config_path.parent)] == ["git.example.com"]
    retried = {"fail": 3, "drop": 3, "malformed": 1, "refused": 0}[fault]
    assert len(api_calls(standin)) == retried
    assert all(e["method"] == "DELETE" for e in api_calls(standin))


@pytest.fixture
def silent_service():
    """A loopback port that accepts connections and never answers a byte."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def test_a_service_that_never_answers_is_given_up_within_40_seconds(silent_service, monkeypatch):
    """The real timeouts (connect 5 s, read 30 s, not retried): both commands give up after
    about 30 s, inside the 40 s budget. Run together to spend the half minute once."""
    import subprocess

    from conftest import BIN_DIR

    monkeypatch.setenv("REXEC_TOKEN", "rexec_" + "a" * 64)
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [str(BIN_DIR / name), *argv, "--host", silent_service],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, argv in (("rexec-whoami", []), ("rexec-login", ["--token", "-"]))
    ]
    for proc in procs:
        proc.stdin.write("rexec_" + "b" * 64)
        proc.stdin.close()
    results = [(proc.stdout.read(), proc.stderr.read(), proc.wait(90))[:2] for proc in procs]
    elapsed = time.monotonic() - started
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 3, (out, err)
        assert "did not answer in time" in err and err.count("\n") == 1
    assert 29 < elapsed < 40, elapsed
