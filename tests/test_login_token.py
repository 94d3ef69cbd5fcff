"""rexec-login --token (docs/contract.md §5): validate, store, messages, exit codes."""

from __future__ import annotations

import json
import os

import pytest
from conftest import call, run_bin
from helpers import accounts


def test_api_token_login_stores_the_seed_fields(standin, config_path):
    token = standin.mint_api_token("johndoe")
    result = call("login", [f"--token={token}", f"--host={standin.url}"])
    assert result.code == 0, result
    assert result.out == "✓ Logged in as johndoe (johndoe@example.com)\n"
    assert result.err == ""
    data = json.loads(config_path.read_text())
    assert data == {
        "host": standin.url,
        "token": token,
        "username": "johndoe",
        "email": "johndoe@example.com",
        "tier": "pro",
    }
    assert standin.requests_to("/api/tokens/validate")


def test_jwt_login_is_validated_with_profile(standin, config_path):
    token = standin.mint_jwt("janedoe")
    result = call("login", ["--token", "-", "--host", standin.url], stdin=token.encode() + b"\n")
    assert result.code == 0, result
    assert result.out == "✓ Logged in as janedoe (jane@example.com)\n"
    assert json.loads(config_path.read_text())["token"] == token
    assert standin.requests_to("/api/profile") and not standin.requests_to("/api/tokens/validate")


def test_host_from_env_when_no_option(standin, config_path, monkeypatch):
    monkeypatch.setenv("REXEC_HOST", standin.url + "/")
    result = call("login", ["--token", "-"], stdin=standin.mint_api_token("johndoe").encode())
    assert result.code == 0, result
    assert json.loads(config_path.read_text())["host"] == standin.url


@pytest.mark.parametrize("token", ["rexec_short", "not-a-token", "", "a.b.c"])
def test_malformed_token_is_refused_before_any_request(standin, config_path, token):
    result = call("login", ["--token", "-", "--host", standin.url], stdin=token.encode())
    assert result.code == 1
    assert result.err.startswith("Invalid token: ") and result.err.count("\n") == 1
    assert "rexec_ followed by 32-64 letters or digits" in result.err
    assert standin.log == []
    assert not config_path.exists()


def test_revoked_token_is_invalid_and_nothing_is_stored(standin, config_path):
    token = standin.mint_api_token("johndoe")
    standin.revoke(token)
    result = call("login", ["--token", "-", "--host", standin.url], stdin=token.encode())
    assert (result.code, result.err) == (1, "Invalid token: invalid token\n")
    assert not config_path.exists()


@pytest.mark.parametrize("fault", ["fail", "malformed", "drop"])
def test_service_faults_exit_3_with_one_line_and_config_untouched(standin, config_path, fault):
    first = standin.mint_api_token("janedoe")
    assert call("login", ["--token", "-", "--host", standin.url], stdin=first.encode()).code == 0
    before = config_path.read_bytes()
    getattr(standin, f"{fault}_next")(10)
    result = call(
        "login",
        ["--token", "-", "--host", standin.url],
        stdin=standin.mint_api_token("johndoe").encode(),
    )
    assert result.code == 3 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert config_path.read_bytes() == before


def test_plain_http_remote_host_is_a_usage_error(config_path):
    result = call(
        "login", ["--token", "-", "--host", "http://rexec.example.com"], stdin=b"rexec_" + b"a" * 64
    )
    assert result.code == 2 and "REXEC_ALLOW_INSECURE_HTTP" in result.err
    assert not config_path.exists()


def test_rexec_token_value_is_never_written(standin, config_path, monkeypatch):
    token = standin.mint_api_token("johndoe")
    monkeypatch.setenv("REXEC_TOKEN", token)
    result = call("login", ["--token", "-", "--host", standin.url], stdin=token.encode())
    assert result.code == 0
    assert "never written to disk" in result.err
    assert not config_path.exists() or token not in config_path.read_text()


def test_login_over_a_corrupted_file_backs_it_up(standin, config_path):
    config_path.parent.mkdir(mode=0o700)
    config_path.write_text("{oops")
    result = call(
        "login",
        ["--token", "-", "--host", standin.url],
        stdin=standin.mint_api_token("johndoe").encode(),
    )
    assert result.code == 0, result
    backups = [p for p in config_path.parent.iterdir() if ".corrupt-" in p.name]
    assert len(backups) == 1 and backups[0].read_text() == "{oops"
    assert str(backups[0]) in result.err
    assert json.loads(config_path.read_text())["username"] == "johndoe"


def test_second_login_to_another_host_keeps_the_first_as_an_account(standin, config_path):
    from rexec_credential.testing import StandIn

    first = standin.mint_api_token("johndoe")
    assert call("login", ["--token", "-", "--host", standin.url], stdin=first.encode()).code == 0
    with StandIn() as other:
        second = other.mint_api_token("janedoe")
        assert call("login", ["--token", "-", "--host", other.url], stdin=second.encode()).code == 0
        data = json.loads(config_path.read_text())
        assert data == {
            "host": other.url,
            "token": second,
            "username": "janedoe",
            "email": "jane@example.com",
            "tier": "free",
        }
        assert [(a["host"], a["username"], a["token"]) for a in accounts(config_path.parent)] == [
            (other.url, "janedoe", second),
            (standin.url, "johndoe", first),
        ]


def test_installed_executable_reads_token_from_stdin(standin, config_path):
    token = standin.mint_api_token("johndoe")
    result = run_bin("rexec-login", "--token", "-", "--host", standin.url, stdin=token)
    assert result.code == 0, result
    assert result.out == "✓ Logged in as johndoe (johndoe@example.com)\n"
    assert oct(os.stat(config_path).st_mode & 0o777) == "0o600"


# -- a name that merely starts with 127. is not loopback --------------------------------------

RESOLVER_HOOK = """
import socket
_real = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):  # *.evil.example resolves to 127.0.0.1, as DNS could
    if isinstance(host, str) and host.endswith(".evil.example"):
        host = "127.0.0.1"
    return _real(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
"""


@pytest.fixture
def listener():
    """A raw loopback listener that records every byte any client sends it."""
    import socket
    import threading

    received: list = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    received.append(conn.recv(65536))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join(2)
    server.close()


@pytest.mark.parametrize("allow", [False, True], ids=["refused", "control-allowed"])
def test_no_bearer_leaves_over_plain_http_to_a_name_resolving_to_loopback(
    tmp_path, listener, config_path, allow
):
    port, received = listener
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RESOLVER_HOOK)
    env = dict(os.environ, PYTHONPATH=str(hook))
    if allow:  # the control: the name really reaches the listener when plain http is allowed
        env["REXEC_ALLOW_INSECURE_HTTP"] = "1"
    result = run_bin(
        "rexec-login",
        "--token",
        "-",
        "--host",
        f"http://127.0.0.1.evil.example:{port}",
        stdin="rexec_" + "a" * 64,
        env=env,
    )
    if allow:
        assert result.code == 3, result
        assert any(b"Authorization: Bearer rexec_" in chunk for chunk in received)
    else:
        assert result.code == 2, result
        assert "refusing to send a token over plain http" in result.err
        assert received == []
    assert not config_path.exists()
