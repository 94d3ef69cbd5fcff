"""TLS: verification is always on; REQUESTS_CA_BUNDLE names a private CA (docs/contract.md §4)."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rexec_credential.api import Client
from rexec_credential.errors import ServiceError

# Debian's openssl makes the certificate; .ci/system-deps installs it, so in CI it must run.
if shutil.which("openssl") is None and not os.environ.get("CI"):
    pytest.skip("openssl is not installed", allow_module_level=True)


class Profile(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"user": {"username": "tls-user", "email": "t@example.com"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def https_url(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), Profile)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", str(cert)
    server.shutdown()
    server.server_close()


def test_unknown_certificate_is_refused(https_url):
    url, _ = https_url
    with pytest.raises(ServiceError, match="cannot verify the TLS certificate"):
        Client(url, {}, sleep=lambda s: None).profile("x.y.z")


def test_requests_ca_bundle_trusts_a_private_ca(https_url):
    url, cert = https_url
    client = Client(url, {"REQUESTS_CA_BUNDLE": cert}, sleep=lambda s: None)
    assert client.profile("x.y.z")["username"] == "tls-user"


def test_a_server_that_does_not_speak_tls_is_named_as_such(standin):
    """https:// at a plain-http port: not a certificate problem; say what happened."""
    url = "https://" + standin.url.split("//")[1]
    with pytest.raises(ServiceError) as info:
        Client(url, {}, sleep=lambda s: None).profile("x.y.z")
    message = info.value.message
    assert "did not answer with TLS" in message and "port or scheme" in message
    assert "certificate" not in message and "REQUESTS_CA_BUNDLE" not in message
    assert "\n" not in message


def test_a_host_without_a_scheme_is_https(standin):
    """--host 127.0.0.1:PORT means https://127.0.0.1:PORT: the plain-http stand-in is told so."""
    from conftest import run_bin

    result = run_bin(
        "rexec-login",
        "--token",
        "-",
        "--host",
        standin.url.split("//")[1],
        stdin=standin.mint_api_token("johndoe"),
    )
    assert result.code == 3 and "did not answer with TLS" in result.err
    assert f"https://{standin.url.split('//')[1]}" in result.err
