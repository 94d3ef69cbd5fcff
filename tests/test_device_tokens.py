"""Device tokens: a browser login keeps an API token made for this machine, never the
browser's own session token; `rexec-login --renew` replaces it without a browser; logout
revokes it and leaves the browser signed in (docs/contract.md, "Device tokens") — through
the installed executables, against the stand-in, whose /cli-login hands over the
browser's own session JWT as the real web app does."""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from conftest import run_bin
from helpers import accounts, credentials, record_login

from rexec_credential.testing.scripted_browser import browser_command

DAY = 86400
DEVICE_LINE = re.compile(
    r"Device token '(?P<name>[^']+)' made for this machine, "
    r"(?:valid until (?P<until>\S+ \S+) UTC|with no expiry); revoke it at (?P<where>\S+)/settings"
)


@pytest.fixture
def browser(tmp_path):
    """One scripted browser (its cookies kept between logins), signed in as johndoe."""
    return browser_command("johndoe", "hunter2", cookie_jar=str(tmp_path / "cookies"))


def browser_login(standin, browser, *argv: str, env: dict | None = None):
    """rexec-login through the browser flow, as a person runs it."""
    env = {**(env or os.environ), "BROWSER": browser}
    return run_bin(
        "rexec-login", "--host", standin.url, "--port", "0", "--timeout", "30", *argv, env=env
    )


def files_text(config_path) -> str:
    directory = config_path.parent
    if not directory.exists():
        return ""
    return "".join(p.read_text(errors="replace") for p in directory.iterdir() if p.is_file())


def stored_token(config_path) -> str:
    return json.loads(config_path.read_text())["token"]


def status_of(token: str, standin) -> int:
    """What /api/profile answers the token (through whoami with REXEC_TOKEN)."""
    env = {**os.environ, "REXEC_TOKEN": token, "REXEC_HOST": standin.url}
    return run_bin("rexec-whoami", env=env).code


# -- a browser login makes a device token ---------------------------------------------------


def test_browser_login_keeps_a_device_token_and_logout_leaves_the_browser_signed_in(
    standin, browser, config_path
):
    result = browser_login(standin, browser)
    assert result.code == 0 and result.err == "", result
    [session_jwt] = standin.web_session_jwts("johndoe")
    assert session_jwt not in files_text(config_path)  # never written, at any point
    device = stored_token(config_path)
    [made] = standin.api_tokens("johndoe")
    assert standin.api_token_id(device) == made["id"]
    line = DEVICE_LINE.search(result.out)
    assert line and line["name"] == made["name"] and line["where"] == standin.url, result.out
    assert made["name"].startswith("rexec-credential on ")
    expires = json.loads((config_path.parent / "credentials.json").read_text())["accounts"][0]
    assert abs(expires["token_expires_at"] - (time.time() + 90 * DAY)) < 120
    assert set(json.loads(config_path.read_text())) == {
        "host",
        "token",
        "username",
        "email",
        "tier",
    }

    logout = run_bin("rexec-logout")
    assert logout.code == 0 and logout.err == "", logout
    assert status_of(session_jwt, standin) == 0  # the browser is still signed in
    assert status_of(device, standin) == 1  # the device token is revoked
    assert standin.api_tokens("johndoe") == []
    assert session_jwt not in files_text(config_path) and device not in files_text(config_path)


def test_a_second_login_from_the_same_browser_gets_the_same_session_and_a_new_device_token(
    standin, browser, config_path
):
    assert browser_login(standin, browser).code == 0
    first = stored_token(config_path)
    assert browser_login(standin, browser).code == 0
    second = stored_token(config_path)
    assert first != second and len(standin.web_session_jwts("johndoe")) == 1
    assert len(accounts(config_path.parent)) == 1  # the same user on the same host: replaced


def test_a_pasted_session_token_makes_a_device_token_too(standin, config_path):
    jwt = standin.mint_jwt("johndoe")
    result = run_bin(
        "rexec-login", "--host", standin.url, "--no-browser", "--timeout", "20", stdin=jwt + "\n"
    )
    assert result.code == 0 and DEVICE_LINE.search(result.out), result
    assert stored_token(config_path).startswith("rexec_") and jwt not in files_text(config_path)
    assert status_of(jwt, standin) == 0


