"""Accounts: every login seen (`rexec-whoami --all`), switched to without signing in again
(`rexec-login --switch`), logged out one at a time or all at once with the session ended on
the server (`rexec-logout`), each answered to git by username — against the stand-in service.

The commands run in-process (conftest.call); one test of each feature runs the installed
executable instead, end to end as a person, a script or git runs it: its exit status, its
output through a pipe and its environment are then the real process's."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from datetime import datetime, timezone

import pytest
from conftest import call, run_bin
from freezegun import freeze_time
from helpers import (
    WHOAMI_ALL_KEYS,
    accounts,
    credentials,
    login_with_token,
    record_login,
    write_json,
)


def profile_status(standin, token: str) -> tuple:
    """(status, error) of GET /api/profile with token, straight to the stand-in."""
    request = urllib.request.Request(
        standin.url + "/api/profile", headers={"Authorization": f"Bearer {token}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()).get("error")


def deletes(standin) -> list:
    return [e for e in standin.log if e["method"] == "DELETE"]


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def two(standin, config_path):
    """johndoe (a JWT: a session) then janedoe (an API token, active) on the stand-in."""
    john, jane = standin.mint_jwt("johndoe"), standin.mint_api_token("janedoe")
    login_with_token(standin.url, john)
    login_with_token(standin.url, jane)
    return {"john": john, "jane": jane}


# -- rexec-logout ---------------------------------------------------------------------------------


def test_logout_of_a_jwt_login_leaves_its_session_alone_and_says_so(standin, config_path):
    """A JWT is the browser's own session: ending it would sign the browser out."""
    token = standin.mint_jwt("johndoe")
    login_with_token(standin.url, token)
    result = call("logout", [])
    assert result.code == 0, result
    assert result.out == f"✓ Logged out johndoe (johndoe@example.com) on {standin.url}\n"
    [note] = result.err.splitlines()
    assert "browser session of johndoe" in note and "stays signed in" in note
    assert "rexec-logout --end-session" in note and token not in note
    assert deletes(standin) == []
    assert profile_status(standin, token) == (200, None)
    assert not config_path.exists()
    assert token not in (config_path.parent / "credentials.json").read_text()


def test_logout_end_session_ends_a_jwt_logins_session_everywhere(standin, config_path):
    # The installed rexec-logout and rexec-whoami, end to end (REXEC_TOKEN in the real
    # environment).
    token = standin.mint_jwt("johndoe")
    login_with_token(standin.url, token)
    assert profile_status(standin, token) == (200, None)
    result = run_bin("rexec-logout", "--end-session")
    assert (result.code, result.err) == (0, "")
    assert result.out == f"✓ Logged out johndoe (johndoe@example.com) on {standin.url}\n"
    assert [e["status"] for e in deletes(standin)] == [200]
    assert profile_status(standin, token) == (401, "session_revoked")
    assert not config_path.exists()
    assert token not in (config_path.parent / "credentials.json").read_text()
    who = run_bin(
        "rexec-whoami", env={**os.environ, "REXEC_TOKEN": token, "REXEC_HOST": standin.url}
    )
    assert who.code == 1 and "session_revoked" in who.err and "rexec-login" in who.err


def test_logout_while_the_service_is_down_still_logs_out_and_warns(standin, config_path):
    token = standin.mint_jwt("johndoe")
    login_with_token(standin.url, token)
    standin.fail_next(10, status=503)
    result = call("logout", ["--end-session"])
    assert result.code == 0, result
    assert result.out.startswith("✓ Logged out johndoe")
    [warning] = result.err.splitlines()
    assert warning.startswith("warning: could not end the session of johndoe")
    assert "may still be valid" in warning and f"{standin.url}/settings" in warning
    assert token not in warning
    assert not config_path.exists() and accounts(config_path.parent) == []
    standin.clear_faults()
    assert profile_status(standin, token) == (200, None)  # it could not be ended: as warned


def test_logout_when_the_service_cannot_be_reached_at_all(standin, config_path, home):
    record_login(home / ".rexec", refused_url(), standin.mint_jwt("johndoe"))
    result = call("logout", ["--end-session"])
    assert result.code == 0 and "may still be valid" in result.err
    assert not config_path.exists()


