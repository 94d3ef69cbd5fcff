"""Credential records in the config object (rexec_credential.store): matching, store, erase."""

from __future__ import annotations

import base64
import json

import pytest

from rexec_credential import store

NOW = 1_700_000_000


def jwt(**claims) -> str:
    """An unsigned-looking JWT carrying claims (the client never verifies signatures)."""
    def seg(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(claims)}.c2ln"


def cred(**fields) -> dict:
    base = {"protocol": "https", "host": "example.com", "username": "u", "password": "p"}
    base.update(fields)
    return base


def stored(*creds) -> dict:
    data: dict = {}
    for c in creds:
        assert store.store(data, c, NOW)
    return data


LOGIN = {"host": "https://rexec.pipeops.io", "token": "rexec_" + "a" * 64,
         "username": "johndoe", "email": "j@example.com", "tier": "pro"}


# -- the active login as a record -------------------------------------------------------------

def test_active_record_from_the_seed_object():
    assert store.active_record(LOGIN) == {
        "protocol": "https", "host": "rexec.pipeops.io", "username": "johndoe",
        "password": LOGIN["token"], "active": True}


@pytest.mark.parametrize("host, protocol, hostport", [
    ("http://127.0.0.1:8080/", "http", "127.0.0.1:8080"),
    ("https://Rexec.Example.COM:443", "https", "rexec.example.com"),
    ("https://rexec.example.com:8443", "https", "rexec.example.com:8443"),
    (None, "https", "rexec.pipeops.io"),
])
def test_active_record_host_from_url(host, protocol, hostport):
    record = store.active_record({"host": host, "token": "t"})
    assert (record["protocol"], record["host"]) == (protocol, hostport)


def test_active_record_placeholder_username():
    assert store.active_record({"token": "t"})["username"] == store.PLACEHOLDER_USERNAME


def test_active_record_jwt_exp_is_the_expiry():
    assert store.active_record({"token": jwt(exp=NOW + 60)})["password_expiry_utc"] == NOW + 60


def test_token_record_is_host_wide_with_jwt_expiry():
    record = store.token_record("https", "h.tld", "u", jwt(exp=NOW + 9))
    assert record["active"] and record["password_expiry_utc"] == NOW + 9
    assert store.matches({"host": "h.tld", "path": "any/repo.git"}, record)
    assert store.token_record("https", "h.tld", "u", "t", expiry="7")["password_expiry_utc"] == 7


@pytest.mark.parametrize("data", [{}, {"token": ""}, {"token": 5}, {"token": "t", "host": "ftp://x"},
                                  {"token": "t", "host": 7}], ids=str)
def test_no_active_record(data):
    assert store.active_record(data) is None


# -- matching ---------------------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
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
])
def test_matches(query, expected):
    assert store.matches(query, cred()) is expected


def test_matches_with_password():
    assert store.matches({"password": "p"}, cred(), with_password=True)
    assert not store.matches({"password": "q"}, cred(), with_password=True)


def test_active_login_matches_any_path_of_its_host():
    active = store.active_record(LOGIN)
    assert store.matches({"host": "rexec.pipeops.io", "path": "org/repo.git"}, active)
    assert not store.matches({"path": "x"}, cred())


# -- expiry -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, is_expired", [
    (None, False), (0, False), ("0", False), (NOW - 1, True), (NOW, True), (str(NOW - 1), True),
    (NOW + 1, False), ("9999999999", False), ("99999999999999999999", False),
    ("soon", False), ("²", False), (True, False),
])
def test_expired(value, is_expired):
    record = {} if value is None else {"password_expiry_utc": value}
    assert store.expired(record, NOW) is is_expired


# -- find ----------------------------------------------------------------------------------

def test_find_first_match_active_first():
    data = dict(LOGIN, credentials=[cred(host="rexec.pipeops.io", username="johndoe",
                                         password="old")])
    assert store.find(data, {"host": "rexec.pipeops.io"}, NOW)["password"] == LOGIN["token"]


def test_find_empty_query_is_the_active_login():
    data = dict(LOGIN, credentials=[cred()])
    assert store.find(data, {}, NOW)["password"] == LOGIN["token"]
    assert store.find({"credentials": [cred()]}, {}, NOW) is None


