"""git credential records (rexec_credential.records), called directly: matching, expiry,
what `store` keeps and `erase` needs, what `get` may send and to whom, and the two forms
of a secret (password, or authtype and credential).

The same rules are exercised elsewhere: direct tests of `matches`, `expired`, the
requests `storable` refuses and the patterns `erasable` refuses live in test_state.py,
next to the State rules they back; State applies them in test_state.py and
test_capabilities.py; the commands in test_credential.py and test_capabilities.py;
real git in test_git_conformance.py; and the properties of
tests/stress/test_hostile_config.py lean on `same_slot` and `erasable`.
"""

from __future__ import annotations

import pytest
from helpers import NOW

from rexec_credential import records

CAPABLE = {"capability[]": ["authtype"]}
PASSWORD = {"protocol": "https", "host": "example.com", "username": "u", "password": "p"}
CREDENTIAL = {"protocol": "https", "host": "example.com", "authtype": "Bearer", "credential": "c"}


# -- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ({}, None),
        ({"protocol": "https", "host": "example.com", "username": "u"}, None),
        ({"protocol": "http", "host": "other", "username": "x"}, "protocol"),
        ({"host": "other", "username": "x"}, "host"),
        ({"host": "example.com", "path": "a.git", "username": "x"}, "path"),
        ({"host": "example.com", "username": "x"}, "username"),
        ({"password": "other", "credential": "other"}, None),  # secrets are not match keys
    ],
    ids=str,
)
def test_mismatch_names_the_first_key_that_differs(query, expected):
    assert records.mismatch(query, PASSWORD) == expected


def test_a_key_the_record_lacks_counts_as_empty():
    assert records.mismatch({"path": ""}, PASSWORD) is None
    assert records.mismatch({"path": "a.git"}, PASSWORD) == "path"
    assert records.mismatch({"username": ""}, CREDENTIAL) is None


def test_host_wide_ignores_the_path_and_nothing_else():
    query = {"host": "example.com", "path": "org/repo.git"}
    assert records.mismatch(query, PASSWORD, host_wide=True) is None
    assert records.mismatch({**query, "username": "x"}, PASSWORD, host_wide=True) == "username"
    assert not records.matches({**query, "host": "other"}, PASSWORD, host_wide=True)


def test_matches_with_password_compares_a_credential_too():
    assert records.matches({"credential": "c"}, CREDENTIAL, with_password=True)
    assert not records.matches({"credential": "other"}, CREDENTIAL, with_password=True)
    # A record without that secret does not hold it.
    assert not records.matches({"password": "c"}, CREDENTIAL, with_password=True)
    assert not records.matches({"credential": "p"}, PASSWORD, with_password=True)
    # Without with_password the secrets are not compared at all.
    assert records.matches({"credential": "other"}, CREDENTIAL)


def test_same_login_ignores_the_path_and_the_secret():
    assert records.same_login(PASSWORD, {**PASSWORD, "path": "a.git", "password": "q"})
    assert records.same_login(
        {"protocol": "https", "host": "h"}, {"protocol": "https", "host": "h", "username": ""}
    )
    assert not records.same_login(PASSWORD, {**PASSWORD, "username": "v"})
    assert not records.same_login(PASSWORD, {**PASSWORD, "host": "example.com:8443"})


@pytest.mark.parametrize(
    "other, expected",
    [
        ({**PASSWORD, "password": "new"}, True),  # a new password replaces the old
        ({**PASSWORD, "path": "a.git"}, False),
        ({**PASSWORD, "username": "v"}, False),
        ({**CREDENTIAL, "username": "u"}, False),  # the other form: kept beside it
        ({**PASSWORD, "authtype": "Bearer", "credential": "c"}, False),
    ],
    ids=["new-password", "path", "username", "credential-form", "both-forms"],
)
def test_same_slot(other, expected):
    assert records.same_slot(PASSWORD, other) is expected
    assert records.same_slot(other, PASSWORD) is expected


