"""Host URL normalisation and the plain-http refusal (SPEC §3, §4)."""

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
    ],
)
def test_normalise(url, expected):
    assert hosts.normalise(url) == expected


@pytest.mark.parametrize(
    "url",
    ["rexec.pipeops.io", "ftp://x", "https://", "https://user:pw@host", "https://h:99999",
     "https://h?x=1", "https://bad host", "https://h:port"],
)
def test_normalise_refuses_what_is_not_a_host_url(url):
    with pytest.raises(UsageError) as info:
        hosts.normalise(url)
    assert info.value.exit_code == 2


def test_git_parts_keep_a_non_default_port():
    assert hosts.git_parts("http://127.0.0.1:8080") == ("http", "127.0.0.1:8080")
    assert hosts.git_parts("https://rexec.pipeops.io") == ("https", "rexec.pipeops.io")


@pytest.mark.parametrize(
    "url, loopback",
    [("http://127.0.0.1:5", True), ("http://localhost", True), ("http://[::1]:1", True),
     ("http://127.9.9.9", True), ("http://10.0.0.1", False), ("http://example.com", False)],
)
def test_is_loopback(url, loopback):
    assert hosts.is_loopback(url) is loopback


def test_plain_http_refused_for_remote_hosts_unless_allowed():
    with pytest.raises(UsageError, match="REXEC_ALLOW_INSECURE_HTTP"):
        hosts.require_secure("http://example.com", {})
    hosts.require_secure("http://example.com", {"REXEC_ALLOW_INSECURE_HTTP": "1"})
    hosts.require_secure("http://127.0.0.1:9", {})
    hosts.require_secure("https://example.com", {})
