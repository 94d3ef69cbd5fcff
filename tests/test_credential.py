"""`rexec-credential get|store|erase` (and git-credential-rexec): the command, in-process and as
a subprocess, including the Rexec specifics (REXEC_TOKEN, JWT exp, placeholder username) and
the hot-path import budget."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys

import pytest
from conftest import BIN_DIR, REPO, call, run_bin
from helpers import accounts, credentials, jwt, record_login, write_json

from rexec_credential.commands import credential
from rexec_credential.context import Context

NOW = 1_700_000_000
HOST = "https://rexec.pipeops.io"
API_TOKEN = "rexec_" + "a1" * 32
OTHER_TOKEN = "rexec_" + "b2" * 32


def helper(op: str, stdin: str | bytes = b"", **kw):
    """Run the command in-process at NOW."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return call("credential", [op], stdin=data, clock=lambda: NOW, **kw)


def lines(*items: str) -> str:
    return "".join(f"{item}\n" for item in items)


write_config = write_json


def read_config(config_path) -> dict:
    return json.loads(config_path.read_text())


def ok(result, out: str = "") -> None:
    assert (result.code, result.err, result.out) == (0, "", out)


REXEC = lines("protocol=https", "host=rexec.pipeops.io")
ANSWER = lines(
    "protocol=https", "host=rexec.pipeops.io", "username=johndoe", f"password={API_TOKEN}"
)


# -- get ------------------------------------------------------------------------------------


def test_get_answers_a_stored_credential():
    ok(helper("store", lines("protocol=https", "host=example.com", "username=u", "password=p")))
    ok(
        helper("get", lines("protocol=https", "host=example.com")),
        lines("protocol=https", "host=example.com", "username=u", "password=p"),
    )


def test_get_no_match_prints_nothing_and_exits_0(home):
    ok(helper("get", lines("protocol=https", "host=example.com")))
    assert not (home / ".rexec").exists()


def test_get_active_login(config_path):
    record_login(config_path.parent, HOST, API_TOKEN)
    ok(helper("get", REXEC), ANSWER)


def test_get_empty_query_returns_the_active_login(config_path):
    """`rexec-credential get </dev/null` prints the current login."""
    record_login(config_path.parent, HOST, API_TOKEN)
    ok(helper("get", b""), ANSWER)


def test_get_empty_query_without_login_prints_nothing():
    ok(helper("get", b""))


def test_get_active_login_answers_every_path_and_echoes_it(config_path):
    record_login(config_path.parent, HOST, API_TOKEN)
    ok(
        helper("get", REXEC + lines("path=org/repo.git")),
        lines(
            "protocol=https",
            "host=rexec.pipeops.io",
            "path=org/repo.git",
            "username=johndoe",
            f"password={API_TOKEN}",
        ),
    )


def test_get_url_is_expanded(config_path):
    record_login(config_path.parent, "http://127.0.0.1:8080", API_TOKEN)
    ok(
        helper("get", lines("url=http://johndoe@127.0.0.1:8080/org/repo.git")),
        lines(
            "protocol=http",
            "host=127.0.0.1:8080",
            "path=org/repo.git",
            "username=johndoe",
            f"password={API_TOKEN}",
        ),
    )


def test_get_active_login_port_in_host(config_path):
    record_login(config_path.parent, "https://rexec.example.com:8443/", API_TOKEN)
    ok(helper("get", lines("protocol=https", "host=rexec.example.com")))
    assert "password=" in helper("get", lines("protocol=https", "host=rexec.example.com:8443")).out


def test_get_placeholder_username_when_none_known(config_path):
    write_config(config_path, {"host": "https://rexec.pipeops.io", "token": API_TOKEN})
    ok(
        helper("get", REXEC),
        lines(
            "protocol=https",
            "host=rexec.pipeops.io",
            "username=x-rexec-token",
            f"password={API_TOKEN}",
        ),
    )


def test_get_jwt_exp_is_password_expiry_utc(config_path):
    token = jwt(username="johndoe", exp=NOW + 3600)
    record_login(config_path.parent, HOST, token)
    ok(
        helper("get", REXEC),
        lines(
            "protocol=https",
            "host=rexec.pipeops.io",
            "username=johndoe",
            f"password={token}",
            f"password_expiry_utc={NOW + 3600}",
        ),
    )