def test_same_slot_of_two_credentials():
    assert records.same_slot(CREDENTIAL, {**CREDENTIAL, "credential": "new"})
    assert records.same_slot(CREDENTIAL, {**CREDENTIAL, "username": ""})


# -- the capability ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_, expected",
    [
        ({}, False),
        ({"capability[]": ["authtype"]}, True),
        ({"capability[]": ["state", "authtype"]}, True),
        ({"capability[]": ["state"]}, False),
        ({"capability[]": "authtype"}, False),  # one value is not git's list
        ({"authtype": "Bearer"}, False),
    ],
    ids=str,
)
def test_capable(request_, expected):
    assert records.capable(request_) is expected


def test_announced_drops_the_second_form_from_a_request_without_the_capability():
    request = {"protocol": "https", "host": "h", "authtype": "Bearer", "credential": "c"}
    assert records.announced(request) == {"protocol": "https", "host": "h"}
    assert request["credential"] == "c"  # the request itself is left as it was


def test_announced_keeps_a_capable_request_and_one_with_nothing_to_drop():
    capable = {**CAPABLE, "authtype": "Bearer", "credential": "c"}
    assert records.announced(capable) is capable
    assert records.announced(PASSWORD) is PASSWORD


# -- which form a record holds ----------------------------------------------------------------


@pytest.mark.parametrize(
    "record, password, credential",
    [
        (PASSWORD, True, False),
        (CREDENTIAL, False, True),
        ({**PASSWORD, "authtype": "Bearer", "credential": "c"}, True, True),
        ({"password": ""}, True, False),  # git's own tests store an empty password
        ({"password": None, "authtype": "Bearer"}, False, False),
        ({"credential": "c"}, False, False),
        ({"authtype": "Bearer", "credential": 5}, False, False),
        ({}, False, False),
    ],
    ids=str,
)
def test_has_password_and_has_credential(record, password, credential):
    assert records.has_password(record) is password
    assert records.has_credential(record) is credential


@pytest.mark.parametrize(
    "entry, expected",
    [
        (PASSWORD, True),
        (CREDENTIAL, True),
        ({"protocol": "", "host": "", "password": ""}, True),
        ({"protocol": "https", "host": "h", "password": "p", "password_expiry_utc": 5}, True),
        ("https://u:p@example.com", False),
        (["protocol", "host"], False),
        (None, False),
        ({"host": "h", "password": "p"}, False),  # no protocol
        ({"protocol": "https", "password": "p"}, False),  # no host
        ({"protocol": "https", "host": "h"}, False),  # no secret
        ({"protocol": "https", "host": "h", "authtype": "Bearer"}, False),  # half a credential
        ({"protocol": "https", "host": 443, "password": "p"}, False),
        ({"protocol": "https", "host": "h", "username": ["u"], "password": "p"}, False),
        ({"protocol": "https", "host": "h", "password": None}, False),
        ({"protocol": "https", "host": "h", "authtype": 1, "credential": "c"}, False),
    ],
    ids=str,
)
def test_well_formed(entry, expected):
    assert records.well_formed(entry) is expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("plain", True),
        ("tab\tand\rcarriage return", True),  # git carries these
        ("line\nbreak", False),
        ("nul\0byte", False),
        ("\n", False),
    ],
    ids=repr,
)
def test_sendable(value, expected):
    assert records.sendable({**PASSWORD, "password": value}) is expected
    assert records.sendable({**PASSWORD, "path": value}) is expected


def test_sendable_takes_a_number_as_it_is():
    assert records.sendable({**PASSWORD, "password_expiry_utc": NOW})


def test_a_list_value_holding_a_line_break_is_skipped():
    record = {**PASSWORD, "oauth_refresh_token": ["r\nhost=evil"]}
    # What State.match asks of a stored credential before answering with it.
    assert not records.well_formed(record) or records.refusal({}, record, NOW) is not None