def test_logout_local_makes_no_request(standin, config_path):
    token = standin.mint_jwt("johndoe")
    login_with_token(standin.url, token)
    standin.clear_log()
    result = call("logout", ["--local", "--end-session"])
    assert result.code == 0 and "stays signed in" in result.err
    assert standin.log == []
    assert profile_status(standin, token) == (200, None)
    assert not config_path.exists()


def test_an_api_token_is_never_revoked(standin, config_path):
    token = standin.mint_api_token("janedoe")
    login_with_token(standin.url, token)
    standin.clear_log()
    result = call("logout", [])
    assert result.code == 0
    assert "API token of janedoe stays valid until you revoke it" in result.err
    assert standin.log == []
    assert profile_status(standin, token) == (200, None)


def test_logout_of_the_active_login_keeps_the_others(standin, two, config_path):
    git = call(
        "credential",
        ["store"],
        stdin=b"protocol=https\nhost=github.com\nusername=octo\npassword=gh\n",
    )
    assert git.code == 0
    result = call("logout", [])
    assert result.out == (
        f"✓ Logged out janedoe (jane@example.com) on {standin.url} (1 other login remains)\n"
    )
    assert not config_path.exists()
    assert [a["username"] for a in accounts(config_path.parent)] == ["johndoe"]
    assert [c["host"] for c in credentials(config_path.parent)] == ["github.com"]
    assert deletes(standin) == []  # jane's is an API token; john's session is untouched
    assert profile_status(standin, two["john"]) == (200, None)


def test_logout_of_another_user_by_name(standin, two, config_path):
    result = call("logout", ["--user", "johndoe", "--end-session"])
    assert result.code == 0
    assert result.out.startswith("✓ Logged out johndoe (johndoe@example.com)")
    assert json.loads(config_path.read_text())["username"] == "janedoe"  # still active
    assert [a["username"] for a in accounts(config_path.parent)] == ["janedoe"]
    assert profile_status(standin, two["john"]) == (401, "session_revoked")


def test_logout_host_with_several_logins_lists_them_and_exits_2(standin, two, config_path):
    result = call("logout", ["--host", standin.url])
    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0] == (
        "rexec-logout: more than one login matches; choose one with --host and --user:"
    )
    assert sorted(lines[1:]) == sorted(
        [
            f"  janedoe (jane@example.com) on {standin.url}  (active)",
            f"  johndoe (johndoe@example.com) on {standin.url}",
        ]
    )
    assert two["john"] not in result.err and two["jane"] not in result.err
    assert config_path.exists() and len(accounts(config_path.parent)) == 2


def test_logout_all_ends_every_session_and_removes_both_files(standin, two, config_path):
    other = standin.mint_jwt("janedoe")
    login_with_token(standin.url, other)  # replaces jane's API token login
    result = call("logout", ["--all", "--end-session"])
    assert result.code == 0
    assert result.out == "✓ Logged out of 2 logins; every stored credential removed\n"
    assert sorted(e["status"] for e in deletes(standin)) == [200, 200]
    assert profile_status(standin, two["john"]) == (401, "session_revoked")
    assert profile_status(standin, other) == (401, "session_revoked")
    assert not config_path.exists() and not (config_path.parent / "credentials.json").exists()


def test_logout_of_a_login_the_rexec_cli_wrote(standin, config_path):
    token = standin.mint_jwt("johndoe")
    write_json(
        config_path,
        {
            "host": standin.url,
            "token": token,
            "username": "johndoe",
            "email": "johndoe@example.com",
            "tier": "pro",
        },
    )
    result = call("logout", ["--end-session"])
    assert result.code == 0 and not config_path.exists()
    assert profile_status(standin, token) == (401, "session_revoked")


# -- rexec-login --switch -------------------------------------------------------------------------


