"""What the two files hold and the rules for changing it (rexec_credential.state, records,
accounts): matching, expiry, git's store and erase, logging in, switching, logging out, and
the earlier one-file layout."""

from __future__ import annotations

import pytest
from helpers import NOW, changes, jwt

from rexec_credential import records
from rexec_credential.accounts import Account
from rexec_credential.state import State

HOST = "https://rexec.pipeops.io"
API = "rexec_" + "a" * 64
LOGIN = {"host": HOST, "token": API, "username": "johndoe", "email": "j@example.com", "tier": "pro"}


def cred(**fields) -> dict:
    base = {"protocol": "https", "host": "example.com", "username": "u", "password": "p"}
    base.update(fields)
    return base


def stored(*creds) -> State:
    state = State()
    for c in creds:
        assert changes(state, lambda s: s.store(c, NOW))
    return state


def account(username="johndoe", token=API, host=HOST, **kw) -> Account:
    return Account(
        host,
        username,
        token,
        kw.get("email", f"{username}@example.com"),
        kw.get("tier", "pro"),
        created_at=NOW,
    )


# -- the active login as a record -------------------------------------------------------------


def test_active_login_from_the_seed_object():
    assert State(LOGIN).active().record() == {
        "protocol": "https",
        "host": "rexec.pipeops.io",
        "username": "johndoe",
        "password": API,
    }


@pytest.mark.parametrize(
    "host, protocol, hostport",
    [
        ("http://127.0.0.1:8080/", "http", "127.0.0.1:8080"),
        ("https://Rexec.Example.COM:443", "https", "rexec.example.com"),
        ("https://rexec.example.com:8443", "https", "rexec.example.com:8443"),
        ("rexec.example.com", "https", "rexec.example.com"),
        (None, "https", "rexec.pipeops.io"),
    ],
)
def test_active_login_host_from_url(host, protocol, hostport):
    record = State({"host": host, "token": "t"}).active().record()
    assert (record["protocol"], record["host"]) == (protocol, hostport)


def test_active_login_placeholder_username():
    assert State({"token": "t"}).active().record()["username"] == records.PLACEHOLDER_USERNAME


def test_active_login_jwt_exp_is_the_expiry():
    assert State({"token": jwt(exp=NOW + 60)}).active().record()["password_expiry_utc"] == NOW + 60


@pytest.mark.parametrize(
    "config",
    [{}, {"token": ""}, {"token": 5}, {"token": "t", "host": "ftp://x"}, {"token": "t", "host": 7}],
    ids=str,
)
def test_no_active_login(config):
    assert State(config).active() is None


def test_account_facts_come_from_the_token():
    token = jwt(exp=NOW + 9, sid="abc123")
    acc = account(token=token)
    assert (acc.kind, acc.expires, acc.session_id) == ("jwt", NOW + 9, "abc123")
    assert (account().kind, account().expires, account().session_id) == ("api", None, None)
    assert acc.to_json()["session_id"] == "abc123"
    assert Account.from_json(acc.to_json()).to_json() == acc.to_json()


@pytest.mark.parametrize(
    "entry",
    [
        "x",
        {"host": HOST},
        {"token": "t"},
        {"host": 5, "token": "t"},
        {"host": "ftp://x", "token": "t"},
    ],
    ids=str,
)
def test_entries_that_are_not_accounts_are_skipped(entry):
    assert State({}, {"accounts": [entry, account().to_json()]}).accounts[0].token == API


# -- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ({}, True),
        ({"protocol": "https", "host": "example.com"}, True),
        ({"protocol": "http", "host": "example.com"}, False),
        ({"host": "example.com:443"}, False),
        ({"username": "u"}, True),
        ({"username": "other"}, False),
        ({"username": ""}, False),
        ({"path": "repo.git"}, False),
        ({"path": ""}, True),
        ({"password": "other"}, True),  # ignored unless asked for
    ],
)
def test_matches(query, expected):
    assert records.matches(query, cred()) is expected


def test_matches_with_password():
    assert records.matches({"password": "p"}, cred(), with_password=True)
    assert not records.matches({"password": "q"}, cred(), with_password=True)


def test_a_login_matches_any_path_of_its_host():
    record = State(LOGIN).active().record()
    assert records.matches(
        {"host": "rexec.pipeops.io", "path": "org/repo.git"}, record, host_wide=True
    )
    assert not records.matches({"path": "x"}, cred())


# -- expiry -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, is_expired",
    [
        (None, False),
        (0, False),
        ("0", False),
        (NOW - 1, True),
        (NOW, True),
        (str(NOW - 1), True),
        (NOW + 1, False),
        ("9999999999", False),
        ("99999999999999999999", False),
        ("soon", False),
        ("²", False),
        (True, False),
    ],
)
def test_expired(value, is_expired):
    record = {} if value is None else {"password_expiry_utc": value}
    assert records.expired(record, NOW) is is_expired