def test_find_skips_expired():
    data = stored(cred(password="old", username="a", password_expiry_utc=str(NOW + 5)),
                  cred(password="new", username="b"))
    assert store.find(data, {"host": "example.com"}, NOW)["password"] == "new"
    assert store.find(data, {"username": "a"}, NOW + 10) is None


def test_find_expired_jwt_in_the_list():
    data = stored(cred(password=jwt(exp=NOW + 5)))
    assert store.find(data, {"host": "example.com"}, NOW)["password_expiry_utc"] == NOW + 5
    assert store.find(data, {"host": "example.com"}, NOW + 5) is None


def test_find_ignores_malformed_entries():
    data = {"credentials": ["junk", {"host": "example.com"}, {"protocol": 1, "host": "example.com",
                                                               "password": "x"}, cred()]}
    assert store.find(data, {"host": "example.com"}, NOW)["password"] == "p"


# -- store ----------------------------------------------------------------------------------

def test_store_keeps_expiry_and_refresh_token():
    data = stored(cred(password_expiry_utc="9999999999", oauth_refresh_token="xyzzy"))
    expected = cred(password_expiry_utc=9999999999, oauth_refresh_token="xyzzy")
    assert data["credentials"] == [expected]


def test_store_several_users_per_host_newest_first():
    data = stored(cred(username="a"), cred(username="b"))
    assert [r["username"] for r in data["credentials"]] == ["b", "a"]


def test_store_overwrites_the_same_slot():
    data = stored(cred(password="1"), cred(password="2"))
    assert data["credentials"] == [cred(password="2")]


def test_store_path_is_part_of_the_slot():
    data = stored(cred(path="a.git"), cred(path="b.git"), cred())
    assert len(data["credentials"]) == 3


def test_store_same_again_writes_nothing():
    data = stored(cred())
    assert store.store(data, cred(), NOW) is False


def test_store_empty_username_and_password():
    data = stored(cred(username="", password=""))
    assert store.find(data, {"host": "example.com"}, NOW)["username"] == ""


def test_store_empty_host_is_kept():
    data = stored(cred(protocol="cert", host="", path="etc/cert.pem"))
    assert store.find(data, {"protocol": "cert", "host": "", "path": "etc/cert.pem"}, NOW)


@pytest.mark.parametrize("fields", [
    {"protocol": None}, {"host": None}, {"username": None}, {"password": None},
    {"ephemeral": "1"}, {"ephemeral": "true"},
    {"password_expiry_utc": str(NOW - 1)}, {"password_expiry_utc": str(NOW)},
], ids=str)
def test_store_refuses(fields):
    c = {k: v for k, v in cred(**fields).items() if v is not None}
    data: dict = {}
    assert store.storable(c, NOW) is False
    assert store.store(data, c, NOW) is False
    assert data == {}


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_store_ephemeral_false_is_stored(value):
    assert store.store({}, cred(ephemeral=value), NOW)


def test_store_never_the_env_token():
    data: dict = {}
    assert store.store(data, cred(password="envtok"), NOW, env_token="envtok") is False
    assert data == {}
    assert store.store(data, cred(password="other"), NOW, env_token="envtok")


def test_store_unknown_keys_not_kept():
    data = stored(cred(wwwauth="x", quit="0", capability="y"))
    assert data["credentials"] == [cred()]


def test_store_for_the_active_slot_updates_the_login():
    data = dict(LOGIN)
    new = cred(host="rexec.pipeops.io", username="johndoe", password="rexec_" + "b" * 64,
               oauth_refresh_token="r", password_expiry_utc="9999999999")
    assert store.store(data, new, NOW)
    assert data["token"] == "rexec_" + "b" * 64
    assert data["oauth_refresh_token"] == "r" and data["password_expiry_utc"] == 9999999999
    assert "credentials" not in data and data["email"] == LOGIN["email"]
    assert store.store(data, new, NOW) is False  # already stored: nothing to write


def test_store_with_a_path_for_the_active_login_makes_no_copy():
    data = dict(LOGIN)
    same = cred(host="rexec.pipeops.io", username="johndoe", password=LOGIN["token"],
                path="org/repo.git")
    assert store.store(data, same, NOW) is False and data == LOGIN
    assert store.store(data, dict(same, password="rexec_" + "e" * 64), NOW)
    assert data["token"] == "rexec_" + "e" * 64 and "credentials" not in data


