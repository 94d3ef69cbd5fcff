"""git's newer protocol (capability[], authtype, credential, ephemeral: git 2.46) and
`--bearer` (docs/contract.md §5, rexec-credential): what a request that announces the
capability gets, what one that does not gets — exactly what the previous release answered —
and what store and erase do with the second form. git's own helper_test_authtype scenarios
are in tests/test_git_conformance.py; this file holds the rest, in-process and through the
installed executables."""

from __future__ import annotations

import json

import pytest
from conftest import call, run_bin
from helpers import NOW, changes, credentials, jwt, record_login

from rexec_credential.state import State

API = "rexec_" + "a1" * 32
OTHER = "rexec_" + "b2" * 32
JANE = jwt(username="janedoe", exp=NOW + 3600, sid="s1")
HOST = "https://rexec.pipeops.io"
CAPABLE = "capability[]=authtype\n"


def lines(*items: str) -> str:
    return "".join(f"{item}\n" for item in items)


def helper(*argv: str, stdin: str = "", **kw):
    """rexec-credential ARGV in-process at NOW."""
    return call("credential", list(argv), stdin=stdin.encode(), clock=lambda: NOW, **kw)


def ok(result, out: str = "") -> None:
    assert (result.code, result.err, result.out) == (0, "", out), result


REXEC = lines("protocol=https", "host=rexec.pipeops.io")
BEARER_ANSWER = lines(
    "capability[]=authtype",
    "authtype=Bearer",
    f"credential={API}",
    "protocol=https",
    "host=rexec.pipeops.io",
    "username=johndoe",
)
PASSWORD_ANSWER = lines(
    "protocol=https", "host=rexec.pipeops.io", "username=johndoe", f"password={API}"
)


@pytest.fixture
def logged_in(config_path):
    record_login(config_path.parent, HOST, API)
    return config_path


# -- an older git: no capability line, exactly the previous release's answer -----------------

# What 0.2.0 (the release before capabilities) printed for these requests, recorded from its
# code with the stored data of `previous_release_data` below; (request, answer).
PREVIOUS_RELEASE = [
    (
        "protocol=https\nhost=rexec.pipeops.io\n",
        f"protocol=https\nhost=rexec.pipeops.io\nusername=johndoe\npassword={API}\n",
    ),
    (
        "protocol=https\nhost=rexec.pipeops.io\nusername=janedoe\n",
        "protocol=https\nhost=rexec.pipeops.io\nusername=janedoe\n"
        f"password={JANE}\npassword_expiry_utc=1700003600\n",
    ),
    (
        "protocol=https\nhost=rexec.pipeops.io\npath=a/b.git\n",
        f"protocol=https\nhost=rexec.pipeops.io\npath=a/b.git\nusername=johndoe\npassword={API}\n",
    ),
    ("", f"protocol=https\nhost=rexec.pipeops.io\nusername=johndoe\npassword={API}\n"),
    (
        "protocol=https\nhost=example.com\n",
        "protocol=https\nhost=example.com\nusername=v\npassword=q\n",
    ),
    (
        "protocol=https\nhost=example.com\nusername=v\npath=org/repo.git\n",
        "protocol=https\nhost=example.com\npath=org/repo.git\nusername=v\npassword=q\n",
    ),
    (
        "protocol=https\nhost=example.com\nusername=v\n",
        "protocol=https\nhost=example.com\nusername=v\npassword=q\n",
    ),
    (
        "protocol=https\nhost=example.com\nusername=u\n",
        "protocol=https\nhost=example.com\nusername=u\npassword=p\n"
        "password_expiry_utc=9999999999\noauth_refresh_token=r\n",
    ),
    (
        "url=https://janedoe@rexec.pipeops.io/org/repo.git\n",
        "protocol=https\nhost=rexec.pipeops.io\npath=org/repo.git\nusername=janedoe\n"
        f"password={JANE}\npassword_expiry_utc=1700003600\n",
    ),
    (
        "protocol=http\nhost=127.0.0.1:8080\n",
        "protocol=http\nhost=127.0.0.1:8080\nusername=\npassword=\n",
    ),
    ("protocol=https\nhost=other.tld\n", ""),
    (
        'protocol=https\nhost=rexec.pipeops.io\nwwwauth[]=Bearer realm="rexec"\n',
        f"protocol=https\nhost=rexec.pipeops.io\nusername=johndoe\npassword={API}\n",
    ),
]
PREVIOUS_RELEASE_ENV = [  # the same, with REXEC_TOKEN=OTHER
    (
        "protocol=https\nhost=rexec.pipeops.io\n",
        f"protocol=https\nhost=rexec.pipeops.io\nusername=x-rexec-token\npassword={OTHER}\n",
    ),
    (
        "protocol=https\nhost=rexec.pipeops.io\nusername=janedoe\n",
        f"protocol=https\nhost=rexec.pipeops.io\nusername=janedoe\npassword={OTHER}\n",
    ),
    (
        "protocol=https\nhost=rexec.pipeops.io\npath=a/b.git\n",
        "protocol=https\nhost=rexec.pipeops.io\npath=a/b.git\nusername=x-rexec-token\n"
        f"password={OTHER}\n",
    ),
    ("", f"protocol=https\nhost=rexec.pipeops.io\nusername=x-rexec-token\npassword={OTHER}\n"),
]
# credentials.json as 0.2.0 wrote it after those logins and stores.
PREVIOUS_RELEASE_FILE = (
    "{\n"
    '  "version": 1,\n'
    '  "accounts": [\n'
    f'    {{"host":"{HOST}","username":"johndoe","email":"john@example.com","tier":"pro",'
    f'"token":"{API}","created_at":1700000000}},\n'
    f'    {{"host":"{HOST}","username":"janedoe","email":"jane@example.com","tier":"free",'
    f'"token":"{JANE}","session_id":"s1","created_at":1700000000}}\n'
    "  ],\n"
    '  "credentials": [\n'
    '    {"protocol":"http","host":"127.0.0.1:8080","username":"","password":""},\n'
    '    {"protocol":"https","host":"example.com","username":"v","password":"q",'
    '"path":"org/repo.git"},\n'
    '    {"protocol":"https","host":"example.com","username":"u","password":"p",'
    '"oauth_refresh_token":"r","password_expiry_utc":9999999999}\n'
    "  ]\n"
    "}\n"
)


