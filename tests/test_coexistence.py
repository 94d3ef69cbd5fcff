"""Living beside the Rexec CLI, which reads and rewrites ~/.rexec/config.json its own way
(tests/rexec_cli.py does exactly what it does): whatever it saves, nothing of ours is lost,
and a login it wrote is the active login like any other."""

from __future__ import annotations

import json

import pytest
import rexec_cli
from conftest import call
from helpers import NOW, accounts, jwt, login_with_token

HOST = "https://rexec.pipeops.io"
JOHN = "rexec_" + "1a" * 32
JANE = "rexec_" + "2b" * 32
STAGING = "https://staging.example.com"


def helper(op: str, *items: str, **kw):
    return call(
        "credential", [op], stdin="".join(f"{i}\n" for i in items).encode(), clock=lambda: NOW, **kw
    )


def get(host: str, username: str | None = None) -> dict:
    """What `rexec-credential get` answers for https://host (as a dict)."""
    items = ["protocol=https", f"host={host}"] + ([f"username={username}"] if username else [])
    result = helper("get", *items)
    assert (result.code, result.err) == (0, ""), result
    return dict(line.split("=", 1) for line in result.out.splitlines())


@pytest.fixture
def ours(standin, home):
    """Two logins of ours, git credentials with expiry and refresh token, then facts git
    stored for the active login; returns what `get` must keep answering."""
    john, jane = standin.mint_api_token("johndoe"), standin.mint_api_token("janedoe")
    for token in (john, jane):
        login_with_token(standin.url, token)
    host = standin.url.split("//")[1]
    stored = [
        (
            "protocol=https",
            "host=github.com",
            "username=octo",
            "password=gh-secret",
            "password_expiry_utc=4102444800",
            "oauth_refresh_token=gh-refresh",
        ),
        (
            "protocol=https",
            "host=git.example.com",
            "path=team/repo.git",
            "username=ci",
            "password=ci-secret",
        ),
        (
            "protocol=http",
            f"host={host}",
            "username=janedoe",
            f"password={jane}",
            "oauth_refresh_token=rexec-refresh",
            "password_expiry_utc=4102444800",
        ),
    ]
    for items in stored:
        assert helper("store", *items).code == 0
    return {"john": john, "jane": jane, "host": host}


def assert_nothing_lost(ours: dict) -> None:
    github = get("github.com")
    assert (github["password"], github["password_expiry_utc"], github["oauth_refresh_token"]) == (
        "gh-secret",
        "4102444800",
        "gh-refresh",
    )
    assert get("git.example.com")["password"] == "ci-secret"
    result = helper("get", "protocol=http", f"host={ours['host']}", "username=janedoe")
    jane = dict(line.split("=", 1) for line in result.out.splitlines())
    assert (jane["password"], jane["oauth_refresh_token"], jane["password_expiry_utc"]) == (
        ours["jane"],
        "rexec-refresh",
        "4102444800",
    )
    result = helper("get", "protocol=http", f"host={ours['host']}", "username=johndoe")
    assert f"password={ours['john']}\n" in result.out


@pytest.mark.parametrize("saves", [1, 2, 7])
def test_nothing_of_ours_is_lost_whatever_the_rexec_cli_saves(ours, home, saves):
    directory = str(home / ".rexec")
    for n in range(saves):
        if n % 3 == 0:
            rexec_cli.save(
                directory,
                host=HOST,
                token=f"rexec_{n:02d}" + "c" * 62,
                username=f"cli{n}",
                email="cli@example.com",
                tier="pro",
            )
        elif n % 3 == 1:
            rexec_cli.set_host(directory, STAGING)  # `rexec config set host`
        else:
            rexec_cli.save(directory, env={"REXEC_TOKEN": JOHN, "REXEC_HOST": HOST})
        assert_nothing_lost(ours)
    rexec_cli.logout(str(home / ".rexec"))  # its logout removes config.json only
    assert_nothing_lost(ours)


def test_a_login_the_rexec_cli_wrote_is_the_active_login(ours, home, standin):
    token = standin.mint_api_token("johndoe")  # a token we never saw
    rexec_cli.save(
        str(home / ".rexec"),
        host=standin.url,
        token=token,
        username="johndoe",
        email="johndoe@example.com",
        tier="pro",
    )
    assert helper("get").out.splitlines()[3] == f"password={token}"
    who = call("whoami", ["--porcelain"])
    assert who.code == 0 and "username=johndoe" in who.out and "token_source=config" in who.out
    # A new login of ours keeps it as an account: nothing is silently lost.
    login_with_token(standin.url, ours["jane"])
    assert token in [a["token"] for a in accounts(home / ".rexec")]
    assert_nothing_lost(dict(ours, john=token))


def test_the_rexec_token_it_saved_into_config_json_is_never_copied(
    ours, home, monkeypatch, standin
):
    """The Rexec CLI writes REXEC_TOKEN into config.json; we never write it anywhere."""
    env_token = standin.mint_api_token("johndoe")
    rexec_cli.save(str(home / ".rexec"), env={"REXEC_TOKEN": env_token, "REXEC_HOST": standin.url})
    monkeypatch.setenv("REXEC_TOKEN", env_token)
    login_with_token(standin.url, ours["jane"])
    assert env_token not in (home / ".rexec" / "credentials.json").read_text()


def test_switching_and_logging_out_lose_no_other_account_after_its_saves(ours, home, standin):
    directory = str(home / ".rexec")
    staging = jwt(username="johndoe", exp=4102444800, sid="s1")
    rexec_cli.save(
        directory,
        host=STAGING,
        token=staging,
        username="johndoe",
        email="johndoe@example.com",
        tier="pro",
    )
    # Switch to jane: the login the Rexec CLI wrote becomes an account.
    result = call("login", ["--switch", "--user", "janedoe", "--host", standin.url])
    assert result.code == 0, result
    assert json.loads((home / ".rexec" / "config.json").read_text())["username"] == "janedoe"
    names = {(a["host"], a["username"]) for a in accounts(home / ".rexec")}
    assert names == {(standin.url, "johndoe"), (standin.url, "janedoe"), (STAGING, "johndoe")}
    for _ in range(3):
        rexec_cli.set_host(directory, STAGING)
    # `rexec config set host` moved jane's login to staging; log johndoe's staging login
    # out: every other account and credential stays.
    assert call("logout", ["--host", STAGING, "--local"]).code == 2  # two logins there
    result = call("logout", ["--host", STAGING, "--user", "johndoe", "--local"])
    assert result.code == 0, result
    names = {(a["host"], a["username"]) for a in accounts(home / ".rexec")}
    assert names == {(standin.url, "johndoe"), (standin.url, "janedoe")}
    assert_nothing_lost(ours)