def test_get_never_returns_an_expired_token(config_path):
    record_login(config_path.parent, HOST, jwt(username="johndoe", exp=NOW))
    ok(helper("get", REXEC))
    ok(helper("get", b""))


def test_get_a_token_only_for_its_own_host(config_path):
    record_login(config_path.parent, HOST, API_TOKEN)
    for query in (
        lines("protocol=http", "host=rexec.pipeops.io"),
        lines("protocol=https", "host=evil.example.com"),
        lines("protocol=https", "host=rexec.pipeops.io.evil.com"),
        lines("protocol=https", "host=rexec.pipeops.io", "username=janedoe"),
    ):
        ok(helper("get", query))


def test_get_with_rexec_host_elsewhere_ignores_the_config_token(config_path, monkeypatch):
    record_login(config_path.parent, HOST, API_TOKEN)
    monkeypatch.setenv("REXEC_HOST", "https://staging.example.com")
    ok(helper("get", b""))
    ok(
        helper(
            "store",
            lines(
                "protocol=https",
                "host=staging.example.com",
                "username=ci",
                f"password={OTHER_TOKEN}",
            ),
        )
    )
    ok(
        helper("get", b""),
        lines(
            "protocol=https", "host=staging.example.com", "username=ci", f"password={OTHER_TOKEN}"
        ),
    )


def test_get_returns_expiry_and_refresh_token_in_order():
    ok(
        helper(
            "store",
            lines(
                "protocol=https",
                "host=example.com",
                "username=u",
                "password=p",
                "oauth_refresh_token=xyzzy",
                "password_expiry_utc=9999999999",
            ),
        )
    )
    ok(
        helper("get", lines("protocol=https", "host=example.com")),
        lines(
            "protocol=https",
            "host=example.com",
            "username=u",
            "password=p",
            "password_expiry_utc=9999999999",
            "oauth_refresh_token=xyzzy",
        ),
    )


def test_get_ignores_unknown_keys_and_lists():
    ok(helper("store", lines("protocol=https", "host=example.com", "username=u", "password=p")))
    ok(
        helper(
            "get",
            lines(
                "capability[]=authtype",
                "protocol=https",
                "host=example.com",
                "future=1",
                "wwwauth[]=Basic realm=x host=other.tld",
                "state[]=a",
            ),
        ),
        lines("protocol=https", "host=example.com", "username=u", "password=p"),
    )


def test_get_on_a_corrupted_config_is_one_line_exit_4(config_path):
    write_config(config_path, {})
    config_path.write_text("{not json")
    result = helper("get", REXEC)
    assert (result.code, result.out) == (4, "")
    assert result.err.count("\n") == 1 and "is corrupted" in result.err
    assert config_path.read_text() == "{not json"  # never touched by a reader


@pytest.mark.parametrize("token", ["a\nhost=evil", "\n", "x\0y"])
def test_get_skips_a_stored_login_it_cannot_send(config_path, token):
    """A value with a line break cannot cross git's protocol: that login is skipped, as if
    absent (exit 0, nothing on stderr: git shows stderr on every fetch)."""
    write_config(config_path, {"host": "https://rexec.pipeops.io", "token": token})
    result = helper("get", REXEC)
    assert (result.code, result.out, result.err) == (0, "", "")
    result = helper("get", "")
    assert (result.code, result.out, result.err) == (0, "", "")


def test_get_answers_the_next_login_after_one_it_cannot_send(config_path):
    write_config(config_path, {"host": "https://rexec.pipeops.io", "token": "\n"})
    stored = REXEC + lines("username=bob", f"password={API_TOKEN}")
    assert helper("store", stored).code == 0
    result = helper("get", REXEC)
    assert result.code == 0 and f"password={API_TOKEN}\n" in result.out, result


# -- REXEC_TOKEN ----------------------------------------------------------------------------


def test_env_token_answers_for_the_default_host(monkeypatch):
    monkeypatch.setenv("REXEC_TOKEN", API_TOKEN)
    ok(
        helper("get", REXEC),
        lines(
            "protocol=https",
            "host=rexec.pipeops.io",
            "username=x-rexec-token",
            f"password={API_TOKEN}",
        ),
    )
    ok(
        helper("get", b""),
        lines(
            "protocol=https",
            "host=rexec.pipeops.io",
            "username=x-rexec-token",
            f"password={API_TOKEN}",
        ),
    )