@pytest.mark.parametrize(
    "argv, name, days",
    [
        (["--expires-in", "7"], None, 7),
        (["--expires-in", "0"], None, None),
        (["--expires-in", "3650", "--token-name", "laptop (work)"], "laptop (work)", 3650),
    ],
    ids=["7-days", "never", "named"],
)
def test_expires_in_and_token_name(standin, browser, config_path, argv, name, days):
    result = browser_login(standin, browser, *argv)
    assert result.code == 0, result
    [made] = standin.api_tokens("johndoe")
    assert made["name"] == (name or made["name"]) and made["name"] in result.out
    account = accounts(config_path.parent)[0]
    if days is None:
        assert made.get("expires_at") is None and "with no expiry" in result.out
        assert account["token_expires_at"] is None
    else:
        assert abs(account["token_expires_at"] - (time.time() + days * DAY)) < 120


@pytest.mark.parametrize(
    "argv",
    [
        ["--expires-in", "-1"],
        ["--expires-in", "3651"],
        ["--expires-in", "soon"],
        ["--expires-in", "1.5"],
        ["--expires-in", "\u0663"],
        ["--expires-in", ""],
        ["--token-name", ""],
        ["--token-name", "   "],
        ["--token-name", "x" * 101],
        ["--token-name", "bad\x1bname"],
        ["--token-name", "rexec_" + "a" * 40],
    ],
    ids=lambda a: f"{a[0]}={a[1][:8]!r}",
)
def test_bad_device_options_are_usage_errors_before_any_network_or_browser(standin, tmp_path, argv):
    opened = tmp_path / "opened"
    env = {**os.environ, "BROWSER": f"touch {opened}"}
    result = run_bin("rexec-login", "--host", standin.url, "--port", "0", *argv, env=env)
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert result.err.startswith(f"rexec-login: invalid {argv[0]}")
    assert argv[1].strip() == "" or argv[1] not in result.err
    assert standin.log == [] and not opened.exists()


def test_renew_rejects_bad_expiry_before_any_request(standin, config_path):
    record_login(config_path.parent, standin.url, standin.mint_api_token("johndoe"))
    standin.clear_log()
    result = run_bin("rexec-login", "--renew", "--expires-in", "9999")
    assert result.code == 2 and standin.log == [], result


def test_session_token_keeps_the_jwt_and_makes_no_device_token(standin, browser, config_path):
    result = browser_login(standin, browser, "--session-token")
    assert result.code == 0 and result.err == "" and "Device token" not in result.out, result
    [session_jwt] = standin.web_session_jwts("johndoe")
    assert stored_token(config_path) == session_jwt
    assert standin.api_tokens("johndoe") == []
    # Logging out leaves the browser's session alone, and says how to end it.
    logout = run_bin("rexec-logout")
    assert logout.code == 0 and "--end-session" in logout.err, logout
    assert status_of(session_jwt, standin) == 0


def test_end_session_signs_the_browser_out_too(standin, browser, config_path):
    assert browser_login(standin, browser, "--session-token").code == 0
    [session_jwt] = standin.web_session_jwts("johndoe")
    logout = run_bin("rexec-logout", "--end-session")
    assert (logout.code, logout.err) == (0, ""), logout
    assert status_of(session_jwt, standin) == 1
    assert standin.web_session_jwts("johndoe") == []


# -- fallbacks: the login succeeds with the session token ----------------------------------


