"""The git credential wire format (rexec_credential.protocol): table tests and properties."""

from __future__ import annotations

import io

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rexec_credential import protocol
from rexec_credential.errors import ProtocolError

# -- parse: what a request means ------------------------------------------------------------

PARSED = [
    ("empty input", b"", {}),
    (
        "eof ends input without a blank line",
        b"protocol=https\nhost=a.tld",
        {"protocol": "https", "host": "a.tld"},
    ),
    ("blank line ends input", b"host=a.tld\n\nhost=b.tld\n", {"host": "a.tld"}),
    ("blank line first", b"\nhost=a.tld\n", {}),
    ("garbage after the blank line is never read", b"host=a\n\n\0\xff no equals\n", {"host": "a"}),
    ("split at the first =", b"password=a=b==\n", {"password": "a=b=="}),
    ("empty value", b"username=\npassword=\n", {"username": "", "password": ""}),
    ("later value wins", b"host=a\nhost=b\n", {"host": "b"}),
    (
        "CRLF accepted",
        b"protocol=https\r\nhost=a\r\n\r\nhost=b\n",
        {"protocol": "https", "host": "a"},
    ),
    (
        "unknown keys kept for the caller to ignore",
        b"future=1\nhost=a\n",
        {"future": "1", "host": "a"},
    ),
    ("empty key", b"=x\n", {"": "x"}),
    (
        "list keys collect in order",
        b"wwwauth[]=Basic a\nwwwauth[]=Bearer b\n",
        {"wwwauth[]": ["Basic a", "Bearer b"]},
    ),
    (
        "empty list value clears the list",
        b"capability[]=authtype\ncapability[]=\ncapability[]=state\n",
        {"capability[]": ["state"]},
    ),
    (
        "a list value is never an attribute",
        b"host=a\nwwwauth[]=x host=victim\nwwwauth[]=host=v\n",
        {"host": "a", "wwwauth[]": ["x host=victim", "host=v"]},
    ),
    ("non-ASCII UTF-8", "username=jürgen\n".encode(), {"username": "jürgen"}),
    ("value keeps spaces", b"password= spaced \n", {"password": " spaced "}),
    ("quit is just an attribute here", b"quit=1\n", {"quit": "1"}),
]


@pytest.mark.parametrize("data, expected", [p[1:] for p in PARSED], ids=[p[0] for p in PARSED])
def test_parse(data, expected):
    assert protocol.parse(data) == expected


MALFORMED = [
    ("line without =", b"protocol=https\nhost\n", "line 2 has no '='"),
    ("NUL byte", b"host=a\0b\n", "line 1 contains a NUL byte"),
    ("NUL in a list value", b"wwwauth[]=\0\n", "NUL"),
    ("bad UTF-8", b"username=\xff\xfe\n", "line 1 is not valid UTF-8"),
    ("line over 65535 bytes", b"wwwauth[]=" + b"a" * 65535 + b"\n", "longer than 65535"),
    ("url without scheme", b"url=example.com/repo\n", "url has no scheme"),
    ("url with empty scheme", b"url=://example.com\n", "url has no scheme"),
    ("url with encoded newline", b"url=https://a%0ab.tld/\n", "newline or NUL in its host"),
    ("url with encoded NUL", b"url=https://u%00@a.tld/\n", "newline or NUL in its username"),
    ("url decoding to bad UTF-8", b"url=https://a.tld/%ff\n", "not valid UTF-8"),
]


