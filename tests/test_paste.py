"""What a person pastes while a browser login waits (rexec_credential.paste), called
directly: `token_from_query` and `parse_pasted` on good and hostile text.

Elsewhere: test_callback.py sends the same addresses to the callback server over HTTP
(which reads its token with `token_from_query`) and checks `CallbackServer.check_pasted`;
test_login_browser.py pastes addresses and tokens into rexec-login, in-process and through
a pseudo-terminal; tests/stress/test_hostile_neighbours.py attacks the callback port.
"""

from __future__ import annotations

import pytest

from rexec_credential import callback, paste

NONCE = "n" * 43
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VybmFtZSI6ImpvaG5kb2UifQ.c2ln"
CALLBACK = f"http://127.0.0.1:9876/callback/{NONCE}"


class Paths:
    """An is_callback_path that checks the nonce as the server does and remembers what
    it was asked."""

    def __init__(self) -> None:
        self.asked: list = []

    def __call__(self, path: str) -> bool:
        self.asked.append(path)
        return callback.path_matches(path, NONCE)


def pasted(text: str) -> tuple:
    return paste.parse_pasted(text, Paths())


# -- token_from_query -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ("token=abc", "abc"),
        ("token=abc&x=1", "abc"),
        ("x=1&token=a%2Bb", "a+b"),
        ("token=", None),
        ("", None),
        ("tok=abc", None),
    ],
    ids=["plain", "first", "decoded", "empty", "none", "other-key"],
)
def test_token_from_query(query, expected):
    assert paste.token_from_query(query) == expected


@pytest.mark.parametrize(
    "query, expected",
    [
        ("token=abc&token=evil", "abc"),  # a second token never replaces the first
        ("token", None),  # the key with no value
        ("TOKEN=abc", None),  # names are compared exactly
        ("&&token=abc&", "abc"),
        ("token=a+b", "a b"),  # form encoding, as the browser's address is read
        ("to%6Ben=abc", "abc"),  # an encoded name is the name
        ("token%3Dabc", None),  # an encoded '=' is not a separator
        ("token=%E2%9C%93", "\u2713"),
        ("token=%FF", "\ufffd"),  # not UTF-8: replaced, never an exception
        ("token=%ZZ", "%ZZ"),  # a broken escape is left as it is
    ],
    ids=[
        "repeated",
        "bare-key",
        "case",
        "stray-separators",
        "plus",
        "encoded-name",
        "encoded-equals",
        "utf-8",
        "not-utf-8",
        "broken-escape",
    ],
)
def test_token_from_query_on_hostile_queries(query, expected):
    assert paste.token_from_query(query) == expected


def test_token_from_query_takes_a_long_value_whole():
    assert paste.token_from_query("token=" + "a" * 100_000) == "a" * 100_000