def test_env_token_before_anything_stored(config_path, monkeypatch):
    record_login(config_path.parent, HOST, API_TOKEN)
    monkeypatch.setenv("REXEC_TOKEN", OTHER_TOKEN)
    assert f"password={OTHER_TOKEN}\n" in helper("get", REXEC).out


def test_env_token_host_from_rexec_host_then_config(config_path, monkeypatch):
    record_login(config_path.parent, "http://127.0.0.1:8080", API_TOKEN)
    monkeypatch.setenv("REXEC_TOKEN", OTHER_TOKEN)
    assert helper("get", lines("protocol=http", "host=127.0.0.1:8080")).out.endswith(
        f"password={OTHER_TOKEN}\n"
    )
    ok(helper("get", REXEC))  # not the default host: the config names another
    monkeypatch.setenv("REXEC_HOST", "https://Rexec.Example.com:443/")
    ok(
        helper("get", lines("protocol=http", "host=127.0.0.1:8080")),
        lines("protocol=http", "host=127.0.0.1:8080", "username=johndoe", f"password={API_TOKEN}"),
    )
    ok(
        helper("get", lines("protocol=https", "host=rexec.example.com")),
        lines(
            "protocol=https",
            "host=rexec.example.com",
            "username=x-rexec-token",
            f"password={OTHER_TOKEN}",
        ),
    )


def test_env_token_not_for_another_host(monkeypatch):
    monkeypatch.setenv("REXEC_TOKEN", API_TOKEN)
    ok(helper("get", lines("protocol=https", "host=github.com")))
    ok(helper("get", lines("protocol=http", "host=rexec.pipeops.io")))


@pytest.mark.parametrize(
    "rexec_host, allowed, answered",
    [
        ("http://example.com", None, False),  # plain http to a remote host: never
        ("http://127.0.0.1.evil.example", None, False),  # a name, not a loopback address
        ("http://example.com", "1", True),  # unless the user allows it, as every command
        ("http://127.0.0.1:8080", None, True),  # loopback: the stand-in
    ],
    ids=["remote", "name-127", "allowed", "loopback"],
)
def test_env_token_follows_the_plain_http_rule(monkeypatch, rexec_host, allowed, answered):
    monkeypatch.setenv("REXEC_TOKEN", API_TOKEN)
    monkeypatch.setenv("REXEC_HOST", rexec_host)
    if allowed:
        monkeypatch.setenv("REXEC_ALLOW_INSECURE_HTTP", allowed)
    hostport = rexec_host.split("//")[1]
    for query in (lines("protocol=http", f"host={hostport}"), ""):
        result = helper("get", query)
        assert (result.code, result.err) == (0, "")
        assert (f"password={API_TOKEN}\n" in result.out) is answered


def test_env_token_takes_the_asked_username_and_any_path(monkeypatch):
    monkeypatch.setenv("REXEC_TOKEN", API_TOKEN)
    ok(
        helper("get", REXEC + lines("path=a/b.git", "username=ci-bot")),
        lines(
            "protocol=https",
            "host=rexec.pipeops.io",
            "path=a/b.git",
            "username=ci-bot",
            f"password={API_TOKEN}",
        ),
    )


def test_env_jwt_username_and_expiry(monkeypatch):
    token = jwt(username="johndoe", exp=NOW + 60)
    monkeypatch.setenv("REXEC_TOKEN", token)
    ok(
        helper("get", REXEC),
        lines(
            "protocol=https",
            "host=rexec.pipeops.io",
            "username=johndoe",
            f"password={token}",
            f"password_expiry_utc={NOW + 60}",
        ),
    )
    ok(helper("get", REXEC + lines("username=janedoe")))


def test_env_jwt_expired_falls_back_to_stored(config_path, monkeypatch):
    record_login(config_path.parent, HOST, API_TOKEN)
    monkeypatch.setenv("REXEC_TOKEN", jwt(username="johndoe", exp=NOW - 1))
    assert helper("get", REXEC).out.endswith(f"password={API_TOKEN}\n")


def test_env_token_is_never_stored(home, monkeypatch):
    monkeypatch.setenv("REXEC_TOKEN", API_TOKEN)
    ok(helper("store", REXEC + lines("username=x-rexec-token", f"password={API_TOKEN}")))
    assert not (home / ".rexec").exists()