@pytest.mark.parametrize(
    "fault",
    ["no-token-api", 404, 405, 501, 401, 403, 500, 503, "unreachable"],
)
def test_without_a_device_token_the_login_still_succeeds_with_the_session_token(
    standin, browser, config_path, fault
):
    if fault == "no-token-api":
        standin.token_api = False
    elif fault == "unreachable":
        standin.drop_next(3, method="POST", path="/api/tokens")
    else:
        standin.fail_token_creation_next(3, status=fault)
    result = browser_login(standin, browser)
    assert result.code == 0, result
    assert "✓ Successfully logged in as johndoe" in result.out and "Device token" not in result.out
    [note] = result.err.splitlines()
    assert note.startswith("note: no device token could be made (") and "--renew" in note
    [session_jwt] = standin.web_session_jwts("johndoe")
    assert stored_token(config_path) == session_jwt and session_jwt not in note
    assert standin.api_tokens("johndoe") == []
    # Later, with the token API back: --renew turns it into a device-token login.
    standin.token_api = True
    standin.clear_faults()
    renew = run_bin("rexec-login", "--renew")
    assert renew.code == 0, renew
    assert stored_token(config_path).startswith("rexec_")
    assert status_of(session_jwt, standin) == 0  # its session untouched


# -- rexec-login --renew ---------------------------------------------------------------------


def test_renew_replaces_in_place_and_revokes_the_old_device_token(
    standin, browser, config_path, home
):
    assert browser_login(standin, browser).code == 0
    old = stored_token(config_path)
    other = standin.mint_api_token("janedoe")
    record_login(home / ".rexec", "https://other.example", other, "janedoe")  # not active
    run_bin("rexec-login", "--switch", "--host", standin.url)  # johndoe active again
    git = "protocol=https\nhost=github.com\nusername=octo\npassword=gh\n"
    assert run_bin("rexec-credential", "store", stdin=git).code == 0
    before = [a["username"] for a in accounts(config_path.parent)]
    result = run_bin("rexec-login", "--renew", "--expires-in", "30")
    assert result.code == 0 and result.err == "", result
    assert re.fullmatch(
        rf"✓ Renewed the token of johndoe on {re.escape(standin.url)}, valid until "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n",
        result.out,
    ), result.out
    new = stored_token(config_path)
    assert new != old and new.startswith("rexec_")
    assert json.loads(config_path.read_text())["username"] == "johndoe"  # still active
    assert [a["username"] for a in accounts(config_path.parent)] == before
    assert [c["host"] for c in credentials(config_path.parent)] == ["github.com"]
    assert status_of(old, standin) == 1 and status_of(new, standin) == 0
    [made] = standin.api_tokens("johndoe")
    assert made["name"].startswith("rexec-credential on ")  # the same name
    account = next(a for a in accounts(config_path.parent) if a["username"] == "johndoe")
    assert abs(account["token_expires_at"] - (time.time() + 30 * DAY)) < 120


def test_renew_never_revokes_an_api_token_the_person_gave(standin, config_path):
    pasted = standin.mint_api_token("johndoe")
    assert run_bin("rexec-login", "--token", "-", "--host", standin.url, stdin=pasted).code == 0
    result = run_bin("rexec-login", "--renew")
    assert result.code == 0, result
    assert "stays valid" in result.err and pasted not in result.err
    assert status_of(pasted, standin) == 0
    assert stored_token(config_path) != pasted


def test_renew_not_logged_in(standin):
    result = run_bin("rexec-login", "--renew", "--host", standin.url)
    assert (result.code, result.err) == (
        1,
        f"Not logged in to {standin.url}. Run 'rexec-login' first.\n",
    )


@pytest.mark.parametrize("fault", ["rejected", "down"])
def test_renew_that_fails_changes_nothing(standin, browser, config_path, fault):
    assert browser_login(standin, browser).code == 0
    old = stored_token(config_path)
    before = {p.name: p.read_bytes() for p in config_path.parent.iterdir() if p.is_file()}
    if fault == "rejected":
        standin.revoke(old)
    else:
        standin.fail_next(10, status=503)
    result = run_bin("rexec-login", "--renew", timeout=60)
    assert result.code == (1 if fault == "rejected" else 3), result
    assert result.err.count("\n") == 1 and old not in result.err
    after = {p.name: p.read_bytes() for p in config_path.parent.iterdir() if p.is_file()}
    assert after == before


# -- logout ----------------------------------------------------------------------------------