# -- parse_pasted -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (f"http://127.0.0.1:9876/callback/{NONCE}?token={TOKEN}", (TOKEN, None)),
        (f"http://localhost:9876/callback/{NONCE}?token={TOKEN}\n", (TOKEN, None)),
        (f"  /callback/{NONCE}?token={TOKEN}#frag ", (TOKEN, None)),
        (f"127.0.0.1:9876/callback/{NONCE}?token={TOKEN}", (TOKEN, None)),
        (TOKEN, (TOKEN, None)),
        (f"http://127.0.0.1:9876/callback/wrong?token={TOKEN}", (None, paste.WRONG_ADDRESS)),
        (f"http://127.0.0.1:9876/callback?token={TOKEN}", (None, paste.WRONG_ADDRESS)),
        (f"http://127.0.0.1:9876/?token={TOKEN}", (None, paste.WRONG_ADDRESS)),
        (f"token={TOKEN}", (None, paste.WRONG_ADDRESS)),
        (f"http://127.0.0.1:9876/callback/{NONCE}", (None, paste.NO_TOKEN)),
        (f"http://127.0.0.1:9876/callback/{NONCE}?token=", (None, paste.NO_TOKEN)),
        ("   ", (None, paste.NO_TOKEN)),
    ],
    ids=[
        "address",
        "localhost-newline",
        "path-only-fragment",
        "no-scheme",
        "bare-token",
        "wrong-nonce",
        "missing-nonce",
        "root",
        "query-only",
        "no-token",
        "empty-token",
        "blank",
    ],
)
def test_parse_pasted_checks_the_nonce_like_a_request(text, expected):
    assert paste.parse_pasted(text, lambda path: callback.path_matches(path, NONCE)) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"http://127.0.0.1:9876/wrong#/callback/{NONCE}?token={TOKEN}",  # the path in a fragment
        f"http://127.0.0.1:9876/x?next=/callback/{NONCE}&token={TOKEN}",  # in the query
        f"http://127.0.0.1:9876/callback/{NONCE}/?token={TOKEN}",  # a trailing slash
        f"http://127.0.0.1:9876/callback/{NONCE}/../{NONCE}?token={TOKEN}",
        f"http://127.0.0.1:9876/callback/%6E{NONCE[1:]}?token={TOKEN}",  # never decoded
        f"http://127.0.0.1:9876/CALLBACK/{NONCE}?token={TOKEN}",
        f"http://127.0.0.1:9876/callback/{NONCE.upper()}?token={TOKEN}",
        f"http://127.0.0.1:9876?token={TOKEN}",  # no path at all
        f"http://127.0.0.1:9876/callback/{NONCE[:-1]}?token={TOKEN}",
        f"http://127.0.0.1:9876/callback/{NONCE}n?token={TOKEN}",
        "://",
        "?",
        "=",
        "/",
    ],
    ids=[
        "in-fragment",
        "in-query",
        "trailing-slash",
        "dot-dot",
        "percent-encoded",
        "upper-case-path",
        "upper-case-nonce",
        "no-path",
        "nonce-cut-short",
        "nonce-extended",
        "scheme-separator",
        "question-mark",
        "equals",
        "slash",
    ],
)
def test_an_address_without_this_logins_exact_path_is_refused(text):
    assert pasted(text) == (None, paste.WRONG_ADDRESS)


def test_a_token_only_in_the_fragment_is_no_token():
    assert pasted(f"{CALLBACK}#?token={TOKEN}") == (None, paste.NO_TOKEN)
    assert pasted(f"{CALLBACK}?x=1#token={TOKEN}") == (None, paste.NO_TOKEN)


def test_the_first_token_of_the_address_is_the_one_taken():
    assert pasted(f"{CALLBACK}?token={TOKEN}&token=evil") == (TOKEN, None)
    assert pasted(f"{CALLBACK}?x=1&token={TOKEN}#token=evil") == (TOKEN, None)


def test_the_path_check_sees_the_path_alone():
    paths = Paths()
    text = f"http://user:secret@evil.example:1/callback/{NONCE}?token={TOKEN}#/elsewhere"
    # The host is not what is checked (the browser may have ended on any name of this
    # machine): the one-time path is.
    assert paste.parse_pasted(text, paths) == (TOKEN, None)
    assert paths.asked == [f"/callback/{NONCE}"]


def test_an_address_with_no_path_asks_about_the_empty_path():
    paths = Paths()
    assert paste.parse_pasted(f"http://127.0.0.1:9876?token={TOKEN}", paths) == (
        None,
        paste.WRONG_ADDRESS,
    )
    assert paths.asked == [""]


@pytest.mark.parametrize("text", [TOKEN, f"\t{TOKEN}\r\n", "", " \t\r\n"], ids=repr)
def test_a_bare_token_or_a_blank_line_is_not_an_address(text):
    paths = Paths()
    token, why = paste.parse_pasted(text, paths)
    assert (token, why) == ((TOKEN, None) if text.strip() else (None, paste.NO_TOKEN))
    assert paths.asked == []


def test_a_bare_token_is_returned_as_it_is_only_trimmed():
    # Whether it is a token at all is the login's question (tokens.kind), not this one's.
    assert pasted("  not a token  ") == ("not a token", None)
    assert pasted("rexec_\u2713") == ("rexec_\u2713", None)


def test_a_long_pasted_address_is_read_whole():
    long_token = "a" * 1_000_000
    assert pasted(f"{CALLBACK}?token={long_token}") == (long_token, None)