@pytest.fixture
def previous_release_data(config_path):
    record_login(config_path.parent, HOST, JANE, "janedoe", "jane@example.com", "free")
    record_login(config_path.parent, HOST, API)
    for request in (
        lines(
            "protocol=https",
            "host=example.com",
            "username=u",
            "password=p",
            "oauth_refresh_token=r",
            "password_expiry_utc=9999999999",
        ),
        lines(
            "protocol=https", "host=example.com", "username=v", "password=q", "path=org/repo.git"
        ),
        lines("protocol=http", "host=127.0.0.1:8080", "username=", "password="),
    ):
        ok(helper("store", stdin=request))
    return config_path


def test_stores_write_what_the_previous_release_wrote(previous_release_data):
    assert (previous_release_data.parent / "credentials.json").read_text() == (
        PREVIOUS_RELEASE_FILE
    )


@pytest.mark.parametrize("argv", [["get"], ["--bearer", "get"], ["get", "--bearer"]])
@pytest.mark.parametrize("request_, answer", PREVIOUS_RELEASE)
def test_an_older_git_gets_what_the_previous_release_answered(
    previous_release_data, argv, request_, answer
):
    """No capability line: byte for byte the previous release's answer, --bearer or not."""
    ok(helper(*argv, stdin=request_), answer)


@pytest.mark.parametrize("argv", [["get"], ["--bearer", "get"]])
@pytest.mark.parametrize("request_, answer", PREVIOUS_RELEASE_ENV)
def test_an_older_git_gets_rexec_token_as_before(
    previous_release_data, monkeypatch, argv, request_, answer
):
    monkeypatch.setenv("REXEC_TOKEN", OTHER)
    ok(helper(*argv, stdin=request_), answer)


@pytest.mark.parametrize("request_, answer", PREVIOUS_RELEASE)
def test_a_capable_git_without_bearer_gets_the_same_password_answers(
    previous_release_data, request_, answer
):
    """Without --bearer, announcing the capability changes nothing for password records."""
    ok(helper("get", stdin=CAPABLE + request_), answer)


# -- --bearer --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rexec-credential", "git-credential-rexec"])
def test_bearer_answers_a_login_as_authtype_bearer_to_a_capable_request(logged_in, name):
    ok(run_bin(name, "--bearer", "get", stdin=CAPABLE + REXEC), BEARER_ANSWER)
    ok(run_bin(name, "--bearer", "get", stdin=REXEC), PASSWORD_ANSWER)
    ok(run_bin(name, "get", stdin=CAPABLE + REXEC), PASSWORD_ANSWER)


def test_bearer_answers_the_empty_request_and_any_path(logged_in):
    ok(helper("--bearer", "get", stdin=CAPABLE), BEARER_ANSWER)
    answer = BEARER_ANSWER.replace("host=rexec.pipeops.io\n", "host=rexec.pipeops.io\npath=a.git\n")
    ok(helper("--bearer", "get", stdin=CAPABLE + REXEC + "path=a.git\n"), answer)