# -- expiry -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (NOW, NOW),
        (str(NOW), NOW),
        ("1", 1),
        ("9" * 18, int("9" * 18)),
        ("9" * 19, None),  # past what git's timestamp holds: no expiry
        (0, None),
        ("0", None),
        ("000", None),
        (-5, None),
        ("-5", None),
        ("+5", None),
        (" 5", None),
        ("5 ", None),
        ("", None),
        ("1.5", None),
        (1.5, None),
        ("٣", None),  # a digit, but not an ASCII one
        ("²", None),
        (True, None),
        (False, None),
        (None, None),
        ([NOW], None),
    ],
    ids=repr,
)
def test_expiry_value(value, expected):
    assert records.expiry_value(value) == expected


def test_expired_compares_with_a_fractional_now():
    record = {"password_expiry_utc": NOW}
    assert records.expired(record, NOW - 0.5) is False
    assert records.expired(record, NOW + 0.5) is True


# -- get: refusal and response ----------------------------------------------------------------


def test_refusal_is_none_for_a_record_to_send():
    assert records.refusal({"host": "example.com"}, PASSWORD, NOW) is None
    assert records.refusal({"host": "example.com"}, CREDENTIAL, NOW, capable=True) is None


@pytest.mark.parametrize(
    "query, record, capable, reason",
    [
        ({"host": "other"}, PASSWORD, False, "host differs"),
        ({"path": "a.git"}, PASSWORD, False, "path differs"),
        ({}, {**PASSWORD, "password_expiry_utc": NOW}, False, "expired"),
        ({}, {**PASSWORD, "password": "p\nhost=evil"}, False, "line break or NUL"),
        ({}, {**PASSWORD, "username": "u\0"}, False, "line break or NUL"),
        ({}, CREDENTIAL, False, "capability[]=authtype"),
    ],
    ids=["host", "path", "expired", "line-break", "nul", "credential-only"],
)
def test_refusal_says_why(query, record, capable, reason):
    why = records.refusal(query, record, NOW, capable=capable)
    assert why is not None and reason in why


def test_refusal_checks_in_order_keys_expiry_values_capability():
    expired_unsendable = {**CREDENTIAL, "password_expiry_utc": NOW, "credential": "a\nb"}
    assert records.refusal({"host": "other"}, expired_unsendable, NOW) == "host differs"
    assert records.refusal({}, expired_unsendable, NOW) == "expired"
    unsendable = {**CREDENTIAL, "credential": "a\nb"}
    assert "line break" in records.refusal({}, unsendable, NOW)


def test_refusal_host_wide_ignores_the_path():
    assert records.refusal({"path": "a.git"}, PASSWORD, NOW, host_wide=True) is None


def test_response_never_answers_a_capability_not_announced():
    record = {
        "protocol": "p",
        "host": "h",
        "authtype": "Bearer",
        "credential": "c",
        "password": "s",
    }
    assert records.response(record, {}) == {"protocol": "p", "host": "h", "password": "s"}
    assert records.response(record, {"capability[]": ["authtype"]}) == {
        "capability[]": ["authtype"],
        "authtype": "Bearer",
        "credential": "c",
        "protocol": "p",
        "host": "h",
        "password": "s",
    }


def test_response_puts_the_capability_first_and_only_with_a_credential():
    answer = records.response({**PASSWORD, **CREDENTIAL}, CAPABLE)
    assert list(answer)[:3] == ["capability[]", "authtype", "credential"]
    assert "capability[]" not in records.response(PASSWORD, CAPABLE)


def test_response_keeps_only_what_git_reads():
    record = {
        **PASSWORD,
        "password_expiry_utc": NOW,
        "oauth_refresh_token": "r",
        "ephemeral": "1",
        "wwwauth[]": ["Basic"],
        "note": "hand-written",
    }
    assert records.response(record, {}) == {
        **PASSWORD,
        "password_expiry_utc": NOW,
        "oauth_refresh_token": "r",
    }


def test_response_gives_the_path_as_the_request_gave_it():
    record = {**PASSWORD, "path": "stored.git"}
    assert "path" not in records.response(record, {})
    assert records.response(record, {"path": "org/asked.git"})["path"] == "org/asked.git"
    assert records.response(record, {"path": ""})["path"] == ""