def test_logout_local_keeps_the_device_token_valid_and_says_where_to_revoke_it(
    standin, browser, config_path
):
    assert browser_login(standin, browser).code == 0
    device = stored_token(config_path)
    standin.clear_log()
    result = run_bin("rexec-logout", "--local")
    assert result.code == 0 and standin.log == [], result
    assert "stays valid until" in result.err and f"{standin.url}/settings" in result.err
    assert status_of(device, standin) == 0


def test_logout_when_revoking_fails_logs_out_here_and_warns(standin, browser, config_path):
    assert browser_login(standin, browser).code == 0
    device = stored_token(config_path)
    standin.fail_next(10, status=503)
    result = run_bin("rexec-logout", timeout=60)
    assert result.code == 0 and not config_path.exists(), result
    [warning] = result.err.splitlines()
    assert warning.startswith("warning: could not revoke the device token of johndoe")
    assert f"{standin.url}/settings" in warning and device not in warning
    standin.clear_faults()
    assert status_of(device, standin) == 0  # as warned


def test_logout_all_revokes_every_device_token(standin, browser, tmp_path, config_path):
    assert browser_login(standin, browser).code == 0
    jane = browser_command("janedoe", "correct-horse", cookie_jar=str(tmp_path / "jane"))
    assert browser_login(standin, jane).code == 0
    tokens = [a["token"] for a in accounts(config_path.parent)]
    assert len(tokens) == 2
    result = run_bin("rexec-logout", "--all")
    assert result.code == 0 and result.err == "", result
    assert [status_of(t, standin) for t in tokens] == [1, 1]
    assert standin.web_session_jwts("johndoe") and standin.web_session_jwts("janedoe")


# -- whoami and get --------------------------------------------------------------------------


def test_whoami_names_the_device_token_and_its_expiry(standin, browser, config_path):
    assert browser_login(standin, browser).code == 0
    [made] = standin.api_tokens("johndoe")
    account = accounts(config_path.parent)[0]
    block = run_bin("rexec-whoami")
    assert block.code == 0 and block.err == "", block
    assert f"  Token:    device token '{made['name']}' from the config file, expires " in block.out
    porcelain = run_bin("rexec-whoami", "--porcelain")
    assert f"token_name={made['name']}\n" in porcelain.out
    assert f"token_expires={account['token_expires_at']}\n" in porcelain.out
    assert "token_kind=api\n" in porcelain.out
    obj = json.loads(run_bin("rexec-whoami", "--json").out)
    assert obj["token_name"] == made["name"]
    assert obj["token_expires"] == account["token_expires_at"]


def test_whoami_warns_within_seven_days_of_expiry(standin, browser, config_path):
    assert browser_login(standin, browser, "--expires-in", "6").code == 0
    result = run_bin("rexec-whoami")
    assert result.code == 0, result
    [warning] = result.err.splitlines()
    assert "expires" in warning and "'rexec-login --renew'" in warning
    assert browser_login(standin, browser, "--expires-in", "8").code == 0
    assert run_bin("rexec-whoami").err == ""


def test_get_answers_the_device_tokens_expiry_and_stays_silent(standin, browser, config_path):
    assert browser_login(standin, browser).code == 0
    account = accounts(config_path.parent)[0]
    got = run_bin("rexec-credential", "get", stdin=b"")
    assert got.code == 0 and got.err == "", got
    assert f"password={account['token']}\n" in got.out
    assert f"password_expiry_utc={account['token_expires_at']}\n" in got.out


# -- beside the Rexec CLI --------------------------------------------------------------------


def test_the_rexec_cli_rewriting_config_json_keeps_the_device_token_revocable(
    standin, browser, config_path
):
    import rexec_cli

    assert browser_login(standin, browser).code == 0
    device = stored_token(config_path)
    fields = rexec_cli.load(str(config_path.parent))
    rexec_cli.save(str(config_path.parent), **fields)  # a save of its own, byte for byte
    assert rexec_cli.load(str(config_path.parent))["token"] == device
    assert run_bin("rexec-whoami").code == 0
    assert run_bin("rexec-logout").code == 0
    assert status_of(device, standin) == 1