# -- find -------------------------------------------------------------------------------------


def test_find_the_active_login_first():
    state = State(
        LOGIN, {"credentials": [cred(host="rexec.pipeops.io", username="johndoe", password="old")]}
    )
    assert state.find({"host": "rexec.pipeops.io"}, NOW)["password"] == API


def test_find_then_the_other_accounts_of_the_host_by_username():
    jane = account("janedoe", token="rexec_" + "j" * 64)
    state = State(LOGIN, {"accounts": [jane.to_json()]})
    assert state.find({"host": "rexec.pipeops.io"}, NOW)["password"] == API
    found = state.find({"host": "rexec.pipeops.io", "username": "janedoe", "path": "a.git"}, NOW)
    assert found["password"] == jane.token


def test_find_skips_expired():
    state = stored(
        cred(password="old", username="a", password_expiry_utc=str(NOW + 5)),
        cred(password="new", username="b"),
    )
    assert state.find({"host": "example.com", "username": "a"}, NOW)["password"] == "old"
    assert state.find({"host": "example.com"}, NOW + 10)["password"] == "new"
    assert state.find({"username": "a"}, NOW + 10) is None


def test_find_expired_jwt_in_the_list():
    state = stored(cred(password=jwt(exp=NOW + 5)))
    assert state.find({"host": "example.com"}, NOW)["password_expiry_utc"] == NOW + 5
    assert state.find({"host": "example.com"}, NOW + 5) is None


def test_find_ignores_malformed_entries():
    state = State(
        {},
        {
            "credentials": [
                "junk",
                {"host": "example.com"},
                {"protocol": 1, "host": "example.com", "password": "x"},
                cred(),
            ]
        },
    )
    assert state.find({"host": "example.com"}, NOW)["password"] == "p"


# -- git's store --------------------------------------------------------------------------------


def test_store_keeps_expiry_and_refresh_token():
    state = stored(cred(password_expiry_utc="9999999999", oauth_refresh_token="xyzzy"))
    assert state.credentials == [cred(password_expiry_utc=9999999999, oauth_refresh_token="xyzzy")]


def test_store_several_users_per_host_newest_first():
    state = stored(cred(username="a"), cred(username="b"))
    assert [r["username"] for r in state.credentials] == ["b", "a"]


def test_store_overwrites_the_same_slot():
    assert stored(cred(password="1"), cred(password="2")).credentials == [cred(password="2")]


def test_store_path_is_part_of_the_slot():
    assert len(stored(cred(path="a.git"), cred(path="b.git"), cred()).credentials) == 3


def test_store_same_again_changes_nothing():
    state = stored(cred())
    assert not changes(state, lambda s: s.store(cred(), NOW))


def test_store_empty_username_and_password():
    assert (
        stored(cred(username="", password="")).find({"host": "example.com"}, NOW)["username"] == ""
    )


def test_store_empty_host_is_kept():
    state = stored(cred(protocol="cert", host="", path="etc/cert.pem"))
    assert state.find({"protocol": "cert", "host": "", "path": "etc/cert.pem"}, NOW)


@pytest.mark.parametrize(
    "fields",
    [
        {"protocol": None},
        {"host": None},
        {"username": None},
        {"password": None},
        {"ephemeral": "1"},
        {"ephemeral": "true"},
        {"password_expiry_utc": str(NOW - 1)},
        {"password_expiry_utc": str(NOW)},
    ],
    ids=str,
)
def test_store_refuses(fields):
    c = {k: v for k, v in cred(**fields).items() if v is not None}
    state = State()
    assert records.storable(c, NOW) is None
    assert not changes(state, lambda s: s.store(c, NOW))


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_store_ephemeral_false_is_stored(value):
    assert changes(State(), lambda s: s.store(cred(ephemeral=value), NOW))


def test_store_never_a_kept_out_token():
    state = State(keep_out=["envtok"])
    assert not changes(state, lambda s: s.store(cred(password="envtok"), NOW))
    assert changes(state, lambda s: s.store(cred(password="other"), NOW))


def test_store_unknown_keys_not_kept():
    assert stored(cred(wwwauth="x", quit="0", capability="y")).credentials == [cred()]


def test_store_for_the_active_login_renews_its_token_and_account():
    state = State(dict(LOGIN))
    new = cred(
        host="rexec.pipeops.io",
        username="johndoe",
        password="rexec_" + "b" * 64,
        oauth_refresh_token="r",
        password_expiry_utc="9999999999",
    )
    assert changes(state, lambda s: s.store(new, NOW))
    assert state.config == dict(LOGIN, token="rexec_" + "b" * 64)
    [acc] = state.accounts
    assert (acc.token, acc.refresh_token, acc.stored_expiry) == (
        "rexec_" + "b" * 64,
        "r",
        9999999999,
    )
    assert state.credentials == []
    assert state.find({"host": "rexec.pipeops.io"}, NOW)["oauth_refresh_token"] == "r"
    assert not changes(state, lambda s: s.store(new, NOW))