def test_env_token_set_other_passwords_still_stored(config_path, monkeypatch):
    monkeypatch.setenv("REXEC_TOKEN", API_TOKEN)
    ok(helper("store", lines("protocol=https", "host=example.com", "username=u", "password=p")))
    assert not config_path.exists()  # a credential for another host leaves config.json alone
    assert API_TOKEN not in (config_path.parent / "credentials.json").read_text()
    assert credentials(config_path.parent)[0]["password"] == "p"


def test_env_token_erase_leaves_stored_login(config_path, monkeypatch):
    record_login(config_path.parent, HOST, API_TOKEN)
    monkeypatch.setenv("REXEC_TOKEN", OTHER_TOKEN)
    ok(helper("erase", REXEC + lines("username=x-rexec-token", f"password={OTHER_TOKEN}")))
    assert read_config(config_path)["token"] == API_TOKEN


# -- store ----------------------------------------------------------------------------------


def test_store_writes_a_private_file(config_path):
    ok(helper("store", lines("protocol=https", "host=example.com", "username=u", "password=p")))
    stored = config_path.parent / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "extra",
    [
        lines("ephemeral=1"),
        lines("ephemeral=true"),
        lines(f"password_expiry_utc={NOW - 1}"),
        lines("quit=1"),
    ],
    ids=["ephemeral=1", "ephemeral=true", "expired", "quit"],
)
def test_store_refused_touches_nothing(home, extra):
    ok(
        helper(
            "store", lines("protocol=https", "host=example.com", "username=u", "password=p") + extra
        )
    )
    assert not (home / ".rexec").exists()


@pytest.mark.parametrize("missing", ["protocol", "host", "username", "password"])
def test_store_needs_all_four_keys(home, missing):
    fields = {"protocol": "https", "host": "example.com", "username": "u", "password": "p"}
    del fields[missing]
    ok(helper("store", lines(*(f"{k}={v}" for k, v in fields.items()))))
    assert not (home / ".rexec").exists()


def test_store_same_credential_twice_does_not_rewrite(config_path):
    request = lines("protocol=https", "host=example.com", "username=u", "password=p")
    ok(helper("store", request))
    stored = config_path.parent / "credentials.json"
    before = stored.stat().st_mtime_ns, stored.stat().st_ino
    ok(helper("store", request))
    assert (stored.stat().st_mtime_ns, stored.stat().st_ino) == before


def test_storing_the_active_login_again_writes_nothing(config_path):
    record_login(config_path.parent, HOST, API_TOKEN)
    files = [config_path, config_path.parent / "credentials.json"]
    before = [(f.stat().st_mtime_ns, f.stat().st_ino) for f in files]
    ok(helper("store", REXEC + lines("username=johndoe", f"password={API_TOKEN}")))
    assert [(f.stat().st_mtime_ns, f.stat().st_ino) for f in files] == before


def test_store_for_the_active_login_updates_it_in_place(config_path):
    record_login(config_path.parent, HOST, API_TOKEN)
    ok(
        helper(
            "store",
            REXEC + lines("username=johndoe", f"password={OTHER_TOKEN}", "oauth_refresh_token=r1"),
        )
    )
    data = read_config(config_path)
    assert data == {
        "host": "https://rexec.pipeops.io",
        "token": OTHER_TOKEN,
        "username": "johndoe",
        "email": "john@example.com",
        "tier": "pro",
    }
    [account] = accounts(config_path.parent)
    assert (account["token"], account["oauth_refresh_token"]) == (OTHER_TOKEN, "r1")
    assert credentials(config_path.parent) == []
    ok(
        helper("get", REXEC),
        lines(
            "protocol=https",
            "host=rexec.pipeops.io",
            "username=johndoe",
            f"password={OTHER_TOKEN}",
            "oauth_refresh_token=r1",
        ),
    )


def test_store_keeps_unknown_top_level_keys(config_path):
    write_config(config_path, {"future": [1, 2]})
    write_config(config_path.parent / "credentials.json", {"version": 1, "extension": {"a": 1}})
    ok(helper("store", lines("protocol=https", "host=example.com", "username=u", "password=p")))
    assert read_config(config_path)["future"] == [1, 2]
    assert read_config(config_path.parent / "credentials.json")["extension"] == {"a": 1}


