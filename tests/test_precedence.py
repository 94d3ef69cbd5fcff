"""Precedence and the environment rules (rexec_credential.precedence), as a table that reads
like docs/contract.md §4: option, then environment, then the stored logins, then the
default; REXEC_TOKEN first and never written; a stored token bound to its host."""

from __future__ import annotations

import pytest
from helpers import NOW, jwt

from rexec_credential import precedence
from rexec_credential.accounts import Account
from rexec_credential.errors import UsageError
from rexec_credential.state import State

DEFAULT = "https://rexec.pipeops.io"
STAGING = "https://staging.example.com"
ACTIVE = "rexec_" + "a" * 64  # the active login, on the default host
OTHER = "rexec_" + "b" * 64  # an account on staging
ENV = "rexec_" + "e" * 64
EXPIRED = jwt(username="johndoe", exp=NOW - 1)


def state(active: bool = True, staging: bool = True, host: str = DEFAULT) -> State:
    config = {"host": host, "token": ACTIVE, "username": "johndoe"} if active else {}
    stored = {"accounts": [Account(STAGING, "ci", OTHER).to_json()]} if staging else {}
    return State(config, stored)


#  option     REXEC_HOST  REXEC_TOKEN  stored logins   → host     host from  token   token from
RESOLVE = [
    (None, None, None, "both", DEFAULT, "config", ACTIVE, "config"),
    (None, None, None, "none", DEFAULT, "default", None, None),
    (STAGING, None, None, "both", STAGING, "option", OTHER, "config"),
    (None, STAGING, None, "both", STAGING, "env", OTHER, "config"),
    (STAGING, DEFAULT, None, "both", STAGING, "option", OTHER, "config"),
    (None, STAGING, None, "active only", STAGING, "env", None, None),
    (None, None, ENV, "both", DEFAULT, "config", ENV, "env"),
    (None, STAGING, ENV, "none", STAGING, "env", ENV, "env"),
    ("staging.example.com", None, None, "both", STAGING, "option", OTHER, "config"),
]


@pytest.mark.parametrize(
    "option, rexec_host, rexec_token, stored, host, host_source, token, token_source", RESOLVE
)
def test_resolve(option, rexec_host, rexec_token, stored, host, host_source, token, token_source):
    world = {"both": state(), "none": State(), "active only": state(staging=False)}[stored]
    env = {k: v for k, v in (("REXEC_HOST", rexec_host), ("REXEC_TOKEN", rexec_token)) if v}
    found = precedence.resolve(world, env, option, NOW)
    assert (found.host, found.host_source, found.token, found.token_source) == (
        host,
        host_source,
        token,
        token_source,
    )


def test_an_unexpired_stored_login_before_an_expired_one():
    world = State(
        {"host": DEFAULT, "token": EXPIRED, "username": "johndoe"},
        {"accounts": [Account(DEFAULT, "janedoe", ACTIVE).to_json()]},
    )
    assert precedence.resolve(world, {}, None, NOW).token == ACTIVE
    alone = State({"host": DEFAULT, "token": EXPIRED})
    assert precedence.resolve(alone, {}, None, NOW).token == EXPIRED  # the server says why


def test_a_bad_option_or_rexec_host_is_a_usage_error_a_bad_stored_host_a_storage_error():
    with pytest.raises(UsageError, match="invalid REXEC_HOST"):
        precedence.resolve(State(), {"REXEC_HOST": "ftp://x"})
    with pytest.raises(UsageError, match="invalid --host"):
        precedence.resolve(State(), {}, "https://bad host")
    bad = State({"host": "https://h:\u00b2", "token": ACTIVE})
    with pytest.raises(precedence.BadStoredHost, match="rexec-logout") as caught:
        precedence.resolve(bad, {})
    assert caught.value.exit_code == 4
    # Another host asked for: the stored one does not matter.
    assert precedence.resolve(bad, {"REXEC_HOST": "https://other.example"}).token is None


def test_rexec_token_is_what_must_never_be_written():
    assert precedence.kept_out({"REXEC_TOKEN": ENV}) == (ENV,)
    assert precedence.kept_out({"REXEC_TOKEN": f" {ENV}\n"}) == (ENV,)  # trimmed, as a login
    assert precedence.kept_out({"REXEC_TOKEN": "\n"}) == ()
    assert precedence.kept_out({"REXEC_TOKEN": ""}) == ()
    assert precedence.kept_out({}) == ()


@pytest.mark.parametrize(
    "request_, asks",
    [
        ({}, {"protocol": "https", "host": "rexec.pipeops.io"}),
        ({"capability[]": ["authtype"]}, {"protocol": "https", "host": "rexec.pipeops.io"}),
        ({"host": "github.com"}, {"host": "github.com"}),
        ({"username": "u"}, {"username": "u"}),
    ],
    ids=["empty", "only-a-list", "a-host", "a-username"],
)
def test_an_empty_git_request_asks_for_the_effective_host(request_, asks):
    assert precedence.git_query(request_, state(), {}) == asks