def test_store_of_the_same_active_token_without_facts_changes_nothing():
    state = State(dict(LOGIN))
    same = cred(host="rexec.pipeops.io", username="johndoe", password=API, path="org/repo.git")
    assert not changes(state, lambda s: s.store(same, NOW))
    assert changes(state, lambda s: s.store(dict(same, password="rexec_" + "e" * 64), NOW))
    assert state.config["token"] == "rexec_" + "e" * 64 and state.credentials == []


def test_store_for_the_active_slot_does_not_duplicate_jwt_exp():
    token = jwt(exp=NOW + 100)
    state = State(dict(LOGIN))
    state.store(
        cred(
            host="rexec.pipeops.io",
            username="johndoe",
            password=token,
            password_expiry_utc=str(NOW + 100),
        ),
        NOW,
    )
    assert state.config["token"] == token and state.accounts[0].stored_expiry is None


def test_store_for_another_account_renews_that_account():
    jane = account("janedoe", token="rexec_" + "j" * 64)
    state = State(dict(LOGIN), {"accounts": [jane.to_json()]})
    new = cred(host="rexec.pipeops.io", username="janedoe", password="rexec_" + "k" * 64)
    assert changes(state, lambda s: s.store(new, NOW))
    assert [a.token for a in state.accounts] == ["rexec_" + "k" * 64]
    assert state.config_content() == LOGIN  # config.json is not written


def test_store_preserves_unknown_top_level_keys():
    state = State({"future": {"x": 1}}, {"extension": 2})
    state.store(cred(), NOW)
    assert state.config_content()["future"] == {"x": 1} and state.stored_content()["extension"] == 2


# -- git's erase --------------------------------------------------------------------------------


def test_erase_by_host_removes_every_user():
    state = stored(cred(username="a"), cred(username="b"), cred(host="other.tld"))
    assert changes(state, lambda s: s.erase({"protocol": "https", "host": "example.com"}))
    assert [r["host"] for r in state.credentials] == ["other.tld"]


def test_erase_one_user_keeps_the_other():
    state = stored(cred(username="a"), cred(username="b"))
    state.erase({"host": "example.com", "username": "a"})
    assert [r["username"] for r in state.credentials] == ["b"]


def test_erase_with_a_different_password_erases_nothing():
    state = stored(cred())
    assert not changes(state, lambda s: s.erase(cred(password="other")))
    assert state.credentials == [cred()]
    assert changes(state, lambda s: s.erase(cred()))
    assert state.credentials == []


@pytest.mark.parametrize("pattern", [{}, {"password": "p"}, {"wwwauth[]": ["x"]}], ids=str)
def test_empty_pattern_erases_nothing(pattern):
    state = State(dict(LOGIN), {"credentials": [cred(password="p")]})
    assert records.erasable(pattern) is False
    assert not changes(state, lambda s: s.erase(pattern))


def test_erase_the_active_login_removes_its_token_keeps_the_rest():
    state = State(dict(LOGIN, future=1), {"credentials": [cred()]})
    state.log_in(account())  # it has an account too
    pattern = {
        "protocol": "https",
        "host": "rexec.pipeops.io",
        "username": "johndoe",
        "password": API,
        "path": "org/repo.git",
    }
    assert changes(state, lambda s: s.erase(pattern))
    assert state.config_content() == {"host": HOST, "future": 1}
    assert state.active() is None and state.accounts == [] and state.credentials == [cred()]


def test_erase_path_pattern_is_exact_for_credentials():
    state = stored(cred(path="a.git"), cred(path="b.git"))
    state.erase({"host": "example.com", "path": "a.git"})
    assert [r["path"] for r in state.credentials] == ["b.git"]


# -- logging in ---------------------------------------------------------------------------------


def test_log_in_writes_the_five_fields_and_an_account():
    state = State({"theme": "dark"})
    assert state.stored_content()["accounts"] == []
    assert changes(state, lambda s: s.log_in(account()))
    assert state.config_content() == dict(LOGIN, email="johndoe@example.com", theme="dark")
    assert [a.username for a in state.accounts] == ["johndoe"]
    assert [a["username"] for a in state.stored_content()["accounts"]] == ["johndoe"]


