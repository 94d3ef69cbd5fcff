"""Token formats (docs/contract.md §2): classification, JWT expiry, redaction."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rexec_credential import tokens
from rexec_credential.errors import AuthError


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def jwt(claims: dict) -> str:
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.c2lnbmF0dXJl"


API_70 = "rexec_" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "token, expected",
    [
        pytest.param(API_70, "api", id="service-issued-64-hex"),
        pytest.param("rexec_" + "a" * 32, "api", id="shortest-32"),
        pytest.param("rexec_" + "Z9" * 16, "api", id="mixed-case-alnum"),
        pytest.param("rexec_" + "a" * 31, None, id="too-short"),
        pytest.param("rexec_" + "a" * 65, None, id="too-long"),
        pytest.param("rexec_" + "a" * 31 + "-", None, id="non-alnum"),
        pytest.param("rexec_abc123def456ghi789xyz", None, id="seed-example-too-short"),
        pytest.param(jwt({"exp": 1}), "jwt", id="jwt"),
        pytest.param("a.b.c", None, id="three-segments-not-json"),
        pytest.param(jwt({}) + ".x", None, id="four-segments"),
        pytest.param("", None, id="empty"),
        pytest.param(" " + API_70, None, id="leading-space"),
        pytest.param("ghp_" + "a" * 36, None, id="github-token"),
    ],
)
def test_kind(token, expected):
    assert tokens.kind(token) == expected


def test_classify_rejects_malformed_with_what_valid_looks_like():
    with pytest.raises(AuthError) as info:
        tokens.classify("rexec_short")
    assert "rexec_ followed by 32-64 letters or digits" in info.value.message
    assert "rexec_short" not in info.value.message
    assert info.value.exit_code == 1


def test_expiry_reads_jwt_exp_without_verifying():
    assert tokens.expiry(jwt({"exp": 1999999999, "username": "x"})) == 1999999999
    assert tokens.expiry(jwt({"username": "x"})) is None
    assert tokens.expiry(jwt({"exp": "soon"})) is None
    assert tokens.expiry(jwt({"exp": True})) is None
    assert tokens.expiry(API_70) is None


def test_redact_never_contains_the_secret_part():
    for token in (API_70, jwt({"exp": 5, "sid": "secret-session"})):
        shown = tokens.redact(token)
        assert token not in shown and token[8:20] not in shown


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=120))
def test_kind_never_raises_and_is_consistent(text):
    found = tokens.kind(text)
    assert found in (None, "api", "jwt")
    if found is None:
        with pytest.raises(AuthError):
            tokens.classify(text)
    else:
        assert tokens.classify(text) == found


def raw_segment(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("exp", ["1e999", "-1e999", "NaN"])
def test_an_exp_that_is_no_time_is_no_expiry(exp):
    """JSON parsers read 1e999 as infinity and NaN as nan: neither is a time."""
    payload = '{"exp": ' + exp + "}"
    token = raw_segment('{"alg": "HS256"}') + "." + raw_segment(payload) + ".c2ln"
    assert tokens.kind(token) == "jwt"
    assert tokens.expiry(token) is None


def test_a_payload_nested_past_the_parsers_depth_is_not_a_jwt():
    deep = "[" * 100_000 + "]" * 100_000
    token = raw_segment("{}") + "." + raw_segment(deep) + ".c2ln"
    assert tokens.kind(token) is None and tokens.expiry(token) is None
