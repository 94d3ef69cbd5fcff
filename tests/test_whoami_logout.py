"""rexec-whoami and rexec-logout (docs/contract.md §5)."""

from __future__ import annotations

import os
import time

import pytest
from conftest import call, run_bin
from helpers import login_with_token


@pytest.fixture
def logged_in(standin, config_path):
    token = standin.mint_api_token("johndoe")
    login_with_token(standin.url, token)
    return token


def test_whoami_prints_the_seed_block_with_role_for_admins(standin, logged_in):
    result = call("whoami", [])
    assert result.code == 0, result
    assert result.out == (
        "User Profile\n"
        "─────────────────────────────\n"
        "  Username: johndoe\n"
        "  Email:    johndoe@example.com\n"
        "  Tier:     pro\n"
        "  Role:     Admin\n"
        f"  Host:     {standin.url}\n"
        "  Token:    API token from the config file, no expiry\n"
    )
    assert logged_in not in result.out + result.err


def test_whoami_has_no_role_line_for_other_users_and_shows_jwt_expiry(standin, monkeypatch):
    token = standin.mint_jwt("janedoe", exp=4102444800)
    monkeypatch.setenv("REXEC_TOKEN", token)
    monkeypatch.setenv("REXEC_HOST", standin.url)
    result = call("whoami", [])
    assert result.code == 0, result
    assert "Role:" not in result.out
    assert "  Token:    JWT from REXEC_TOKEN, expires 2100-01-01 00:00:00 UTC\n" in result.out


def test_whoami_porcelain(standin, logged_in):
    result = call("whoami", ["--porcelain"])
    assert result.out.splitlines() == [
        "username=johndoe",
        "email=johndoe@example.com",
        "tier=pro",
        "role=admin",
        f"host={standin.url}",
        "token_source=config",
        "token_kind=api",
        "token_expires=",
        "token_name=",
    ]


def test_whoami_not_logged_in():
    result = call("whoami", [])
    assert (result.code, result.out, result.err) == (
        1,
        "",
        "Not logged in. Run 'rexec-login' first.\n",
    )


def test_whoami_rejected_token_gives_the_remedy(standin, logged_in):
    standin.revoke(logged_in)
    result = call("whoami", [])
    assert (result.code, result.err) == (
        1,
        "Error: Invalid token: Invalid or expired token. Run 'rexec-login' to log in again.\n",
    )


def test_whoami_rejected_env_token_says_it_came_from_rexec_token(standin, monkeypatch):
    token = standin.mint_api_token("janedoe")
    standin.revoke(token)
    monkeypatch.setenv("REXEC_TOKEN", token)
    monkeypatch.setenv("REXEC_HOST", standin.url)
    result = call("whoami", [])
    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err.startswith("Error: Invalid token: Invalid or expired token")
    assert "REXEC_TOKEN" in result.err and "rexec-login" in result.err
    assert token not in result.err


def test_whoami_not_logged_in_to_the_host_rexec_host_names(monkeypatch):
    monkeypatch.setenv("REXEC_HOST", "https://Staging.Example.com/")
    result = call("whoami", [])
    assert (result.code, result.out, result.err) == (
        1,
        "",
        "Not logged in to https://staging.example.com. Run 'rexec-login' first.\n",
    )


def test_whoami_service_down_exits_3(standin, logged_in):
    standin.drop_next(10)
    result = call("whoami", [])
    assert result.code == 3 and result.err.count("\n") == 1


def test_env_token_wins_over_config(standin, logged_in, monkeypatch):
    monkeypatch.setenv("REXEC_TOKEN", standin.mint_api_token("janedoe"))
    result = call("whoami", ["--porcelain"])
    assert "username=janedoe" in result.out and "token_source=env" in result.out


def test_config_token_is_not_sent_to_another_host(standin, logged_in, monkeypatch):
    from rexec_credential.testing import StandIn

    with StandIn() as other:
        monkeypatch.setenv("REXEC_HOST", other.url)
        result = call("whoami", [])
        assert result.code == 1 and "Not logged in" in result.err
        assert other.log == []