def test_bearer_keeps_a_jwts_expiry_and_the_users_by_name(config_path):
    record_login(config_path.parent, HOST, JANE, "janedoe")
    record_login(config_path.parent, HOST, API)
    ok(
        helper("--bearer", "get", stdin=CAPABLE + REXEC + "username=janedoe\n"),
        lines(
            "capability[]=authtype",
            "authtype=Bearer",
            f"credential={JANE}",
            "protocol=https",
            "host=rexec.pipeops.io",
            "username=janedoe",
            "password_expiry_utc=1700003600",
        ),
    )
    ok(helper("--bearer", "get", stdin=CAPABLE + REXEC + "username=nobody\n"))


def test_bearer_answers_rexec_token(monkeypatch, home):
    monkeypatch.setenv("REXEC_TOKEN", f"  {OTHER}\n")
    ok(
        helper("--bearer", "get", stdin=CAPABLE + REXEC),
        lines(
            "capability[]=authtype",
            "authtype=Bearer",
            f"credential={OTHER}",
            "protocol=https",
            "host=rexec.pipeops.io",
            "username=x-rexec-token",
        ),
    )
    ok(
        helper("--bearer", "get", stdin=REXEC),
        lines(
            "protocol=https", "host=rexec.pipeops.io", "username=x-rexec-token", f"password={OTHER}"
        ),
    )
    assert not (home / ".rexec").exists()


def test_bearer_leaves_credentials_git_stored_as_they_are():
    """--bearer is about Rexec logins: a password stored for another host stays one."""
    ok(
        helper(
            "store", stdin=lines("protocol=https", "host=example.com", "username=u", "password=p")
        )
    )
    ok(
        helper("--bearer", "get", stdin=CAPABLE + lines("protocol=https", "host=example.com")),
        lines("protocol=https", "host=example.com", "username=u", "password=p"),
    )


def test_what_git_stores_after_a_bearer_answer_writes_nothing(logged_in):
    """git approves what --bearer get gave it: the login holds that token already."""
    stored = logged_in.parent / "credentials.json"
    before = stored.read_bytes(), logged_in.read_bytes()
    for approve in (
        CAPABLE
        + lines("authtype=Bearer", f"credential={API}", "protocol=https", "host=rexec.pipeops.io"),
        CAPABLE + lines("authtype=Bearer", f"credential={API}") + REXEC + "username=johndoe\n",
    ):
        ok(helper("--bearer", "store", stdin=approve))
    assert (stored.read_bytes(), logged_in.read_bytes()) == before


def test_rexec_token_as_a_credential_is_never_written(monkeypatch, home):
    monkeypatch.setenv("REXEC_TOKEN", OTHER)
    ok(
        helper(
            "--bearer",
            "store",
            stdin=CAPABLE + lines("authtype=Bearer", f"credential={OTHER}") + REXEC,
        )
    )
    ok(
        helper(
            "store",
            stdin=CAPABLE
            + lines("authtype=Bearer", f"credential={OTHER}", "protocol=https", "host=h.tld"),
        )
    )
    assert not (home / ".rexec").exists()


def test_git_erases_a_refused_bearer_token_as_it_would_a_password(logged_in):
    """A 401 after --bearer: git rejects with the credential it sent; the login's token goes
    (as for a password); another credential erases nothing."""
    pattern = CAPABLE + lines("authtype=Bearer") + REXEC
    ok(helper("--bearer", "erase", stdin=pattern + f"credential={OTHER}\n"))
    ok(helper("--bearer", "get", stdin=CAPABLE + REXEC), BEARER_ANSWER)
    ok(helper("--bearer", "erase", stdin=pattern + f"credential={API}\n"))
    ok(helper("--bearer", "get", stdin=CAPABLE + REXEC))
    assert "token" not in json.loads(logged_in.read_text())


# -- the second form, through the command ------------------------------------------------------

STORED_BEARER = CAPABLE + lines(
    "authtype=Bearer", "credential=secret-1", "protocol=https", "host=h.tld", "username=u"
)
STORED_PASSWORD = lines("protocol=https", "host=h.tld", "username=u", "password=pw")


def test_a_password_and_a_credential_of_one_user_live_side_by_side(config_path):
    """One credential per slot and form: an older git still finds the password it stored."""
    ok(helper("store", stdin=STORED_PASSWORD))
    ok(helper("store", stdin=STORED_BEARER))
    query = lines("protocol=https", "host=h.tld", "username=u")
    ok(
        helper("get", stdin=CAPABLE + query),
        lines(
            "capability[]=authtype",
            "authtype=Bearer",
            "credential=secret-1",
            "protocol=https",
            "host=h.tld",
            "username=u",
        ),
    )
    ok(helper("get", stdin=query), STORED_PASSWORD)
    ok(helper("store", stdin=STORED_BEARER.replace("secret-1", "secret-2")))
    assert [c.get("credential", c.get("password")) for c in credentials(config_path.parent)] == [
        "secret-2",
        "pw",
    ]