#  REXEC_HOST               allowed  request host         → answered
ENV_ANSWERS = [
    (None, None, "rexec.pipeops.io", True),
    (None, None, "github.com", False),  # another host
    ("http://127.0.0.1:8080", None, "127.0.0.1:8080", True),  # loopback: plain http
    ("http://example.com", None, "example.com", False),  # never in clear...
    ("http://example.com", "1", "example.com", True),  # ...unless allowed
    ("http://127.0.0.1.evil.example", None, "127.0.0.1.evil.example", False),  # not loopback
]


@pytest.mark.parametrize("rexec_host, allowed, asked, answered", ENV_ANSWERS)
def test_rexec_token_answers_git_for_the_effective_host_only(rexec_host, allowed, asked, answered):
    env = {"REXEC_TOKEN": ENV}
    if rexec_host:
        env["REXEC_HOST"] = rexec_host
    if allowed:
        env["REXEC_ALLOW_INSECURE_HTTP"] = allowed
    protocol = (rexec_host or DEFAULT).split("://")[0]
    found = precedence.env_decision({"protocol": protocol, "host": asked}, State(), env, NOW)[0]
    assert (found is not None and found["password"] == ENV) is answered


def test_rexec_token_username_and_expiry():
    token = jwt(username="johndoe", exp=NOW + 60)
    found = precedence.env_decision({}, State(), {"REXEC_TOKEN": token}, NOW)[0]
    assert (found["username"], found["password_expiry_utc"]) == ("johndoe", NOW + 60)
    assert (
        precedence.env_decision({"username": "janedoe"}, State(), {"REXEC_TOKEN": token}, NOW)[0]
        is None
    )
    assert precedence.env_decision({}, State(), {"REXEC_TOKEN": EXPIRED}, NOW)[0] is None
    api = precedence.env_decision({"username": "ci-bot"}, State(), {"REXEC_TOKEN": ENV}, NOW)[0]
    assert api["username"] == "ci-bot"
    assert (
        precedence.env_decision({}, State(), {"REXEC_TOKEN": ENV}, NOW)[0]["username"]
        == "x-rexec-token"
    )


def test_resolve_says_whether_the_token_is_the_active_logins():
    assert precedence.resolve(state(), {}, None, NOW).active is True
    on_staging = precedence.resolve(state(), {"REXEC_HOST": STAGING}, None, NOW)
    assert (on_staging.account.username, on_staging.active) == ("ci", False)
    assert precedence.resolve(state(), {"REXEC_TOKEN": ENV}, None, NOW).active is False


# -- the other variables: each read here, a plain value handed down -------------------------


def test_the_config_directory_defaults_to_home_and_honours_the_override(home):
    assert precedence.config_directory({"HOME": str(home)}) == str(home / ".rexec")
    assert precedence.config_directory({"HOME": str(home), "REXEC_CONFIG_DIR": "/x/y"}) == "/x/y"
    assert precedence.config_directory({"HOME": str(home), "REXEC_CONFIG_DIR": ""}) == str(
        home / ".rexec"
    )


@pytest.mark.parametrize(
    "value, allowed", [(None, False), ("1", True), ("", False), ("0", False), ("true", False)]
)
def test_plain_http_is_allowed_only_by_rexec_allow_insecure_http_1(value, allowed):
    env = {} if value is None else {"REXEC_ALLOW_INSECURE_HTTP": value}
    assert precedence.insecure_http_allowed(env) is allowed


@pytest.mark.parametrize(
    "env, bundle",
    [
        ({}, None),
        ({"REQUESTS_CA_BUNDLE": "/ca/requests.pem"}, "/ca/requests.pem"),
        ({"CURL_CA_BUNDLE": "/ca/curl.pem"}, "/ca/curl.pem"),
        ({"REQUESTS_CA_BUNDLE": "/ca/r.pem", "CURL_CA_BUNDLE": "/ca/c.pem"}, "/ca/r.pem"),
        ({"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "/ca/c.pem"}, "/ca/c.pem"),
    ],
)
def test_the_ca_bundle_is_requests_then_curls(env, bundle):
    assert precedence.ca_bundle(env) == bundle


@pytest.mark.parametrize(
    "env, allowed", [({}, True), ({"NO_COLOR": ""}, True), ({"NO_COLOR": "1"}, False)]
)
def test_no_color_set_and_not_empty_turns_colour_off(env, allowed):
    assert precedence.colour_allowed(env) is allowed
