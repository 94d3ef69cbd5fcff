"""Trust boundaries: nothing an argument, the environment, a stored file or a server says
is run, echoed when it looks like a token, shown raw, or turned into a traceback — through
the installed executables (docs/contract.md, "Trust boundaries"). Shell completion has its
own tests in test_completion.py; git setup in test_git_setup.py."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_bin
from helpers import WHOAMI_ALL_KEYS, accounts, credentials, jwt, read_json, record_login, write_json

API_TOKEN = "rexec_" + "Q7" * 32
JWT = jwt(user_id="u1", username="johndoe", exp=4102444800, sid="s-1")
EXECUTABLES = ["rexec-login", "rexec-logout", "rexec-whoami", "rexec-credential"]


def pieces(token: str, size: int = 12) -> list:
    """Every run of `size` characters of the token's secret part (after rexec_, or each
    JWT segment): none of them may be shown."""
    secret = token[len("rexec_") :] if token.startswith("rexec_") else token
    parts = [p for p in secret.split(".") if len(p) >= size] or [secret]
    return [p[i : i + size] for p in parts for i in range(0, len(p) - size + 1, size // 2)]


def assert_hidden(result, *secrets: str) -> None:
    shown = result.out + result.err
    assert "Traceback" not in shown, result
    for secret in secrets:
        assert secret not in shown, result
        for piece in pieces(secret):
            assert piece not in shown, (piece, result)


def env_with(**values: str) -> dict:
    return {**os.environ, **values}


# -- token-shaped arguments are never echoed --------------------------------------------------


TOKEN_AS_HOST = [
    ("rexec-whoami", "--host", f"https://x/?{API_TOKEN}"),
    ("rexec-logout", "--host", f"{API_TOKEN}?"),
    ("rexec-whoami", "--host", API_TOKEN),
    ("rexec-whoami", "--host", "rexec_" + "a" * 32),  # short enough to be one label
    ("rexec-whoami", "--host", f"https://{JWT}"),
    ("rexec-credential", "configure", "--host", API_TOKEN),
    ("rexec-credential", "unconfigure", "--host", f"https://{API_TOKEN}.example"),
    ("rexec-login", "--switch", "--host", API_TOKEN),
    ("rexec-login", "--token", "-", "--host", f"http://h/{API_TOKEN}#"),
    ("rexec-logout", "--user", "x", "--host", JWT),
]


@pytest.mark.parametrize("argv", TOKEN_AS_HOST, ids=lambda a: " ".join(a)[:40])
def test_a_token_given_as_a_host_is_refused_without_being_echoed(argv):
    result = run_bin(*argv)
    assert result.code == 2 and result.out == "" and result.err.count("\n") == 1, result
    assert "--host" in result.err
    assert_hidden(result, API_TOKEN, JWT, "rexec_" + "a" * 32)


@pytest.mark.parametrize("value", [API_TOKEN, f"https://{API_TOKEN}", JWT, f"{JWT}/"])
@pytest.mark.parametrize("command", EXECUTABLES)
def test_a_token_in_rexec_host_is_refused_without_being_echoed(command, value):
    argv = ["configure"] if command == "rexec-credential" else []
    result = run_bin(command, *argv, env=env_with(REXEC_HOST=value))
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert "REXEC_HOST" in result.err
    assert_hidden(result, API_TOKEN, JWT)


# -- REXEC_TOKEN is trimmed exactly as a login token is ---------------------------------------


def test_rexec_token_with_a_final_newline_never_lands_on_disk(standin, config_path):
    token = standin.mint_api_token("johndoe")
    result = run_bin(
        "rexec-login",
        "--token",
        "-",
        "--host",
        standin.url,
        stdin=token + "\n",
        env=env_with(REXEC_TOKEN=token + "\n"),
    )
    assert result.code == 0 and "never written" in result.err, result
    for name in ("config.json", "credentials.json"):
        path = config_path.parent / name
        assert not path.exists() or token not in path.read_text()


def test_rexec_token_with_surrounding_white_space_works_everywhere(standin):
    token = standin.mint_api_token("johndoe")
    env = env_with(REXEC_TOKEN=f"  {token}\n", REXEC_HOST=standin.url)
    who = run_bin("rexec-whoami", "--porcelain", env=env)
    assert who.code == 0 and "username=johndoe\n" in who.out, who
    got = run_bin("rexec-credential", "get", stdin=b"", env=env)
    assert got.code == 0 and f"password={token}\n" in got.out and got.err == "", got


def test_a_malformed_rexec_token_is_named_as_such(standin):
    env = env_with(REXEC_TOKEN="not-a-token", REXEC_HOST=standin.url)
    who = run_bin("rexec-whoami", env=env)
    assert who.code == 1 and "malformed" in who.err and "REXEC_TOKEN" in who.err, who
    assert standin.log == []


# -- hosts that are not hosts: one line, exit 2; stored, exit 4; logout copes ------------------

BAD_HOSTS = [
    "https://h:\u00b2",  # a superscript two: str.isdigit() says yes, int() says no
    "https://h:\u0664\u0664\u0663",  # Arabic-Indic 443
    "https://a..example",
    "https://" + "a" * 64 + ".example",
    "https://h/a\nb",
    "https://h/a b",
    "https://[::1",
    "https://[::1]x",
    "https://h:0",
    "https://h:65536",
    "https://h:",
    "https://" + "a." * 130 + "example",
    "https://-h.example",
]


@pytest.mark.parametrize("host", BAD_HOSTS, ids=range(len(BAD_HOSTS)))
@pytest.mark.parametrize("command", EXECUTABLES)
def test_a_bad_host_option_is_one_line_exit_2(command, host):
    argv = ["configure"] if command == "rexec-credential" else []
    result = run_bin(command, *argv, "--host", host)
    assert (result.code, result.out) == (2, ""), result
    assert result.err.count("\n") == 1 and "invalid --host" in result.err, result
    assert "Traceback" not in result.err


@pytest.mark.parametrize("host", BAD_HOSTS, ids=range(len(BAD_HOSTS)))
def test_a_bad_rexec_host_is_one_line_exit_2(host):
    result = run_bin("rexec-whoami", env=env_with(REXEC_HOST=host))
    assert (result.code, result.out) == (2, ""), result
    assert result.err.count("\n") == 1 and "invalid REXEC_HOST" in result.err, result


@pytest.mark.parametrize("host", BAD_HOSTS, ids=range(len(BAD_HOSTS)))
def test_a_bad_stored_host_is_reported_and_logout_still_works(config_path, host):
    write_json(config_path, {"host": host, "token": API_TOKEN, "username": "johndoe"})
    for argv in (["rexec-whoami"], ["rexec-login", "--switch"], ["rexec-credential", "configure"]):
        result = run_bin(*argv)
        assert result.code == 4 and result.err.count("\n") == 1, (argv, result)
        assert "config.json" in result.err and "rexec-logout" in result.err, (argv, result)
    got = run_bin("rexec-credential", "get", stdin=b"protocol=https\nhost=rexec.pipeops.io\n")
    assert (got.code, got.out, got.err) == (0, "", ""), got  # git's request names its host
    result = run_bin("rexec-logout")
    assert result.code == 0 and "Traceback" not in result.err, result
    assert not config_path.exists()
    assert run_bin("rexec-whoami").code == 1  # plainly not logged in now


def test_a_non_ascii_port_is_never_written_into_gits_config(home):
    result = run_bin("rexec-credential", "configure", "--host", "https://h:\u0664\u0664\u0663")
    assert result.code == 2, result
    assert not (home / ".gitconfig").exists()


def test_a_newline_in_the_path_is_a_usage_error_not_gits(home):
    result = run_bin("rexec-credential", "configure", "--host", "https://h/a\nb")
    assert result.code == 2 and "invalid --host" in result.err, result
    assert not (home / ".gitconfig").exists()


# -- logout keeps what it cannot read --------------------------------------------------------


def three_logins(directory: Path) -> list:
    tokens = ["rexec_" + c * 64 for c in "abc"]
    for token, user in zip(tokens, ("ann", "bob", "cid")):
        record_login(directory, "https://rexec.pipeops.io", token, user)
    return tokens


@pytest.mark.parametrize("argv", [["--local"], ["--user", "nobody"], []], ids=str)
def test_logout_moves_a_corrupted_file_aside_and_says_where(config_path, argv):
    directory = config_path.parent
    three_logins(directory)
    path = directory / "credentials.json"
    before = path.read_bytes() + b",,"
    path.write_bytes(before)
    result = run_bin("rexec-logout", *argv)
    assert result.code == 0, result
    backups = [p for p in directory.iterdir() if p.name.startswith("credentials.json.corrupt-")]
    assert len(backups) == 1 and backups[0].read_bytes() == before
    assert (backups[0].stat().st_mode & 0o777) == 0o600
    assert str(backups[0]) in result.err, result


def test_logout_all_removes_backups_too_and_says_how_many(config_path):
    directory = config_path.parent
    tokens = three_logins(directory)
    (directory / "credentials.json").write_bytes(
        (directory / "credentials.json").read_bytes() + b",,"
    )
    assert run_bin("rexec-whoami", "--all", "--offline").code == 4
    run_bin("rexec-login", "--switch", "--user", "ann")  # a write: the backup is made
    config_path.write_text('{"host": "https://rexec.pipeops.io",')  # and a broken config
    assert run_bin("rexec-credential", "store", stdin="protocol=https\nhost=x\n").code == 0
    run_bin("rexec-logout", "--local")  # moves config.json aside
    backups = [p for p in directory.iterdir() if ".corrupt-" in p.name]
    assert len(backups) == 2, backups
    result = run_bin("rexec-logout", "--all", "--local")
    assert result.code == 0 and "2 backups" in result.out, result
    left = sorted(p.name for p in directory.iterdir())
    assert left == ["config.json.lock"], left
    for token in tokens:
        assert not any(token in p.read_text() for p in directory.iterdir() if p.is_file())


# -- logout follows the effective host ---------------------------------------------------------


def test_logout_follows_rexec_host_like_every_command(tmp_path, config_path):
    from rexec_credential.testing import StandIn

    with StandIn() as first, StandIn() as second:
        one, two = first.mint_jwt("johndoe"), second.mint_jwt("johndoe")
        for service, token in ((second, two), (first, one)):  # the first host's is active
            result = run_bin("rexec-login", "--token", "-", "--host", service.url, stdin=token)
            assert result.code == 0, result
        env = env_with(REXEC_HOST=second.url)
        who = run_bin("rexec-whoami", "--porcelain", env=env)
        assert f"host={second.url}\n" in who.out, who
        first.clear_log()
        second.clear_log()
        result = run_bin("rexec-logout", "--end-session", env=env)
        assert result.code == 0 and second.url in result.out, result
        assert [e["method"] for e in first.log] == []
        assert [e["method"] for e in second.log] == ["DELETE"]
        assert [a["host"] for a in accounts(config_path.parent)] == [first.url]
        assert read_json(config_path)["host"] == first.url  # still the active login


# -- stored text is never shown raw ------------------------------------------------------------

HOSTILE_NAMES = [
    "bob\nhost=https://attacker.example",
    "eve\x1b]0;pwned\x07",
    "mal\x1b[2J\rory",
    "rtl\u202egnp.exe",
    "c1\x9bcontrol",
]


@pytest.mark.parametrize("form", [[], ["--porcelain"], ["--json"]], ids=str)
def test_stored_names_are_cleaned_in_every_output_form(config_path, form):
    for number, name in enumerate(HOSTILE_NAMES):
        record_login(
            config_path.parent,
            f"https://h{number}.example",
            API_TOKEN[:-1] + str(number),
            name,
            email=name + "@example.com",
            tier=name,
        )
    result = run_bin("rexec-whoami", "--all", "--offline", *form)
    assert result.code == 0, result
    for char in "\x1b\x07\r\x9b\u202e":
        assert char not in result.out + result.err, (char, result)
    if form == ["--porcelain"]:
        hosts = [line for line in result.out.splitlines() if line.startswith("host=")]
        assert sorted(hosts) == [f"host=https://h{n}.example" for n in range(len(HOSTILE_NAMES))]
        assert "attacker" not in "".join(hosts)
        keys = {line.partition("=")[0] for line in result.out.splitlines() if line}
        assert keys == WHOAMI_ALL_KEYS
    if form == ["--json"]:
        names = [obj["username"] for obj in json.loads(result.out)]
        assert "bob host=https://attacker.example" in names


def test_messages_naming_a_stored_login_are_cleaned_too(config_path):
    record_login(config_path.parent, "https://h.example", API_TOKEN, "eve\x1b]0;pwned\x07")
    record_login(config_path.parent, "https://h.example", "rexec_" + "z" * 64, "bob")
    for argv in (
        ["rexec-login", "--switch", "--host", "https://h.example", "--user", "zed"],
        ["rexec-logout", "--local", "--user", "eve\x1b]0;pwned\x07"],
    ):
        result = run_bin(*argv)
        assert "\x1b" not in result.out + result.err and "\x07" not in result.err, result
        assert "eve" in result.out + result.err, result


# -- a held lock is waited on for a bounded time -----------------------------------------------

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def test_a_held_lock_makes_writers_give_up_with_one_line_and_get_never_waits(config_path):
    record_login(config_path.parent, "https://rexec.pipeops.io", API_TOKEN)
    lock = config_path.parent / "config.json.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        started = time.monotonic()
        got = run_bin("rexec-credential", "get", stdin=b"", timeout=5)
        assert got.code == 0 and f"password={API_TOKEN}" in got.out, got
        stored = run_bin(
            "rexec-credential",
            "store",
            stdin="protocol=https\nhost=x.example\nusername=u\npassword=p\n",
            timeout=30,
        )
        waited = time.monotonic() - started
        assert stored.code == 4 and stored.err.count("\n") == 1, stored
        assert "another process holds" in stored.err and str(lock) in stored.err, stored
        assert waited >= 9, waited  # it did wait, about 10 s, before giving up
        assert credentials(config_path.parent) == []
    finally:
        holder.kill()
        holder.wait()
    stored = run_bin(
        "rexec-credential", "store", stdin="protocol=https\nhost=x\nusername=u\npassword=p\n"
    )
    assert stored.code == 0 and len(credentials(config_path.parent)) == 1, stored


def test_the_lock_is_taken_as_soon_as_it_is_released(tmp_path):
    from rexec_credential.storage import Storage

    box = Storage(str(tmp_path / "rexec"), print, lock_wait=5)
    box.update(lambda state: None)
    os.makedirs(box.directory, exist_ok=True)
    fd = os.open(box.lock_path, os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    import threading

    release = threading.Timer(0.3, lambda: os.close(fd))
    release.start()
    try:
        written = box.update(lambda state: state.config.update(host="https://h"))  # waits
    finally:
        release.join()
    assert written and box.load().config == {"host": "https://h"}


# -- smaller -----------------------------------------------------------------------------------


def test_whoami_without_config_json_but_with_stored_logins_names_switch(config_path):
    record_login(config_path.parent, "https://other.example", API_TOKEN)
    config_path.unlink()
    result = run_bin("rexec-whoami")
    assert result.code == 1 and "rexec-login --switch" in result.err, result


def test_a_stored_token_git_cannot_carry_is_skipped_by_the_installed_get(config_path):
    write_json(config_path, {"token": "\n"})
    result = run_bin("rexec-credential", "get", stdin=b"")
    assert (result.code, result.out, result.err) == (0, "", ""), result


def test_a_stored_list_value_git_cannot_carry_is_skipped_and_the_next_answers(config_path):
    # A hand-edited credential whose list value holds a line break: get would send it as
    # one line per item, so it is skipped like a text value that holds one.
    base = {"protocol": "https", "host": "example.com", "username": "u"}
    bad = {**base, "password": "first", "oauth_refresh_token": ["r\nhost=evil"]}
    good = {**base, "path": "repo.git", "password": "second"}
    write_json(config_path.parent / "credentials.json", {"credentials": [bad, good]})
    result = run_bin("rexec-credential", "get", stdin=b"protocol=https\nhost=example.com\n")
    assert result.code == 0 and result.err == "", result
    assert "password=second\n" in result.out and "evil" not in result.out