# -- erase ----------------------------------------------------------------------------------


def test_erase_without_a_config_creates_nothing(home):
    ok(helper("erase", lines("protocol=https", "host=example.com")))
    assert not (home / ".rexec").exists()


def test_erase_revoked_active_login_removes_the_token(config_path):
    """git calls erase when the server rejects the token: it must not be handed out again."""
    record_login(config_path.parent, HOST, API_TOKEN)
    ok(
        helper(
            "erase",
            REXEC
            + lines("username=johndoe", f"password={API_TOKEN}", 'wwwauth[]=Basic realm="rexec"'),
        )
    )
    data = read_config(config_path)
    assert "token" not in data and data["host"] == "https://rexec.pipeops.io"
    ok(helper("get", REXEC))


def test_erase_empty_pattern_erases_nothing(config_path):
    record_login(config_path.parent, HOST, API_TOKEN)
    before = config_path.read_text()
    for request in (b"", lines(f"password={API_TOKEN}"), lines("wwwauth[]=x")):
        ok(helper("erase", request))
    assert config_path.read_text() == before


# -- protocol edges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, answered", [("1", False), ("true", False), ("yes", False), ("0", True), ("false", True)]
)
def test_quit(config_path, value, answered):
    record_login(config_path.parent, HOST, API_TOKEN)
    result = helper("get", REXEC + lines(f"quit={value}"))
    assert (result.code, result.err) == (0, "")
    assert bool(result.out) is answered


@pytest.mark.parametrize("op", ["capability", "list", "future-operation", "GET"])
def test_unknown_operation_is_ignored_without_reading_input(config_path, op):
    record_login(config_path.parent, HOST, API_TOKEN)
    ok(helper(op, b"\0garbage\xff with no equals sign\n"))


def test_blank_line_ends_the_request(config_path):
    record_login(config_path.parent, HOST, API_TOKEN)
    ok(
        helper("get", REXEC + "\nhost=evil.example.com\n"),
        lines(
            "protocol=https", "host=rexec.pipeops.io", "username=johndoe", f"password={API_TOKEN}"
        ),
    )


MALFORMED = [
    ("no =", b"protocol=https\nhost\n"),
    ("NUL byte", b"protocol=https\nhost=rexec.pipeops.io\0\n"),
    ("bad UTF-8", b"protocol=https\nusername=\xc3\x28\n"),
    ("line over 65535 bytes", b"protocol=https\nwwwauth[]=" + b"x" * 70000 + b"\n"),
    ("url without scheme", b"url=rexec.pipeops.io\n"),
]


