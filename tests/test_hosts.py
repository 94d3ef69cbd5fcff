"""Host URL normalisation and the plain-http refusal (docs/contract.md §4)."""

from __future__ import annotations

import pytest

from rexec_credential import hosts
from rexec_credential.errors import UsageError


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://rexec.pipeops.io", "https://rexec.pipeops.io"),
        ("HTTPS://Rexec.PipeOps.IO/", "https://rexec.pipeops.io"),
        ("https://rexec.pipeops.io:443", "https://rexec.pipeops.io"),
        ("http://127.0.0.1:80/", "http://127.0.0.1"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://example.com:8443/rexec/", "https://example.com:8443/rexec"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("  rexec.example.com:0443 \n", "https://rexec.example.com"),
        ("https://a-b.example/x/~y;z=1/", "https://a-b.example/x/~y;z=1"),
        ("https://" + "a" * 63 + ".example", "https://" + "a" * 63 + ".example"),
    ],
)
def test_normalise(url, expected):
    assert hosts.normalise(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "https://",
        "https://user:pw@host",
        "https://h:99999",
        "https://h?x=1",
        "https://bad host",
        "https://h:port",
    ],
)
def test_normalise_refuses_what_is_not_a_host_url(url):
    with pytest.raises(UsageError) as info:
        hosts.normalise(url)
    assert info.value.exit_code == 2


TOKEN = "rexec_" + "Ab3" * 20


@pytest.mark.parametrize(
    "url, fault",
    [
        ("https://h:\u00b2", "non-ASCII"),
        ("https://h:\u0664\u0664\u0663", "non-ASCII"),
        ("https://h:" + "9" * 5000, "port"),
        ("https://h:0", "port"),
        ("https://h:", "port"),
        ("https://a..example", "empty labels"),
        ("https://example.", "empty labels"),
        ("https://" + "a" * 64, "63"),
        ("https://" + "a." * 127 + "example", "253"),
        ("https://-a.example", "hyphens"),
        ("https://a_b.example", "hyphens"),
        ("https://[::1", "brackets"),
        ("https://[::1]x", "brackets"),
        ("https://]h", "brackets"),
        ("https://[zz]", "IPv6"),
        ("https://h/a\nb", "control"),
        ("https://h/a\x00b", "control"),
        ("https://h/a\tb", "control"),
        ("https://h/a\x1b[31m", "control"),
        ("https://h/\u202e", "control"),
        ('https://h/a"b', "path"),
        ("https://h/a<b>", "path"),
        ("", "empty"),
        (TOKEN, "token"),
        (f"https://{TOKEN}.example", "token"),
        (f"https://h/{TOKEN}", "token"),
        ("https://eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "token"),
    ],
)
def test_the_one_host_parser_names_the_fault_never_the_value(url, fault):
    with pytest.raises(hosts.InvalidHost) as info:
        hosts.normalise(url, "--host")
    message = info.value.message
    assert message.startswith("invalid --host: ") and fault in message, message
    assert url.strip() not in message or not url.strip()
    assert "\n" not in message and info.value.exit_code == 2


def test_git_parts_keep_a_non_default_port():
    assert hosts.git_parts("http://127.0.0.1:8080") == ("http", "127.0.0.1:8080")
    assert hosts.git_parts("https://rexec.pipeops.io") == ("https", "rexec.pipeops.io")


@pytest.mark.parametrize(
    "url, loopback",
    [
        ("http://127.0.0.1:5", True),
        ("http://localhost", True),
        ("http://[::1]:1", True),
        ("http://127.9.9.9", True),
        ("http://10.0.0.1", False),
        ("http://example.com", False),
    ],
)
def test_is_loopback(url, loopback):
    assert hosts.is_loopback(url) is loopback


def test_plain_http_refused_for_remote_hosts_unless_allowed():
    """`insecure_allowed` is what precedence.insecure_http_allowed reads from the environment
    (REXEC_ALLOW_INSECURE_HTTP=1: tests/test_precedence.py)."""
    with pytest.raises(UsageError, match="REXEC_ALLOW_INSECURE_HTTP"):
        hosts.require_secure("http://example.com", False)
    hosts.require_secure("http://example.com", True)
    hosts.require_secure("http://127.0.0.1:9", False)
    hosts.require_secure("https://example.com", False)


# -- what counts as loopback: literal addresses and `localhost` only -------------------------


@pytest.mark.parametrize(
    "url, loopback",
    [
        ("http://127.0.0.1.evil.example:8080", False),  # a name, whatever it resolves to
        ("http://127.evil.example", False),
        ("http://127.0.0.1.nip.io", False),
        ("http://localhost.evil.example", False),
        ("http://127.0.0", False),
        ("http://127.0.0.256", False),
        ("http://127.000.0.1", False),  # not canonical: a resolver may read it as a name
        ("http://[::ffff:127.0.0.1]", False),
        ("http://[::1]", True),
        ("http://127.255.255.254:1", True),
        ("http://localhost:8080", True),
    ],
)
def test_is_loopback_only_for_literal_addresses_and_localhost(url, loopback):
    assert hosts.is_loopback(url) is loopback


def test_plain_http_to_a_name_starting_with_127_is_refused():
    with pytest.raises(UsageError, match="refusing to send a token over plain http"):
        hosts.require_secure("http://127.0.0.1.evil.example:8080", False)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("rexec.example.com", "https://rexec.example.com"),
        ("Rexec.Example.com:8443", "https://rexec.example.com:8443"),
        ("127.0.0.1:9000", "https://127.0.0.1:9000"),
        ("localhost", "https://localhost"),
    ],
)
def test_a_host_without_a_scheme_means_https(given, expected):
    assert hosts.normalise(given) == expected
