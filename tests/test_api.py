"""The Rexec HTTP client against the real stand-in service over loopback."""

from __future__ import annotations

import socket

import pytest

from rexec_credential.api import Client
from rexec_credential.errors import AuthError, ServiceError, UsageError


def client(url: str) -> Client:
    return Client(url, {}, sleep=lambda s: None)


def test_validate_api_token_returns_the_user(standin):
    token = standin.mint_api_token("johndoe")
    user = client(standin.url).validate_api_token(token)
    assert (user["username"], user["email"], user["tier"]) == ("johndoe", "johndoe@example.com",
                                                                "pro")


@pytest.mark.parametrize("legacy", [False, True], ids=["nested-user", "legacy-flat"])
def test_profile_accepts_both_shapes(standin, legacy):
    standin.legacy_profile = legacy
    profile = client(standin.url).profile(standin.mint_jwt("janedoe"))
    assert profile["username"] == "janedoe" and profile["is_admin"] is False
    assert client(standin.url).profile(standin.mint_jwt("johndoe"))["is_admin"] is True


def test_sends_bearer_and_user_agent(standin):
    token = standin.mint_api_token("johndoe")
    client(standin.url).validate_api_token(token)
    entry = standin.log[-1]
    assert entry["auth"] == "api" and entry["user"] == "johndoe"


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda s: s.revoke(tok := s.mint_api_token("johndoe")) or tok, "token revoked"),
        (lambda s: "rexec_" + "0" * 64, "invalid token"),
    ],
    ids=["revoked", "unknown"],
)
def test_rejected_api_token_is_an_auth_error_with_the_server_reason(standin, make, reason):
    with pytest.raises(AuthError) as info:
        client(standin.url).validate_api_token(make(standin))
    assert info.value.message == f"Invalid token: {reason}"


def test_expired_jwt_is_an_auth_error(standin):
    with pytest.raises(AuthError, match="Invalid token: token is expired"):
        client(standin.url).profile(standin.mint_jwt("johndoe", exp=1000))


def test_5xx_is_retried_then_succeeds(standin):
    standin.fail_next(2, status=503)
    token = standin.mint_api_token("johndoe")
    assert client(standin.url).validate_api_token(token)["username"] == "johndoe"
    assert [e["status"] for e in standin.requests_to("/api/tokens/validate")] == [503, 503, 200]


@pytest.mark.parametrize("fault", ["fail", "malformed", "drop"])
def test_persistent_faults_are_service_errors_after_three_tries(standin, fault):
    getattr(standin, f"{fault}_next")(10)
    with pytest.raises(ServiceError) as info:
        client(standin.url).validate_api_token(standin.mint_api_token("johndoe"))
    assert info.value.exit_code == 3 and "\n" not in info.value.message
    tries = len(standin.requests_to("/api/tokens/validate"))
    assert tries == (1 if fault == "malformed" else 3)


def test_500_is_not_retried(standin):
    standin.fail_next(5, status=500)
    with pytest.raises(ServiceError, match="HTTP 500"):
        client(standin.url).profile(standin.mint_jwt("johndoe"))
    assert len(standin.requests_to("/api/profile")) == 1


def test_connection_refused_is_a_service_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ServiceError, match="connection refused"):
        client(f"http://127.0.0.1:{port}").profile("x.y.z")


def test_read_timeout_is_a_service_error(standin, monkeypatch):
    monkeypatch.setattr("rexec_credential.api.READ_TIMEOUT", 0.3)
    standin.delay_next(3, 2.0)
    with pytest.raises(ServiceError, match="did not answer in time"):
        client(standin.url).profile(standin.mint_jwt("johndoe"))


def test_plain_http_to_a_remote_host_is_refused_before_any_request():
    with pytest.raises(UsageError):
        Client("http://rexec.example.com", {})


def test_server_error_text_never_echoes_the_token(standin):
    token = standin.mint_api_token("johndoe")
    standin.revoke(token)
    with pytest.raises(AuthError) as info:
        client(standin.url).validate_api_token(token)
    assert token not in str(info.value)


def test_netrc_never_replaces_the_bearer_token(standin, home):
    (home / ".netrc").write_text("machine 127.0.0.1 login u password p\n")
    (home / ".netrc").chmod(0o600)
    token = standin.mint_api_token("johndoe")
    assert client(standin.url).validate_api_token(token)["username"] == "johndoe"
    assert standin.log[-1]["auth"] == "api"