# -- store and erase --------------------------------------------------------------------------


def test_storable_keeps_whichever_form_it_was_given():
    assert records.storable(
        {"protocol": "p", "host": "h", "username": "u", "password": "s"}, NOW
    ) == {
        "protocol": "p",
        "host": "h",
        "username": "u",
        "password": "s",
    }
    capable = {"capability[]": ["authtype"], "protocol": "p", "host": "h"}
    assert records.storable({**capable, "authtype": "Bearer", "credential": "c"}, NOW) == {
        "protocol": "p",
        "host": "h",
        "authtype": "Bearer",
        "credential": "c",
    }
    assert records.storable({**capable, "authtype": "Bearer"}, NOW) is None
    assert records.storable({**capable, "credential": "c"}, NOW) is None
    assert records.storable({**capable, "username": "u"}, NOW) is None


def test_storable_keeps_both_forms_from_a_capable_request():
    request = {**CAPABLE, **PASSWORD, "authtype": "Bearer", "credential": "c"}
    assert records.storable(request, NOW) == {**PASSWORD, "authtype": "Bearer", "credential": "c"}


def test_storable_ignores_the_second_form_from_a_request_without_the_capability():
    assert records.storable(CREDENTIAL, NOW) is None
    request = {**PASSWORD, "authtype": "Bearer", "credential": "c"}
    assert records.storable(request, NOW) == PASSWORD


def test_storable_keeps_path_and_refresh_token_only_when_given():
    request = {**PASSWORD, "path": "a.git", "oauth_refresh_token": "r"}
    assert records.storable(request, NOW) == request
    empty = {**PASSWORD, "path": "", "oauth_refresh_token": ""}
    assert records.storable(empty, NOW) == PASSWORD


def test_storable_keeps_an_expiry_as_a_number_and_drops_one_git_reads_as_none():
    request = {**PASSWORD, "password_expiry_utc": str(NOW + 60)}
    assert records.storable(request, NOW)["password_expiry_utc"] == NOW + 60
    for none in ("0", "soon", ""):
        kept = records.storable({**PASSWORD, "password_expiry_utc": none}, NOW)
        assert kept == PASSWORD, none


def test_storable_leaves_out_what_is_not_a_credential():
    request = {**PASSWORD, "ephemeral": "false", "wwwauth[]": ["Basic"], "state[]": ["x"]}
    assert records.storable(request, NOW) == PASSWORD


def test_storable_refuses_the_ephemeral_second_form_too():
    request = {**CAPABLE, **CREDENTIAL, "ephemeral": "true"}
    assert records.storable(request, NOW) is None
    assert records.storable({**request, "ephemeral": "0"}, NOW) == CREDENTIAL


@pytest.mark.parametrize("key", records.MATCH_KEYS)
def test_any_match_key_makes_a_pattern_erasable_even_empty(key):
    assert records.erasable({key: ""}) is True


def test_a_pattern_of_secrets_alone_is_not_erasable():
    assert records.erasable({"password": "p", "authtype": "Bearer", "credential": "c"}) is False


# -- a Rexec login's token in the second form -------------------------------------------------


def test_bearer_sends_the_token_as_the_credential_not_the_password():
    login = {**PASSWORD, "password": "rexec_token"}
    answer = records.bearer(login)
    assert answer == {
        "protocol": "https",
        "host": "example.com",
        "username": "u",
        "authtype": "Bearer",
        "credential": "rexec_token",
    }
    assert login["password"] == "rexec_token"  # the login's record is left as it was


def test_holding_token_carries_the_token_in_both_forms():
    login = {**PASSWORD, "password": "rexec_token"}
    held = records.holding_token(login)
    assert held == {**login, "authtype": "Bearer", "credential": "rexec_token"}
    assert "credential" not in login
    assert records.matches({"credential": "rexec_token"}, held, with_password=True)
    assert records.matches({"password": "rexec_token"}, held, with_password=True)