def test_option_wins_over_env_host(standin, logged_in, monkeypatch):
    monkeypatch.setenv("REXEC_HOST", "https://elsewhere.example")
    result = call("whoami", ["--porcelain", f"--host={standin.url}"])
    assert result.code == 0 and f"host={standin.url}" in result.out


def test_whoami_on_corrupted_config_exits_4_with_remedy(config_path):
    config_path.parent.mkdir(mode=0o700)
    config_path.write_text("][")
    config_path.chmod(0o600)
    result = call("whoami", [])
    assert result.code == 4
    assert result.err == (
        f"configuration file {config_path} is corrupted; run 'rexec-logout' "
        "to remove it, then 'rexec-login'\n"
    )
    assert config_path.read_text() == "]["


def test_logout_removes_the_file_and_is_idempotent(standin, logged_in, config_path):
    first = call("logout", [])
    assert first.code == 0
    assert first.out == f"✓ Logged out johndoe (johndoe@example.com) on {standin.url}\n"
    assert first.err == (
        f"note: the API token of johndoe stays valid until you revoke it at "
        f"{standin.url}/settings (API Tokens)\n"
    )
    assert not config_path.exists()
    assert logged_in not in (config_path.parent / "credentials.json").read_text()
    second = call("logout", [])
    assert (second.code, second.out) == (0, "✓ Logged out\n")


def test_logout_removes_a_corrupted_file(config_path):
    config_path.parent.mkdir(mode=0o700)
    config_path.write_text("\x00garbage")
    assert call("logout", []).code == 0
    assert not config_path.exists()


def test_logout_mentions_a_remaining_rexec_token(monkeypatch):
    monkeypatch.setenv("REXEC_TOKEN", "rexec_" + "a" * 64)
    result = call("logout", [])
    assert result.code == 0 and "REXEC_TOKEN is still set" in result.err
    assert "rexec_aaaa" not in result.err


def test_installed_whoami_and_logout(standin, logged_in, config_path):
    who = run_bin("rexec-whoami", "--porcelain")
    assert who.code == 0 and "username=johndoe" in who.out
    out = run_bin("rexec-logout")
    assert out.code == 0 and not config_path.exists()
    again = run_bin("rexec-whoami")
    assert again.code == 1 and again.err == "Not logged in. Run 'rexec-login' first.\n"


def test_colour_only_on_a_terminal_without_no_color(standin, logged_in):
    plain = call("logout", [], stdout_is_tty=False)
    assert "\033[" not in plain.out
    coloured = call("logout", [], stdout_is_tty=True)
    assert "\033[32m✓\033[0m Logged out" in coloured.out
    no_colour = call("logout", [], env={**os.environ, "NO_COLOR": "1"}, stdout_is_tty=True)
    assert "\033[" not in no_colour.out


def test_an_expiry_beyond_what_the_clock_can_show_is_shown_as_a_number(standin, config_path):
    token = standin.mint_jwt("johndoe", exp=999999999999999999)
    login_with_token(standin.url, token)
    result = call("whoami", [])
    assert result.code == 0, result
    assert "expires at Unix time 999999999999999999" in result.out


def test_token_expires_is_the_tokens_own_not_what_git_stored(standin, config_path):
    """git may store another expiry with the token (it is get's business, not whoami's)."""
    exp = int(time.time()) + 30 * 86400
    token = standin.mint_jwt("johndoe", exp=exp)
    login_with_token(standin.url, token)
    stored = call(
        "credential",
        ["store"],
        stdin=(
            f"protocol=http\nhost={standin.url.split('//')[1]}\nusername=johndoe\n"
            f"password={token}\npassword_expiry_utc={exp + 5000}\n"
        ).encode(),
    )
    assert stored.code == 0
    result = call("whoami", ["--porcelain"])
    assert f"token_expires={exp}\n" in result.out, result
    got = call("credential", ["get"], stdin=b"")
    assert f"password_expiry_utc={exp + 5000}\n" in got.out, got