def test_store_for_the_active_slot_does_not_duplicate_jwt_exp():
    token = jwt(exp=NOW + 100)
    data = dict(LOGIN)
    store.store(data, cred(host="rexec.pipeops.io", username="johndoe", password=token,
                           password_expiry_utc=str(NOW + 100)), NOW)
    assert data["token"] == token and "password_expiry_utc" not in data


def test_store_preserves_unknown_top_level_keys():
    data = {"future": {"x": 1}}
    store.store(data, cred(), NOW)
    assert data["future"] == {"x": 1}


# -- erase ----------------------------------------------------------------------------------

def test_erase_by_host_removes_every_user():
    data = stored(cred(username="a"), cred(username="b"), cred(host="other.tld"))
    assert store.erase(data, {"protocol": "https", "host": "example.com"})
    assert [r["host"] for r in data["credentials"]] == ["other.tld"]


def test_erase_one_user_keeps_the_other():
    data = stored(cred(username="a"), cred(username="b"))
    store.erase(data, {"host": "example.com", "username": "a"})
    assert [r["username"] for r in data["credentials"]] == ["b"]


def test_erase_with_a_different_password_erases_nothing():
    data = stored(cred())
    assert store.erase(data, cred(password="other")) is False
    assert data["credentials"] == [cred()]
    assert store.erase(data, cred())
    assert data["credentials"] == []


@pytest.mark.parametrize("pattern", [{}, {"password": "p"}, {"wwwauth[]": ["x"]}], ids=str)
def test_empty_pattern_erases_nothing(pattern):
    data = dict(LOGIN, credentials=[cred(password="p")])
    assert store.erasable(pattern) is False
    assert store.erase(data, pattern) is False
    assert data == dict(LOGIN, credentials=[cred(password="p")])


def test_erase_the_active_login_removes_its_token_keeps_the_rest():
    data = dict(LOGIN, future=1, oauth_refresh_token="r", credentials=[cred()])
    assert store.erase(data, {"protocol": "https", "host": "rexec.pipeops.io",
                              "username": "johndoe", "password": LOGIN["token"],
                              "path": "org/repo.git"})
    assert data == {"host": LOGIN["host"], "future": 1, "credentials": [cred()]}
    assert store.active_record(data) is None


def test_erase_path_pattern_is_exact_for_list_entries():
    data = stored(cred(path="a.git"), cred(path="b.git"))
    store.erase(data, {"host": "example.com", "path": "a.git"})
    assert [r["path"] for r in data["credentials"]] == ["b.git"]


# -- set_active (used by rexec-login) ---------------------------------------------------------

def test_set_active_keeps_a_different_previous_login():
    data = dict(LOGIN)
    store.set_active(data, "http://127.0.0.1:9000", "rexec_" + "c" * 64,
                     {"username": "janedoe", "email": "jane@example.com", "tier": "free"})
    assert data["host"] == "http://127.0.0.1:9000" and data["username"] == "janedoe"
    assert data["credentials"] == [{"protocol": "https", "host": "rexec.pipeops.io",
                                    "username": "johndoe", "password": LOGIN["token"]}]
    assert store.find(data, {"host": "rexec.pipeops.io"}, NOW)["password"] == LOGIN["token"]


def test_set_active_same_user_replaces_and_drops_older_copies():
    copies = [{"protocol": "https", "host": "rexec.pipeops.io", "username": "johndoe",
               "password": "stale", **extra} for extra in ({}, {"path": "org/repo.git"})]
    other = cred(host="rexec.pipeops.io", username="janedoe")
    data = dict(LOGIN, credentials=copies + [other])
    store.set_active(data, LOGIN["host"], "rexec_" + "d" * 64, {"username": "johndoe"})
    assert data["token"] == "rexec_" + "d" * 64 and "email" not in data
    assert data["credentials"] == [other]


def test_records_active_first():
    data = dict(LOGIN, credentials=[cred()])
    assert [r.get("active", False) for r in store.records(data)] == [True, False]