def test_a_request_with_both_forms_is_answered_in_the_form_each_git_reads(config_path):
    both = STORED_BEARER + "password=pw\n"
    ok(helper("store", stdin=both))
    query = lines("protocol=https", "host=h.tld")
    out = helper("get", stdin=CAPABLE + query).out
    assert out.startswith("capability[]=authtype\nauthtype=Bearer\ncredential=secret-1\n")
    assert out.endswith("username=u\npassword=pw\n")
    ok(
        helper("get", stdin=query),
        lines("protocol=https", "host=h.tld", "username=u", "password=pw"),
    )


@pytest.mark.parametrize("op", ["store", "get"])
def test_authtype_and_credential_without_the_capability_are_ignored(home, op):
    """git sends them only with the capability; without it they are unknown keys."""
    request = lines("authtype=Bearer", "credential=c", "protocol=https", "host=h.tld")
    ok(helper(op, stdin=request))
    assert not (home / ".rexec").exists()


def test_erase_without_the_capability_ignores_the_credential_it_names():
    ok(helper("store", stdin=STORED_BEARER))
    ok(helper("erase", stdin=lines("protocol=https", "host=h.tld", "credential=not-it")))
    ok(helper("get", stdin=CAPABLE + lines("protocol=https", "host=h.tld")))


@pytest.mark.parametrize(
    "capabilities",
    [["state"], ["future", "authtype"], ["authtype", ""], ["AUTHTYPE"]],
    ids=["state-only", "unknown-then-authtype", "cleared", "other-case"],
)
def test_only_the_authtype_capability_counts_and_only_it_is_answered(capabilities):
    ok(helper("store", stdin=STORED_BEARER))
    request = "".join(f"capability[]={c}\n" for c in capabilities) + "protocol=https\nhost=h.tld\n"
    result = helper("get", stdin=request)
    assert (result.code, result.err) == (0, "")
    capable = capabilities == ["future", "authtype"]
    assert result.out.startswith("capability[]=authtype\n") is capable
    assert "capability[]=" + "state" not in result.out and "future" not in result.out
    assert ("credential=secret-1" in result.out) is capable


@pytest.mark.parametrize("ephemeral", ["1", "true", "yes", "on", "2"])
def test_ephemeral_is_never_stored_in_either_form(home, ephemeral):
    for request in (STORED_BEARER, STORED_PASSWORD, STORED_BEARER + "password=pw\n"):
        ok(helper("store", stdin=request + f"ephemeral={ephemeral}\n"))
    assert not (home / ".rexec").exists()


def test_an_expired_credential_is_neither_stored_nor_answered(config_path):
    ok(helper("store", stdin=STORED_BEARER + f"password_expiry_utc={NOW - 1}\n"))
    assert not config_path.parent.exists()
    ok(helper("store", stdin=STORED_BEARER.replace("secret-1", jwt(exp=NOW - 5))))
    ok(helper("get", stdin=CAPABLE + lines("protocol=https", "host=h.tld")))


def test_a_stored_credential_git_cannot_carry_is_skipped(config_path):
    ok(helper("store", stdin=STORED_BEARER))
    path = config_path.parent / "credentials.json"
    data = json.loads(path.read_text())
    data["credentials"][0]["credential"] = "a\nhost=evil"
    path.write_text(json.dumps(data))
    ok(helper("get", stdin=CAPABLE + lines("protocol=https", "host=h.tld")))


# -- the rules, as functions -------------------------------------------------------------------


def test_erase_compares_a_credential_like_a_password():
    state = State()
    capable = {"capability[]": ["authtype"]}
    stored = {**capable, "protocol": "p", "host": "h", "authtype": "B", "credential": "c"}
    assert changes(state, lambda s: s.store(stored, NOW))
    other = {"protocol": "p", "host": "h", "credential": "other", **capable}
    assert not changes(state, lambda s: s.erase(other))
    assert not changes(state, lambda s: s.erase({"protocol": "p", "host": "h", "password": "c"}))
    same = {"protocol": "p", "host": "h", "credential": "c", **capable}
    assert changes(state, lambda s: s.erase(same))
    assert state.credentials == []


def test_explain_names_each_login_and_counts_the_credentials():
    state = State({"host": HOST, "token": API, "username": "johndoe"})
    for host in ("a.tld", "b.tld"):
        new = {"protocol": "https", "host": host, "username": "u", "password": "p"}
        assert changes(state, lambda s: s.store(new, NOW))
    lines_ = state.explain({"protocol": "https", "host": "a.tld", "username": "x"}, NOW)
    assert lines_ == [
        "login johndoe on https://rexec.pipeops.io (active): host differs",
        "2 stored credentials: 1 host differs, 1 username differs",
    ]
    assert API not in " ".join(lines_)