def test_switch_with_two_logins_goes_to_the_other_and_writes_the_five_fields(
    standin, two, config_path
):
    # The installed rexec-login --switch, end to end.
    standin.clear_log()
    result = run_bin("rexec-login", "--switch")
    assert (result.code, result.err) == (0, "")
    assert result.out == f"✓ Switched to johndoe (johndoe@example.com) on {standin.url}\n"
    assert json.loads(config_path.read_text()) == {
        "host": standin.url,
        "token": two["john"],
        "username": "johndoe",
        "email": "johndoe@example.com",
        "tier": "pro",
    }
    assert standin.log == []  # no network
    back = run_bin("rexec-login", "--switch", "--user", "janedoe")
    assert back.code == 0 and json.loads(config_path.read_text())["token"] == two["jane"]
    again = run_bin("rexec-login", "--switch", "--user", "janedoe")
    assert again.code == 0 and again.out.startswith("✓ Already using janedoe")


def test_switch_unknown_or_ambiguous_lists_the_logins_and_exits_2(standin, two, home):
    record_login(home / ".rexec", "https://staging.example.com", "rexec_" + "s" * 64, "ci-bot")
    unknown = call("login", ["--switch", "--user", "nobody"])
    assert unknown.code == 2 and unknown.err.startswith("rexec-login: no stored login matches")
    assert "  johndoe (johndoe@example.com) on " + standin.url in unknown.err
    ambiguous = call("login", ["--switch", "--host", standin.url])
    assert ambiguous.code == 2 and "more than one login matches" in ambiguous.err
    for token in two.values():
        assert token not in unknown.err + ambiguous.err


def test_switch_to_an_expired_login_is_refused_with_the_remedy(standin, config_path):
    expires = int(time.time()) + 3600
    login_with_token(standin.url, standin.mint_jwt("johndoe", exp=expires))
    login_with_token(standin.url, standin.mint_api_token("janedoe"))
    before = config_path.read_text()
    with freeze_time(datetime.fromtimestamp(expires + 1, timezone.utc)):  # johndoe's has expired
        result = call("login", ["--switch", "--user", "johndoe"])
    assert result.code == 1
    assert "has expired" in result.err and "rexec-login" in result.err
    assert config_path.read_text() == before


# -- rexec-whoami --all and --json ----------------------------------------------------------------


def test_whoami_all_every_login_valid(standin, two):
    result = call("whoami", ["--all"])
    assert result.code == 0, result
    blocks = result.out.split("\n\n")
    assert len(blocks) == 2
    assert blocks[0].startswith("User Profile  (active)\n") and "Username: janedoe" in blocks[0]
    assert "Username: johndoe" in blocks[1] and "Role:     Admin" in blocks[1]
    assert all("  Status:   valid" in block for block in blocks)
    assert two["john"] not in result.out + result.err


def test_whoami_all_json_marks_the_active_one(standin, two):
    # The installed rexec-whoami: JSON through a pipe, as a script reads it.
    result = run_bin("rexec-whoami", "--all", "--json")
    assert result.code == 0
    listed = json.loads(result.out)
    assert [(o["username"], o["active"], o["state"], o["token_kind"]) for o in listed] == [
        ("janedoe", True, "valid", "api"),
        ("johndoe", False, "valid", "jwt"),
    ]
    assert set(listed[1]) == WHOAMI_ALL_KEYS
    assert isinstance(listed[1]["token_expires"], int) and listed[0]["token_expires"] is None


def test_whoami_json_for_one_login(standin, two):
    result = call("whoami", ["--json"])
    assert result.code == 0
    assert json.loads(result.out) == {
        "username": "janedoe",
        "email": "jane@example.com",
        "tier": "free",
        "role": "user",
        "host": standin.url,
        "token_source": "config",
        "token_kind": "api",
        "token_expires": None,
        "token_name": "",
    }


def test_whoami_all_expired_jwt_needs_no_request_and_exits_1(standin, two, home):
    expired = standin.mint_jwt("johndoe", exp=int(time.time()) - 10)
    record_login(home / ".rexec", "https://expired.example.com", expired, "johndoe")
    standin.clear_log()
    result = call("whoami", ["--all", "--json"])
    assert result.code == 1
    states = {(o["host"], o["state"]) for o in json.loads(result.out)}
    assert ("https://expired.example.com", "expired") in states
    assert len([o for o in json.loads(result.out) if o["state"] == "valid"]) == 2
    assert len(standin.log) == 2  # the two live logins only; none for the expired one