def test_log_in_keeps_the_login_it_replaces_as_an_account():
    state = State(dict(LOGIN))  # written by the Rexec CLI: no account for it yet
    jane = account("janedoe", token="rexec_" + "c" * 64, host="http://127.0.0.1:9000")
    state.log_in(jane)
    assert state.config["username"] == "janedoe"
    assert [(a.username, a.token) for a in state.accounts] == [
        ("janedoe", jane.token),
        ("johndoe", API),
    ]
    assert state.find({"host": "rexec.pipeops.io"}, NOW)["password"] == API


def test_log_in_as_the_same_user_replaces_and_drops_older_copies():
    copies = [
        {
            "protocol": "https",
            "host": "rexec.pipeops.io",
            "username": "johndoe",
            "password": "stale",
            **extra,
        }
        for extra in ({}, {"path": "org/repo.git"})
    ]
    other = cred(host="rexec.pipeops.io", username="janedoe")
    state = State(dict(LOGIN), {"credentials": copies + [other]})
    state.log_in(account(token="rexec_" + "d" * 64))
    assert state.config["token"] == "rexec_" + "d" * 64
    assert [a.token for a in state.accounts] == ["rexec_" + "d" * 64]
    assert state.credentials == [other]


def test_log_in_never_writes_a_kept_out_token():
    state = State(dict(LOGIN), keep_out=["rexec_" + "e" * 64])
    assert not changes(state, lambda s: s.log_in(account(token="rexec_" + "e" * 64)))


def test_the_rexec_token_the_rexec_cli_saved_is_not_kept_as_an_account():
    state = State(dict(LOGIN), keep_out=[API])
    state.log_in(account("janedoe", token="rexec_" + "f" * 64))
    assert [a.username for a in state.accounts] == ["janedoe"]


# -- switching and logging out ------------------------------------------------------------------


def test_switch_writes_the_account_and_keeps_the_previous_one():
    jane = account("janedoe", token="rexec_" + "j" * 64, email="jane@example.com", tier="free")
    state = State(dict(LOGIN, theme="dark"), {"accounts": [jane.to_json()]})
    state.switch(jane, NOW)
    assert state.config_content() == {
        "host": HOST,
        "token": jane.token,
        "username": "janedoe",
        "email": "jane@example.com",
        "tier": "free",
        "theme": "dark",
    }
    assert sorted(a.username for a in state.accounts) == ["janedoe", "johndoe"]


def test_logins_and_select():
    jane = account("janedoe", token="rexec_" + "j" * 64)
    there = account("johndoe", token="rexec_" + "t" * 64, host="https://staging.example.com")
    state = State(dict(LOGIN), {"accounts": [jane.to_json(), there.to_json()]})
    assert [(a.username, a.host, active) for a, active in state.logins()] == [
        ("johndoe", HOST, True),
        ("janedoe", HOST, False),
        ("johndoe", "https://staging.example.com", False),
    ]
    assert len(state.select(HOST, None)) == 2
    assert [a.host for a, _ in state.select(None, "johndoe")] == [
        HOST,
        "https://staging.example.com",
    ]


def test_log_out_removes_the_token_from_both_files():
    state = State(dict(LOGIN), {"credentials": [cred(password=API), cred()]})
    state.log_in(account())
    active = state.active()
    state.log_out(active, True)
    assert state.accounts == [] and state.credentials == [cred()] and state.config_content() is None


def test_log_out_of_another_account_keeps_the_active_login():
    jane = account("janedoe", token="rexec_" + "j" * 64)
    state = State(dict(LOGIN), {"accounts": [jane.to_json()]})
    state.log_out(state.accounts[0], False)
    assert state.accounts == [] and state.config_content() == LOGIN and state.active().token == API


def test_a_config_json_left_with_no_key_is_no_file():
    state = State(dict(LOGIN), {"credentials": [cred()], "accounts": [account().to_json()]})
    state.log_out(state.active(), True)
    assert state.config_content() is None
    assert state.stored_content()["credentials"] == [cred()]
    state.erase(cred())
    assert state.stored_content() == State().stored_content()  # written holding nothing
    assert State({"future": 1}).config_content() == {"future": 1}  # someone else's key


# -- the earlier one-file layout ----------------------------------------------------------------


def test_the_earlier_layout_is_read_and_split():
    earlier = dict(
        LOGIN,
        theme="dark",
        password_expiry_utc=9999999999,
        oauth_refresh_token="r",
        credentials=[cred(), cred(host="other.tld")],
    )
    state = State(earlier, {})
    assert state.config_content() == dict(LOGIN, theme="dark")
    assert state.credentials == [cred(), cred(host="other.tld")]
    found = state.find({"host": "rexec.pipeops.io"}, NOW)
    assert (found["password_expiry_utc"], found["oauth_refresh_token"]) == (9999999999, "r")
    # Split on the next write: both files' contents differ from what was read.
    assert state.config_content() != earlier
    assert state.stored_content()["credentials"] == [cred(), cred(host="other.tld")]