@pytest.mark.parametrize("op", ["get", "store", "erase"])
@pytest.mark.parametrize("data", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_input_in_process(config_path, op, data):
    record_login(config_path.parent, HOST, API_TOKEN)
    before = config_path.read_text()
    body = data + b"username=johndoe\npassword=" + API_TOKEN.encode() + b"\n"
    result = helper(op, body)
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("invalid credential input: ") and result.err.count("\n") == 1
    assert config_path.read_text() == before


# -- usage --------------------------------------------------------------------------------


def test_help_prints_the_usage():
    result = call("credential", ["--help"])
    assert (result.code, result.err) == (0, "")
    assert result.out == credential.__doc__.strip("\n") + "\n"
    for needle in (
        "rexec-credential [--bearer] (get | store | erase)",
        "git-credential-rexec",
        "x-rexec-token",
        "REXEC_TOKEN",
        "~/.rexec/config.json",
        "Options:",
    ):
        assert needle in result.out


def test_version():
    result = call("credential", ["--version"])
    assert result.code == 0 and result.out.startswith("rexec-credential ")


@pytest.mark.parametrize("argv", [[], ["get", "extra"], ["--bogus"]])
def test_bad_command_line(argv):
    result = call("credential", argv)
    assert (result.code, result.out) == (2, "")
    assert result.err.count("\n") == 1


def test_quick_parse_only_takes_gits_forms():
    """git runs the helper `rexec` as `git credential-rexec OP`, and `rexec --bearer` as
    `git credential-rexec --bearer OP`: both without docopt; anything else through it."""
    assert credential.quick_parse(["get"]) == {"<operation>": "get", "--bearer": False}
    assert credential.quick_parse(["--bearer", "get"]) == {"<operation>": "get", "--bearer": True}
    assert credential.quick_parse(["--bearer", "future"]) == {
        "<operation>": "future",
        "--bearer": True,
    }
    for argv in (
        ["--help"],
        ["get", "x"],
        [],
        ["--bearer"],
        ["get", "--bearer"],
        ["--bearer", "--help"],
        ["--bearer", "configure"],
        ["--bearer", ""],
        ["--bogus", "get"],
        ["--bearer", "get", "x"],
    ):
        assert credential.quick_parse(argv) is None, argv


@pytest.mark.parametrize("op", ["get", "store", "erase", "capability"])
def test_docopt_form_runs_the_same(config_path, op):
    """Should argv ever go through docopt, run() gets Options read from docopt's dict and
    does the same."""
    from docopt import docopt

    record_login(config_path.parent, HOST, API_TOKEN)
    args = docopt(credential.__doc__, [op], default_help=False)
    quick = helper(op, REXEC)
    record_login(config_path.parent, HOST, API_TOKEN)
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(
        env=dict(os.environ),
        stdin=io.BytesIO(REXEC.encode()),
        stdout=out,
        stderr=err,
        clock=lambda: NOW,
    )
    assert credential.run(credential.Options.from_docopt(args), ctx) == quick.code
    assert (out.getvalue(), err.getvalue()) == (quick.out, quick.err)


# -- as installed executables -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["rexec-credential", "git-credential-rexec"])
def test_executables_round_trip(name, config_path):
    ok(
        run_bin(
            name,
            "store",
            stdin=lines("protocol=https", "host=example.com", "username=u", "password=p"),
        )
    )
    ok(
        run_bin(name, "get", stdin=lines("protocol=https", "host=example.com")),
        lines("protocol=https", "host=example.com", "username=u", "password=p"),
    )
    ok(run_bin(name, "erase", stdin=lines("protocol=https", "host=example.com")))
    ok(run_bin(name, "get", stdin=lines("protocol=https", "host=example.com")))


def test_executable_get_dev_null(config_path):
    record_login(config_path.parent, HOST, API_TOKEN)
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.run(
            [str(BIN_DIR / "rexec-credential"), "get"],
            stdin=devnull,
            capture_output=True,
            timeout=60,
        )
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert proc.stdout.decode() == lines(
        "protocol=https", "host=rexec.pipeops.io", "username=johndoe", f"password={API_TOKEN}"
    )


@pytest.mark.parametrize("op", ["get", "store", "erase"])
@pytest.mark.parametrize("data", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_input_subprocess(config_path, op, data):
    record_login(config_path.parent, HOST, API_TOKEN)
    before = config_path.read_bytes()
    result = run_bin("git-credential-rexec", op, stdin=data + b"username=u\npassword=p\n")
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("invalid credential input: ") and result.err.count("\n") == 1
    assert config_path.read_bytes() == before


def test_executable_help():
    result = run_bin("rexec-credential", "--help")
    assert (result.code, result.err) == (0, "")
    assert result.out == credential.__doc__.strip("\n") + "\n"


# -- hot path: what `get` imports -------------------------------------------------------------

# What `python -c "import json"` loads anyway is the floor; beyond it `get` may load only
# these (plus the package itself). Anything else is a cost git pays on every fetch.
ALLOWED_BEYOND_JSON = {
    "__future__",
    "os",
    "os.path",
    "posixpath",
    "genericpath",
    "stat",
    "_stat",
    "base64",
    "binascii",
    "struct",
    "_struct",
    "importlib",
    "importlib._bootstrap",
    "importlib._bootstrap_external",
    "warnings",
}

# What `get` must never load: each a cost git pays on every fetch, or a sign that `get` went
# down a path it must not (the lock, a request, a prompt). json, base64 and binascii are not
# here: `get` parses the two files and a JWT's claims with them.
FORBIDDEN = {
    "requests": "the HTTP client: only api imports it, and get asks no server",
    "urllib3": "requests' transport",
    "http": "the standard HTTP package, which requests' transport loads",
    "http.client": "the standard HTTP client, which requests' transport loads",
    "email": "http.client's header parser",
    "socket": "get opens no connection",
    "ssl": "OpenSSL's bindings: get opens no connection",
    "docopt": "the full command-line parser: git's two forms are read by quick_parse",
    "argparse": "another parser, and a large one: nothing of ours uses it",
    "typing": "annotations are postponed; type-only imports sit under TYPE_CHECKING = False",
    "re": "json loads it itself (as in the floor), but no module of ours on get's path "
    "imports it: hosts and tokens look for 'rexec_' or 'eyJ' by hand before any pattern",
    "dataclasses": "it loads inspect; our records are plain classes with __slots__",
    "inspect": "large (dis, tokenize, ...); nothing on get's path introspects",
    "urllib": "URL quoting for login and logout; get decodes git's url= by hand",
    "urllib.parse": "only for a url= that holds a %-escape (none of the requests here)",
    "subprocess": "configure and unconfigure run git; get runs nothing",
    "threading": "the callback server and whoami --all's checks; get waits for nothing",
    "fcntl": "the lock: get only reads, and never takes it",
    "datetime": "get compares Unix seconds; nothing of ours formats a datetime",
    "calendar": "api reads a token's RFC 3339 expiry; get never does",
    "locale": "date and number formatting; get formats neither",
    "logging": "large, and nothing of ours logs",
    "contextlib": "the terminal's context managers; get holds none",
    "hashlib": "OpenSSL's hashes: the answer page's script hash",
    "hmac": "the callback's constant-time nonce comparison",
    "secrets": "the callback's nonce",
    "socketserver": "the callback server",
    "http.server": "the callback server",
    "html": "the answer page",
    "webbrowser": "rexec-login opens a browser",
    "getpass": "hidden input at a terminal",
    "termios": "hidden input at a terminal",
    "select": "rexec-login's wait for a pasted token",
    "rexec_credential.api": "the HTTP client (and requests with it)",
    "rexec_credential.callback": "rexec-login's loopback server",
    "rexec_credential.answer_page": "rexec-login's answer page",
    "rexec_credential.paste": "what a person pastes while rexec-login waits",
    "rexec_credential.terminal": "prompts, countdown, pasted lines",
    "rexec_credential.gitsetup": "configure and unconfigure",
    "rexec_credential.trace": "only when REXEC_TRACE is set (the tests unset it)",
    "rexec_credential.commands.login": "another command",
    "rexec_credential.commands.logout": "another command",
    "rexec_credential.commands.whoami": "another command",
}
HARNESS = """
import sys
sys.argv = ["rexec-credential", *sys.argv[1:]]
try:
    from rexec_credential.cli import run
    run("credential")
finally:
    sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")
"""


def _modules_without_site(*args: str, stdin: bytes) -> tuple[str, set]:
    """Run python -S (no site, so no editable-install finder importing re & co.)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-S", *args], input=stdin, capture_output=True, env=env, timeout=60
    )
    err = proc.stderr.decode()
    marker = err.rindex("MODULES ") if "MODULES " in err else None
    assert marker is not None, err
    return proc.stdout.decode(), set(err[marker + 8 :].split())


@pytest.mark.parametrize(
    "argv, stdin, answer",
    [
        (["get"], REXEC, "password="),
        (["get"], "", "password="),
        (
            ["get"],
            lines("url=https://rexec.pipeops.io/org/repo.git", "wwwauth[]=Basic realm=x"),
            "password=",
        ),
        (["--bearer", "get"], "capability[]=authtype\n" + REXEC, "credential="),
        (["--bearer", "get"], REXEC, "password="),
    ],
    ids=["query", "empty", "url", "bearer", "bearer-older-git"],
)
def test_get_imports_nothing_beyond_json(config_path, monkeypatch, argv, stdin, answer):
    """Nor docopt for `--bearer get`, nor the trace module when REXEC_TRACE is unset."""
    record_login(config_path.parent, HOST, jwt(username="johndoe", exp=NOW * 2))
    monkeypatch.delenv("REXEC_TRACE", raising=False)
    out, modules = _modules_without_site("-c", HARNESS, *argv, stdin=stdin.encode())
    assert answer in out
    assert "rexec_credential.trace" not in modules
    _, floor = _modules_without_site(
        "-c", "import sys, json; sys.stderr.write('MODULES ' + ' '.join(sys.modules))", stdin=b""
    )
    extra = {m for m in modules - floor if not m.startswith("rexec_credential")}
    assert not modules & FORBIDDEN.keys() - floor
    assert extra <= ALLOWED_BEYOND_JSON, sorted(extra - ALLOWED_BEYOND_JSON)
    assert not {"rexec_credential.api", "rexec_credential.commands.login"} & modules


def test_the_trace_module_is_imported_only_when_rexec_trace_is_set(config_path, monkeypatch):
    """The control for the test above: the harness sees the module when it is imported."""
    record_login(config_path.parent, HOST, API_TOKEN)
    monkeypatch.setenv("REXEC_TRACE", "2")
    _, modules = _modules_without_site("-c", HARNESS, "get", stdin=REXEC.encode())
    assert "rexec_credential.trace" in modules
    assert "docopt" not in modules and "requests" not in modules


# Runs an installed executable (its path, then its arguments) as git would, with the
# interpreter's site and the install's finder, after `import json` (the bench's floor), and
# reports the modules loaded beyond that (NEW) and every module an `import` statement of
# ours names, loaded already or not (DIRECT): json loads re, so only DIRECT shows that a
# module of ours imports it.
INSTALLED_HARNESS = """
import builtins, json, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
with open(script) as file:
    code = compile(file.read(), script, "exec")
original, direct = builtins.__import__, set()
def recording(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if level == 0 and (importer == "__main__" or importer.startswith("rexec_credential")):
        direct.update([name, *(name + "." + item for item in fromlist or ())])
    return original(name, globals, locals, fromlist, level)
before = set(sys.modules)
builtins.__import__ = recording
try:
    exec(code, {"__name__": "__main__", "__file__": script})
finally:
    builtins.__import__ = original
    sys.stderr.write("NEW " + " ".join(sorted(set(sys.modules) - before)) + "\\n")
    sys.stderr.write("DIRECT " + " ".join(sorted(direct)) + "\\n")
"""


def _installed(name: str, *argv: str, stdin: bytes) -> tuple:
    """Run the installed executable under INSTALLED_HARNESS: the process, and NEW and DIRECT."""
    proc = subprocess.run(
        [sys.executable, "-c", INSTALLED_HARNESS, str(BIN_DIR / name), *argv],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    found = {
        line.split(" ", 1)[0]: set(line.split()[1:])
        for line in proc.stderr.decode().splitlines()
        if line.startswith(("NEW ", "DIRECT "))
    }
    assert set(found) == {"NEW", "DIRECT"}, proc.stderr.decode()
    return proc, found


@pytest.mark.parametrize(
    "name, argv, stdin, answer",
    [
        ("rexec-credential", ["get"], REXEC, "password="),
        ("git-credential-rexec", ["get"], REXEC, "password="),
        ("git-credential-rexec", ["get"], "", "password="),
        (
            "git-credential-rexec",
            ["--bearer", "get"],
            "capability[]=authtype\n" + REXEC,
            "credential=",
        ),
    ],
    ids=["rexec-credential", "git-credential-rexec", "empty", "bearer"],
)
def test_installed_get_imports_nothing_forbidden(
    config_path, monkeypatch, name, argv, stdin, answer
):
    """The installed executables, as git runs them: beyond `import json`, get loads none of
    FORBIDDEN, and no module of ours imports one (not even one something else loaded first:
    re, or on 3.9 typing, which an editable install's finder loads before our code)."""
    record_login(config_path.parent, HOST, jwt(username="johndoe", exp=NOW * 2))
    monkeypatch.delenv("REXEC_TRACE", raising=False)
    proc, found = _installed(name, *argv, stdin=stdin.encode())
    assert proc.returncode == 0 and answer.encode() in proc.stdout, proc.stderr
    assert "rexec_credential.state" in found["NEW"]  # the harness sees what get loads
    assert not found["NEW"] & FORBIDDEN.keys(), sorted(found["NEW"] & FORBIDDEN.keys())
    assert not found["DIRECT"] & FORBIDDEN.keys(), sorted(found["DIRECT"] & FORBIDDEN.keys())


def test_the_installed_harness_sees_an_import_of_ours_and_what_it_loads():
    """The control for the test above: `--version` goes through docopt, which cli imports."""
    proc, found = _installed("rexec-credential", "--version", stdin=b"")
    assert proc.returncode == 0 and proc.stdout.startswith(b"rexec-credential ")
    assert "docopt" in found["NEW"] and "docopt" in found["DIRECT"]
