"""Hostile credential-helper input: generated requests never crash the parser or the command.

Every property runs 10,000 generated cases with --full (the README's figure), 1,500
otherwise: arbitrary bytes, valid requests mutated (bit flips, truncation, NUL, CR and
invalid UTF-8 inserted, lines over 65535 bytes, `=`-less lines, duplicate keys),
`wwwauth[]`/`capability[]` values carrying `host=`-like text behind every kind of line
separator that is not git's `\\n`, and `url=` values with odd parts. What they prove:
the only exception is ProtocolError (one fixed line that never echoes the input);
every attribute of a parsed request comes from one whole `key=value` line before the
terminator (or from a `url=` line), so nothing inside a list value ever becomes an
attribute; a malformed line before the terminator is always rejected; the streaming
reader agrees with the parser; and `rexec-credential get|store|erase` answers every
such request with exit 0 or 2, one stderr line, protocol-only stdout, neither file torn.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat

from conftest import call
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from rexec_credential import protocol
from rexec_credential.errors import ProtocolError

from . import rounds

CASES = rounds(full=10_000, ci=1_500)
SETTINGS = settings(
    max_examples=CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

MARK = "ZQX9"  # planted only inside list values; never produced by the other strategies
LIST_KEYS = ["wwwauth[]", "capability[]", "state[]"]
SCALAR_KEYS = [
    "protocol",
    "host",
    "path",
    "username",
    "password",
    "password_expiry_utc",
    "oauth_refresh_token",
    "quit",
    "ephemeral",
    "authtype",
    "credential",
    "continue",
    "future",
    "Host",
    "host ",
    " host",
    "",
]
# The ProtocolError messages, all of them: fixed text, so input is never echoed back.
ERROR = re.compile(
    r"invalid credential input: (?:line \d+ (?:is longer than 65535 bytes|contains a NUL byte"
    r"|is not valid UTF-8|has no '=' \(expected key=value\))|url has no scheme"
    r"|url has a newline or NUL in its (?:protocol|host|path|username|password)"
    r"|url is not valid UTF-8 once decoded)"
)

# -- strategies -------------------------------------------------------------------------

# Printable ASCII plus the characters that matter to a line-oriented parser. Values are
# drawn as bytes mapped onto it (one draw per value: the case budget goes to cases, not
# to generation).
ALPHABET = [chr(c) for c in range(32, 127)] + list(
    "\r\t\x0b\x0c\x1c\x1d\x1e\x7f\x85\xa0é€\u2028\u2029\ufeff\U0001f600"
)
values = (
    st.binary(max_size=24)
    .map(lambda raw: "".join(ALPHABET[b % len(ALPHABET)] for b in raw))
    .filter(lambda v: MARK not in v)
)
# Text that looks like another attribute, behind every separator that is not git's "\n".
INJECTIONS = [
    f"host={MARK}",
    f"\rhost={MARK}",
    f"\r\rpassword={MARK}",
    f"\x0bhost={MARK}",
    f"\x0chost={MARK}",
    f"\x1chost={MARK}",
    f"\x1dusername={MARK}",
    f"\x1ehost={MARK}",
    f"\x85host={MARK}",
    f"\u2028host={MARK}",
    f"\u2029password={MARK}",
    f"%0ahost={MARK}",
    f"%0d%0ahost={MARK}",
    f"\\nhost={MARK}",
    f"url=https://{MARK}/",
    f" host={MARK}",
    f"\thost={MARK}",
    f"=host={MARK}",
    f"[]=x\rhost={MARK}",
    f"\r\0host={MARK}",
    f"\r\\nhost={MARK}",
    f"quit=1\rhost={MARK}",
]
injected = st.builds(lambda a, i, b: a + i + b, values, st.sampled_from(INJECTIONS), values)

odd_urls = st.one_of(
    st.builds(
        lambda *parts: "".join(parts),
        st.sampled_from(
            ["https", "http", "", "HTTPS", "cert", "git+ssh", "a b", "h\rttp", "x=y", "%68ttps"]
        ),
        st.sampled_from(["://", ":/", ":", "", ":///"]),
        st.sampled_from(
            [
                "",
                "u@",
                "u:p@",
                "%75ser:p%40ss@",
                "@",
                ":@",
                "u%0a@",
                "u%00:x@",
                "%ff@",
                "a@b@",
                "u:@",
                "user:pa:ss@",
                "%e2%82%ac@",
            ]
        ),
        st.sampled_from(
            [
                "example.com",
                "EXAMPLE.com:8443",
                "[::1]:80",
                "%68ost",
                "",
                "h%0aost=evil",
                "127.0.0.1:9876",
                "host:port:junk",
                "bücher.example",
                "ho%00st",
                "%zz",
                "%",
                "a.tld%2f..%2f",
                "h\rost",
            ]
        ),
        st.sampled_from(
            [
                "",
                "/",
                "/repo.git",
                "/a/b/",
                "//",
                "/%2e%2e/",
                "?q=1",
                "#frag",
                "/p?host=evil",
                "/%0ahost=evil",
                "/%ff",
                "/%c3%a9",
                "/\rx",
                "///x//",
                "/a%00b",
            ]
        ),
    ),
    values,
)


PLAIN_URLS = [
    "https://example.com/repo.git",
    "https://u@example.com:8443/",
    "http://127.0.0.1:9876",
    "https://rexec.pipeops.io",
    "https://u:p@host.tld/a/b/",
]
NOT_KEY_VALUE = [
    "host",
    "garbage line",
    "wwwauth[] Basic",
    "\x85",
    "protocol https",
    "%0a",
    "\r\r",
    " ",
    "\u2028",
    "url",
]


def _lines(list_values):
    scalar = st.tuples(st.sampled_from(SCALAR_KEYS) | values.filter(lambda k: "=" not in k), values)
    listed = st.tuples(st.sampled_from(LIST_KEYS), list_values)
    return st.lists(
        st.one_of(  # one_of picks a branch uniformly: url= lines 1 in 5
            scalar,
            scalar,
            listed,
            listed,
            st.tuples(st.just("url"), st.sampled_from(PLAIN_URLS) | odd_urls),
        ),
        max_size=8,
    )


# Strategies are built once, here: building them inside a draw costs more than the case.
PLAIN_LINES, INJECTED_LINES = _lines(values), _lines(injected)


BLOBS = [
    b"\0",
    b"\r",
    b"\xff",
    b"\xc3(",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"=",
    "\x85".encode(),
    "\u2028".encode(),
    b"\r\0",
    b"[]",
]
# Padding that takes a line to just under, at and over git's 65535-byte limit.
PADS = [10, 1000, 65500, 65520, 65523, 65524, 65525, 65535, 70000]
positions = st.integers(0, 1 << 20)

# Structure-preserving edits: they change values, add or repeat whole lines, never split one.
structural = st.one_of(
    st.tuples(st.just("in_value"), positions, positions, st.sampled_from(BLOBS)),
    st.tuples(st.just("pad_value"), positions, st.sampled_from(PADS)),
    st.tuples(st.just("duplicate"), positions),
    st.tuples(st.just("swap"), positions, positions),
    st.tuples(st.just("no_equals"), positions, st.sampled_from(NOT_KEY_VALUE)),
    st.tuples(st.just("crlf")),
)
# Anything goes on the bytes, including new line breaks.
destructive = st.one_of(
    st.tuples(st.just("bit_flip"), positions, st.integers(0, 7)),
    st.tuples(st.just("truncate"), positions),
    st.tuples(st.just("delete"), positions, st.integers(1, 8)),
    st.tuples(st.just("insert"), positions, st.sampled_from(BLOBS + [b"\n", b"\r\n", b"\n\n"])),
)
terminators = st.sampled_from([b"", b"\n", b"\n\n", b"\r\n", b"\n\r\n", b"\n\nhost=after\n"])


def edit(pairs: list, op: tuple) -> None:
    """Apply one structure-preserving edit in place."""
    kind = op[0]
    if kind == "no_equals":
        pairs.insert(op[1] % (len(pairs) + 1), [op[2].encode(), None])
        return
    if kind == "crlf":
        for pair in pairs:
            if pair[1] is not None:
                pair[1] += b"\r"
        return
    if not pairs:
        return
    i = op[1] % len(pairs)
    key, value = pairs[i]
    if kind == "in_value" and value is not None:
        at = op[2] % (len(value) + 1)
        pairs[i][1] = value[:at] + op[3] + value[at:]
    elif kind == "pad_value" and value is not None:
        pairs[i][1] = value + b"p" * op[2]
    elif kind == "duplicate":
        pairs.insert(i, list(pairs[i]))
    elif kind == "swap":
        j = op[2] % len(pairs)
        pairs[i], pairs[j] = pairs[j], pairs[i]


def serialise(pairs: list) -> bytes:
    return b"\n".join(k if v is None else k + b"=" + v for k, v in pairs)


def damage(data: bytes, op: tuple) -> bytes:
    """Apply one destructive edit to the bytes."""
    kind, at = op[0], op[1] % (len(data) + 1)
    if kind == "bit_flip" and data:
        at %= len(data)
        return data[:at] + bytes([data[at] ^ (1 << op[2])]) + data[at + 1 :]
    if kind == "truncate":
        return data[:at]
    if kind == "delete":
        return data[:at] + data[at + op[2] :]
    if kind == "insert":
        return data[:at] + op[2] + data[at:]
    return data


EDITS, DAMAGES = st.lists(structural, max_size=4), st.lists(destructive, max_size=3)


@st.composite
def mutated(draw, injections: bool = False, destroy: bool = True) -> bytes:
    """A valid-looking request, edited a few times, then (optionally) damaged as bytes."""
    pairs = [
        [k.encode(), v.encode()] for k, v in draw(INJECTED_LINES if injections else PLAIN_LINES)
    ]
    for op in draw(EDITS):
        edit(pairs, op)
    data = serialise(pairs) + draw(terminators)
    if destroy:
        for op in draw(DAMAGES):
            data = damage(data, op)
    return data


# Arbitrary bytes over a small alphabet that keeps the structure characters common.
STRUCTURE = b"ab=\n\r\0[]url:/%\xff\xc3host"
structured_bytes = st.binary(max_size=400).map(
    lambda raw: bytes(STRUCTURE[b % len(STRUCTURE)] for b in raw)
)
arbitrary = st.binary(max_size=2000) | structured_bytes

hostile = st.one_of(
    arbitrary,
    mutated(injections=True),
    mutated(injections=False),
    mutated(injections=True, destroy=False),
)

# -- an independent reading of the wire format (git-credential(1)), for the checks --------


def lines_before_terminator(data: bytes) -> list:
    """The raw lines (trailing CR removed) up to the first blank line."""
    found = []
    for raw in data.split(b"\n"):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line:
            break
        found.append((raw, line))
    return found


def malformed_line(raw: bytes, line: bytes) -> bool:
    if len(raw) >= protocol.MAX_LINE or b"\0" in line or b"=" not in line:
        return True
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def check_error(exc: ProtocolError) -> None:
    assert exc.exit_code == 2
    assert ERROR.fullmatch(exc.message), exc.message


def check_request(data: bytes, request: dict) -> None:
    """Every attribute traces back to one whole line (or a url= line); later lines win."""
    lines = [line.decode("utf-8") for _, line in lines_before_terminator(data)]
    whole = set(lines)
    urls = []
    for line in lines:
        if line.startswith("url="):
            urls.append(protocol.split_url(line[4:]))  # parse() accepted it, so this does too
    assert "url" not in request  # url= is expanded, never kept
    for key, value in request.items():
        assert "=" not in key and "\n" not in key and "\0" not in key
        items = value if isinstance(value, list) else [value]
        for item in items:
            assert isinstance(item, str) and "\n" not in item and "\0" not in item
        if key.endswith(protocol.LIST_SUFFIX):
            assert all(f"{key}={item}" in whole and item for item in items), (key, value)
        elif key in protocol.CREDENTIAL_KEYS:
            assert f"{key}={value}" in whole or any(u.get(key) == value for u in urls)
        else:
            last = [line.partition("=")[2] for line in lines if line.partition("=")[0] == key]
            assert last and last[-1] == value, (key, value)


def parse_checked(data: bytes) -> dict | None:
    """parse() and read() on data: the same verdict, and every check above; None if refused."""
    bad_line = any(malformed_line(raw, line) for raw, line in lines_before_terminator(data))
    try:
        request = protocol.parse(data)
    except ProtocolError as exc:
        check_error(exc)
        event("refused: " + re.sub(r"line \d+ |in its \w+", "", exc.message[26:]))
        if not bad_line:  # then only a url= value can be the reason
            assert any(line.startswith(b"url=") for _, line in lines_before_terminator(data))
        try:
            protocol.read(io.BytesIO(data))
        except ProtocolError as again:
            check_error(again)
        else:
            raise AssertionError("read() accepted what parse() refused") from None
        return None
    assert not bad_line, "a malformed line before the terminator was accepted"
    event("parsed")
    check_request(data, request)
    assert protocol.read(io.BytesIO(data)) == request
    return request


# -- properties -------------------------------------------------------------------------


@SETTINGS
@given(arbitrary)
@example(b"\xff=\n")
@example(b"a" * 70000)
@example(b"host=" + b"a" * 65529 + b"\n")  # 65535 bytes with its newline: the last legal line
@example(b"host=" + b"a" * 65530 + b"\n")
def test_arbitrary_bytes_give_a_request_of_whole_lines_or_protocol_error(data):
    """10,000 arbitrary byte strings (--full): only ProtocolError, else whole-line attributes."""
    parse_checked(data)


@SETTINGS
@given(mutated())
def test_mutated_requests_give_a_request_of_whole_lines_or_protocol_error(data):
    """10,000 valid requests mutated (NUL, CR, bad UTF-8, >65535-byte lines, `=`-less lines,
    duplicate keys, bit flips, truncation, odd url=): only ProtocolError, never an echo, and
    a malformed line before the terminator is always refused."""
    parse_checked(data)


@SETTINGS
@given(mutated(injections=True, destroy=False))
@example(b"host=a\nwwwauth[]=Basic\rhost=" + MARK.encode() + b"\n")
@example("wwwauth[]=x\u2028host=ZQX9\ncapability[]=\x85password=ZQX9".encode())
def test_text_inside_a_list_value_never_becomes_an_attribute(data):
    """10,000 requests whose wwwauth[]/capability[]/state[] values carry `host=`-like text
    behind CR, VT, FF, FS/GS/RS, NEL, U+2028/9, %0a, `\\n`: no key and no non-list value
    ever holds that text."""
    request = parse_checked(data)
    if request is None:
        return
    planted = sum(MARK in item for k in LIST_KEYS for item in request.get(k, []))
    event(f"planted text kept inside list values: {min(planted, 3)}")
    for key, value in request.items():
        assert MARK not in key
        if not key.endswith(protocol.LIST_SUFFIX):
            assert MARK not in value, (key, value)


@SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from(SCALAR_KEYS[:7] + ["url", "wwwauth[]"]), odd_urls), max_size=6
    )
)
@example([("url", "https://u%0a@h/")])
@example([("host", "kept?"), ("url", "https://h/p?host=evil#x"), ("path", "after")])
def test_odd_urls_expand_to_their_parts_or_protocol_error(pairs):
    """10,000 requests mixing url= values with odd parts (no scheme, encoded newline/NUL,
    bad %-escapes, userinfo, query, fragment, IPv6) with other keys: only ProtocolError;
    url= replaces the credential keys before it and later lines override it."""
    data = "\n".join(f"{k}={v}" for k, v in pairs).encode()
    request = parse_checked(data)
    if request is None:
        return
    pairs = [(k, v[:-1] if v.endswith("\r") else v) for k, v in pairs]  # git drops one CR
    url_at = [i for i, (k, _) in enumerate(pairs) if k == "url"]
    if url_at:
        last = url_at[-1]
        parts = protocol.split_url(pairs[last][1])
        for name in protocol.CREDENTIAL_KEYS:
            later = [v for k, v in pairs[last + 1 :] if k == name]
            assert request.get(name) == (later[-1] if later else parts.get(name)), name


# What ~/.rexec holds before each case (the same every time, so a failure replays): an
# active login as the Rexec CLI writes it (config.json, no account of ours) and records
# for the hosts the generated url= lines name (credentials.json).
SEEDED_CONFIG = json.dumps(
    {
        "host": "https://rexec.pipeops.io",
        "token": "rexec_" + "a1" * 20,
        "username": "me",
        "email": "",
        "tier": "",
    },
    indent=2,
).encode()
SEEDED = json.dumps(
    {
        "version": 1,
        "accounts": [],
        "credentials": [
            {"protocol": "https", "host": "example.com", "username": "u", "password": "p\u2028q"},
            {
                "protocol": "https",
                "host": "example.com:8443",
                "username": "u",
                "password": "p",
                "path": "repo.git",
            },
            {"protocol": "http", "host": "127.0.0.1:9876", "username": "", "password": ""},
            {
                "protocol": "https",
                "host": "host.tld",
                "username": "u",
                "password": "p\x85",
                "password_expiry_utc": 4102444800,
                "oauth_refresh_token": "r",
            },
        ],
    },
    indent=2,
).encode()


@SETTINGS
@given(hostile, st.sampled_from(["get", "store", "erase"]))
@example(b"protocol=https\nhost=a.tld\nusername=u\npassword=p\n", "store")
@example(b"url=https://host.tld\n", "get")
@example(b"path=\n", "get")
def test_credential_command_answers_any_request_with_0_or_2(home, data, operation):
    """10,000 hostile requests through `rexec-credential get|store|erase` in-process, each
    against the same seeded files: exit 0, or 2 exactly when the request is malformed, with
    one fixed stderr line and no output; stdout only ever carries protocol lines that parse
    back; both files afterwards are whole JSON, 0600 (and untouched by get or a refusal)."""
    directory = home / ".rexec"
    directory.mkdir(mode=0o700, exist_ok=True)
    seeded = {directory / "config.json": SEEDED_CONFIG, directory / "credentials.json": SEEDED}
    for path, raw in seeded.items():
        path.write_bytes(raw)
        path.chmod(0o600)
    try:
        protocol.read(io.BytesIO(data))
        expected = 0
    except ProtocolError:
        expected = 2
    result = call("credential", [operation], stdin=data)
    event(f"{operation}: exit {result.code}" + (", answered" if result.out else ""))
    assert result.code == expected, result
    if expected:
        assert result.out == ""
        assert ERROR.fullmatch(result.err.rstrip("\n")) and result.err.count("\n") == 1
    else:
        assert result.err == ""
        # git splits at "\n" only (str.splitlines would also split at \x85, \u2028...)
        *lines, last = result.out.split("\n")
        assert last == ""
        for line in lines:
            key, sep, _ = line.partition("=")
            assert sep and key in protocol.CREDENTIAL_KEYS, line
        answer = protocol.parse(result.out.encode())
        assert len(answer) == len(lines)  # each line one attribute, as git will read them
        if operation != "get":
            assert result.out == ""
    for path, raw in seeded.items():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert isinstance(json.loads(path.read_bytes()), dict)
        if expected or operation == "get":
            assert path.read_bytes() == raw