@pytest.mark.parametrize("data, message", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_parse_rejects(data, message):
    with pytest.raises(ProtocolError) as info:
        protocol.parse(data)
    assert message in info.value.message
    assert info.value.message.startswith("invalid credential input: ")
    assert info.value.exit_code == 2


def test_error_never_echoes_the_line():
    with pytest.raises(ProtocolError) as info:
        protocol.parse(b"rexec_" + b"a" * 64 + b"\n")
    assert "rexec_" not in info.value.message


@pytest.mark.parametrize("length, ok", [(65533, True), (65534, True), (65535, False)])
def test_line_limit_counts_the_newline(length, ok):
    """git-credential(1): a line, newline included, is at most 65535 bytes."""
    data = b"k=" + b"v" * (length - 2) + b"\n"
    assert len(data) == length + 1
    if ok:
        assert protocol.parse(data) == {"k": "v" * (length - 2)}
    else:
        with pytest.raises(ProtocolError):
            protocol.parse(data)


# -- url= --------------------------------------------------------------------------------

URLS = [
    ("scheme and host", "https://example.com", {"protocol": "https", "host": "example.com"}),
    (
        "port stays in host",
        "http://127.0.0.1:8080/",
        {"protocol": "http", "host": "127.0.0.1:8080"},
    ),
    (
        "path without slashes",
        "https://h.tld//org/repo.git//",
        {"protocol": "https", "host": "h.tld", "path": "org/repo.git"},
    ),
    (
        "username",
        "https://bob@h.tld/r",
        {"protocol": "https", "host": "h.tld", "username": "bob", "path": "r"},
    ),
    (
        "username and password",
        "https://bob:s%3Ac@h.tld",
        {"protocol": "https", "host": "h.tld", "username": "bob", "password": "s:c"},
    ),
    ("empty username", "https://@h.tld", {"protocol": "https", "host": "h.tld", "username": ""}),
    (
        "@ in the path is not userinfo",
        "https://h.tld/a@b",
        {"protocol": "https", "host": "h.tld", "path": "a@b"},
    ),
    (
        "query ends the host",
        "https://h.tld?x=1",
        {"protocol": "https", "host": "h.tld", "path": "?x=1"},
    ),
    (
        "empty host (cert:///)",
        "cert:///etc/cert.pem",
        {"protocol": "cert", "host": "", "path": "etc/cert.pem"},
    ),
    (
        "percent-decoding",
        "https://j%C3%BCrgen@h.tld/a%20b",
        {"protocol": "https", "host": "h.tld", "username": "jürgen", "path": "a b"},
    ),
    (
        "bad escape kept literally",
        "https://h.tld/100%zz",
        {"protocol": "https", "host": "h.tld", "path": "100%zz"},
    ),
    (
        "a decoded slash alone is kept",
        "https://h.tld/%2F",
        {"protocol": "https", "host": "h.tld", "path": "/"},
    ),
]


@pytest.mark.parametrize("url, expected", [u[1:] for u in URLS], ids=[u[0] for u in URLS])
def test_split_url(url, expected):
    assert protocol.split_url(url) == expected


def test_url_replaces_the_credential_but_not_other_keys():
    """git's credential_from_url() clears the credential first."""
    data = b"username=old\npassword=old\npath=old\nwwwauth[]=x\nhost=old\nurl=https://new.tld\n"
    assert protocol.parse(data) == {"protocol": "https", "host": "new.tld", "wwwauth[]": ["x"]}


def test_keys_after_url_override_it():
    assert protocol.parse(b"url=https://a.tld/x\nusername=u\npath=y\n") == {
        "protocol": "https",
        "host": "a.tld",
        "path": "y",
        "username": "u",
    }


# -- read: from a stream ---------------------------------------------------------------------


class Endless(io.RawIOBase):
    """A stream that never ends (like a terminal); reading past a blank line would hang."""

    def __init__(self, head: bytes) -> None:
        self.head = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.head:
            raise AssertionError("read past the end of the request")
        n = min(len(buffer), len(self.head))
        buffer[:n], self.head = self.head[:n], self.head[n:]
        return n


def test_read_stops_at_blank_line():
    stream = io.BufferedReader(Endless(b"protocol=https\nhost=a\n\n"), buffer_size=1)
    assert protocol.read(stream) == {"protocol": "https", "host": "a"}


def test_read_until_eof():
    assert protocol.read(io.BytesIO(b"host=a\nusername=u")) == {"host": "a", "username": "u"}


def test_read_bounds_memory_on_a_huge_line():
    stream = io.BytesIO(b"k=" + b"x" * 10_000_000)
    with pytest.raises(ProtocolError):
        protocol.read(stream)
    assert stream.tell() < 70_000


# -- booleans ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("2", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("", False),
        ("maybe", False),
        (None, False),
        ("²", False),
    ],
)
def test_is_true(value, expected):
    assert protocol.is_true(value) is expected


# -- render -----------------------------------------------------------------------------------


def test_render_orders_known_keys_like_get():
    attrs = {
        "oauth_refresh_token": "r",
        "password": "p",
        "username": "u",
        "host": "h",
        "password_expiry_utc": 5,
        "path": "x",
        "protocol": "https",
    }
    assert protocol.render(attrs) == (
        "protocol=https\nhost=h\npath=x\nusername=u\npassword=p\n"
        "password_expiry_utc=5\noauth_refresh_token=r\n"
    )


def test_render_lists_and_empty_values():
    assert protocol.render({"username": "", "wwwauth[]": ["a", "b"]}) == (
        "username=\nwwwauth[]=a\nwwwauth[]=b\n"
    )


@pytest.mark.parametrize(
    "attrs",
    [
        {"password": "a\nhost=evil"},
        {"password": "a\0"},
        {"a=b": "c"},
        {"": "x"},
    ],
    ids=["newline", "NUL", "= in key", "empty key"],
)
def test_render_refuses_to_inject(attrs):
    with pytest.raises(ProtocolError):
        protocol.render(attrs)


# -- properties: the parser takes untrusted input ---------------------------------------------

keys = st.text(
    st.characters(blacklist_characters="=\n\0\r", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=20,
).filter(lambda k: k != "url" and not k.endswith("[]"))
values = st.text(
    st.characters(blacklist_characters="\n\0\r", blacklist_categories=("Cs",)), max_size=200
)


@given(st.binary(max_size=400))
@example(b"\xff=\n")
@example(b"a" * 70000)
def test_any_bytes_parse_or_raise_protocol_error(data):
    try:
        request = protocol.parse(data)
    except ProtocolError as exc:
        assert "\n" not in exc.message
        return
    for key, value in request.items():
        assert "=" not in key and "\n" not in key and "\0" not in key
        for item in value if isinstance(value, list) else [value]:
            assert isinstance(item, str) and "\n" not in item and "\0" not in item


@given(st.dictionaries(keys, values, max_size=8))
def test_render_then_parse_round_trips(attrs):
    assert protocol.parse(protocol.render(attrs).encode()) == attrs


@given(values, st.sampled_from(["wwwauth[]", "capability[]", "state[]"]))
def test_list_values_never_become_attributes(value, list_key):
    data = f"protocol=https\nhost=badguy.tld\n{list_key}={value}host=victim.tld\n".encode()
    request = protocol.parse(data)
    assert request["host"] == "badguy.tld"
    assert request[list_key] == [value + "host=victim.tld"]


@given(st.dictionaries(keys, values, max_size=5), st.binary(max_size=100))
def test_nothing_after_a_blank_line_counts(attrs, tail):
    assert protocol.parse(protocol.render(attrs).encode() + b"\n" + tail) == attrs


@given(st.binary(max_size=300))
def test_read_agrees_with_parse(data):
    try:
        expected = protocol.parse(data)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            protocol.read(io.BytesIO(data))
        return
    assert protocol.read(io.BytesIO(data)) == expected