def test_whoami_all_one_unreachable_among_reachable_exits_3(standin, two, home):
    down = refused_url()
    record_login(home / ".rexec", down, standin.mint_api_token("johndoe"), "johndoe")
    result = call("whoami", ["--all", "--porcelain"])
    assert result.code == 3
    blocks = [
        dict(line.split("=", 1) for line in block.splitlines())
        for block in result.out.split("\n\n")
    ]
    assert sorted((b["host"] == down, b["state"]) for b in blocks) == [
        (False, "valid"),
        (False, "valid"),
        (True, "unreachable"),
    ]
    assert "connection refused" in next(b["error"] for b in blocks if b["host"] == down)


def test_whoami_all_a_rejected_login_wins_over_an_unreachable_one(standin, two, home):
    record_login(home / ".rexec", refused_url(), standin.mint_api_token("johndoe"), "johndoe")
    standin.revoke(two["john"])
    result = call("whoami", ["--all"])
    assert result.code == 1
    assert "Status:   Invalid token: the session of this login was ended" in result.out


def test_whoami_all_lists_rexec_token_and_a_login_the_rexec_cli_wrote(standin, config_path):
    cli_token = standin.mint_api_token("johndoe")
    write_json(
        config_path,
        {
            "host": standin.url,
            "token": cli_token,
            "username": "johndoe",
            "email": "johndoe@example.com",
            "tier": "pro",
        },
    )
    env_token = standin.mint_api_token("janedoe")
    env = {**os.environ, "REXEC_TOKEN": env_token}
    result = call("whoami", ["--all", "--json"], env=env)
    assert result.code == 0, result
    listed = json.loads(result.out)
    assert [(o["username"], o["token_source"], o["active"]) for o in listed] == [
        ("janedoe", "env", False),
        ("johndoe", "config", True),
    ]
    assert cli_token not in result.out and env_token not in result.out


def test_whoami_all_without_any_login(standin):
    result = call("whoami", ["--all"])
    assert (result.code, result.err) == (1, "Not logged in. Run 'rexec-login' first.\n")


# -- sessions ended or locked --------------------------------------------------------------------


def test_a_revoked_session_says_the_login_was_ended(standin, config_path):
    token = standin.mint_jwt("johndoe")
    login_with_token(standin.url, token)
    standin.revoke(token)
    result = call("whoami", [])
    assert result.code == 1
    assert result.err == (
        "Error: Invalid token: the session of this login was ended "
        "(session_revoked). Run 'rexec-login' to log in again.\n"
    )


def test_a_locked_screen_says_to_unlock_it_in_the_web_app(standin, config_path):
    token = standin.mint_jwt("johndoe")
    login_with_token(standin.url, token)
    standin.lock_screen("johndoe")
    result = call("whoami", [])
    assert result.code == 1
    assert result.err == (
        "Error: Account locked: the screen lock is on for this account "
        "(session_locked). Unlock it in the Rexec web app, then try again.\n"
    )
    standin.unlock_screen("johndoe")
    assert call("whoami", []).code == 0


# -- git: every account of the host, by username ---------------------------------------------------


def test_get_answers_each_account_of_the_host_by_username(standin, two):
    # The installed rexec-credential, as git runs it.
    host = standin.url.split("//")[1]
    for user, token in (("johndoe", two["john"]), ("janedoe", two["jane"]), (None, two["jane"])):
        asked = f"protocol=http\nhost={host}\n" + (f"username={user}\n" if user else "")
        result = run_bin("rexec-credential", "get", stdin=asked)
        assert f"password={token}\n" in result.out, (user, result)


def test_whoami_of_a_stored_login_that_is_not_the_active_one(standin, two, config_path):
    result = call("whoami", ["--host", standin.url])  # the active one: janedoe
    assert "Token:    API token from the config file" in result.out
    call("logout", ["--local"])  # johndoe's JWT login remains, not active
    result = call("whoami", ["--host", standin.url])
    assert result.code == 0 and "Username: johndoe" in result.out
    assert "Token:    JWT from credentials.json" in result.out
