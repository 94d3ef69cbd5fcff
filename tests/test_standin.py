"""The Rexec stand-in service, exercised over real HTTP on loopback with urllib."""

from __future__ import annotations

import base64
import html
import http.client
import json
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from freezegun import freeze_time
from helpers import eventually

from rexec_credential.testing import StandIn, User, scripted_browser
from rexec_credential.testing.scripted_browser import ScriptedBrowser

ROOT = Path(__file__).resolve().parent.parent
API_TOKEN_RE = re.compile(r"^rexec_[0-9a-f]{64}$")
JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
CALLBACK = "http://127.0.0.1:9876/callback/Zm9vYmFyYmF6cXV4"
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) StandInTest/1.0"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# No proxies from the environment, no redirect following.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def call(url, token=None, method="GET", data=None, headers=None, timeout=5):
    """(status, headers, body bytes) of one request; HTTP errors are answers too."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    body = None
    if data is not None:
        body = urllib.parse.urlencode(data).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        method = "POST"
    req = urllib.request.Request(url, data=body, headers=hdrs, method=method)
    try:
        with OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def call_json(url, token=None, headers=None):
    status, hdrs, body = call(url, token, headers=headers)
    assert hdrs["Content-Type"] == "application/json"
    return status, json.loads(body)


def jwt_part(token, index):
    segment = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


@pytest.fixture
def svc():
    with StandIn(port=0, jwt_lifetime=3600) as service:
        yield service


# -- basics ------------------------------------------------------------------------------------


def test_binds_loopback_only(svc):
    host, port = svc.address
    assert host == "127.0.0.1"
    assert svc.url == f"http://127.0.0.1:{port}"
    assert svc.port == port
    # Reachable on loopback ...
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    # ... but not on another local address, when the machine has one.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent
        other = probe.getsockname()[0]
    except OSError:
        other = None
    finally:
        probe.close()
    if other and not other.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((other, port), timeout=2).close()


def test_context_manager_closes_the_socket():
    with StandIn() as service:
        port = service.port
        assert call(service.url + "/settings")[0] == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_default_users():
    service = StandIn()
    john, jane = service.users["johndoe"], service.users["janedoe"]
    assert isinstance(john, User)
    assert (john.email, john.name, john.tier, john.is_admin, john.password) == (
        "johndoe@example.com",
        "John Doe",
        "pro",
        True,
        "hunter2",
    )
    assert (jane.email, jane.name, jane.tier, jane.is_admin, jane.password) == (
        "jane@example.com",
        "Jane Doe",
        "free",
        False,
        "correct-horse",
    )


def test_add_user(svc):
    user = svc.add_user("alice", "alice@example.com", tier="pro", password="s3cret")
    assert svc.users["alice"] is user and user.name == "alice" and not user.is_admin
    status, body = call_json(svc.url + "/api/tokens/validate", svc.mint_api_token("alice"))
    assert status == 200 and body["username"] == "alice" and body["tier"] == "pro"
    with pytest.raises(ValueError):
        svc.add_user("alice", "other@example.com")
    with pytest.raises(KeyError):
        svc.mint_api_token("nobody")


def state_dump(root):
    """repr of everything reachable from root through the stand-in's own objects."""
    parts, seen, todo = [], set(), [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo.extend(obj)
        elif type(obj).__module__.startswith("rexec_credential.testing") and hasattr(
            obj, "__dict__"
        ):
            todo.extend(vars(obj).values())
        else:
            parts.append(repr(obj))
    return "\n".join(parts)


def test_api_token_format_and_only_hash_stored(svc):
    token = svc.mint_api_token("johndoe")
    jwt = svc.mint_jwt("johndoe")
    assert API_TOKEN_RE.match(token) and len(token) == 70
    dumped = state_dump(svc)
    assert svc.users["johndoe"].id in dumped  # the walk does reach the stored state
    assert token not in dumped
    assert token[len("rexec_") :] not in dumped
    assert jwt not in dumped and jwt.split(".")[2] not in dumped


def test_jwt_claims(svc):
    before = int(time.time())
    token = svc.mint_jwt("johndoe")
    assert JWT_RE.match(token) and token.startswith("eyJ")
    assert jwt_part(token, 0) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt_part(token, 1)
    user = svc.users["johndoe"]
    assert claims["user_id"] == user.id
    assert claims["email"] == "johndoe@example.com"
    assert claims["username"] == "johndoe"
    assert claims["tier"] == "pro"
    assert claims["guest"] is False
    assert claims["subscription_active"] is True
    assert claims["exp"] - claims["iat"] == 3600 and claims["iat"] >= before
    assert re.fullmatch(r"[0-9a-f]{32}", claims["sid"])
    assert jwt_part(svc.mint_jwt("janedoe"), 1)["subscription_active"] is False
    assert jwt_part(svc.mint_jwt("johndoe", lifetime=60), 1)["exp"] - claims["iat"] in (60, 61)
    assert jwt_part(svc.mint_jwt("johndoe", exp=2000000000), 1)["exp"] == 2000000000
    assert jwt_part(svc.mint_jwt("johndoe"), 1)["sid"] != claims["sid"]


# -- the API -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["api", "jwt"])
def test_profile_with_both_token_kinds(svc, kind):
    token = svc.mint_api_token("johndoe") if kind == "api" else svc.mint_jwt("johndoe")
    status, body = call_json(svc.url + "/api/profile", token)
    assert status == 200
    assert set(body) == {"user", "stats", "limits"}
    user = body["user"]
    assert user == {
        "id": svc.users["johndoe"].id,
        "username": "johndoe",
        "email": "johndoe@example.com",
        "name": "John Doe",
        "tier": "pro",
        "is_admin": True,
        "created_at": svc.users["johndoe"].created_at,
    }
    assert isinstance(body["stats"], dict) and isinstance(body["limits"], dict)
    (entry,) = svc.requests_to("/api/profile")
    assert entry["auth"] == kind and entry["user"] == "johndoe" and entry["status"] == 200


def test_legacy_profile_shape(svc):
    svc.legacy_profile = True
    status, body = call_json(svc.url + "/api/profile", svc.mint_jwt("janedoe"))
    assert status == 200
    assert body["username"] == "janedoe" and body["email"] == "jane@example.com"
    assert body["is_admin"] is False and body["tier"] == "free"
    assert "user" not in body


def test_validate_api_token(svc):
    status, body = call_json(svc.url + "/api/tokens/validate", svc.mint_api_token("janedoe"))
    assert status == 200
    assert body == {
        "valid": True,
        "user_id": svc.users["janedoe"].id,
        "username": "janedoe",
        "email": "jane@example.com",
        "tier": "free",
        "scopes": ["read", "write"],
    }


def test_validate_rejects_jwt(svc):
    status, body = call_json(svc.url + "/api/tokens/validate", svc.mint_jwt("johndoe"))
    assert (status, body) == (401, {"error": "invalid token"})


@pytest.mark.parametrize("path", ["/api/profile", "/api/tokens/validate"])
@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, "authorization header required"),
        ("", "authorization header required"),
        ("Basic dXNlcjpwYXNz", "invalid authorization format"),
        ("Bearer", "invalid authorization format"),
        ("Bearer ", "invalid authorization format"),
        ("Token rexec_abc", "invalid authorization format"),
        ("Bearer a b", "invalid authorization format"),
    ],
)
def test_authorization_header_errors(svc, path, header, error):
    headers = {} if header is None else {"Authorization": header}
    assert call_json(svc.url + path, headers=headers) == (401, {"error": error})


def test_unknown_tokens(svc):
    unknown = "rexec_" + "0" * 64
    assert call_json(svc.url + "/api/profile", unknown) == (
        401,
        {"error": "Invalid or expired token"},
    )
    assert call_json(svc.url + "/api/tokens/validate", unknown) == (401, {"error": "invalid token"})
    assert call_json(svc.url + "/api/profile", "hello") == (401, {"error": "unauthorized"})
    assert call_json(svc.url + "/api/tokens/validate", "hello") == (401, {"error": "invalid token"})
    # JWT-shaped garbage
    assert call_json(svc.url + "/api/profile", "eyJhbGciOi.eyJ.xyz") == (
        401,
        {"error": "Invalid or expired token"},
    )


def test_expired_jwt(svc):
    token = svc.mint_jwt("johndoe", exp=time.time() - 10)
    assert call_json(svc.url + "/api/profile", token) == (401, {"error": "token is expired"})


def test_bad_signature(svc):
    token = svc.mint_jwt("johndoe")
    head, payload, _sig = token.split(".")
    with StandIn() as other:  # same claims shape, different key
        foreign = other.mint_jwt("johndoe")
    forged_payload = (
        base64.urlsafe_b64encode(json.dumps({**jwt_part(token, 1), "tier": "enterprise"}).encode())
        .rstrip(b"=")
        .decode()
    )
    for bad in (foreign, f"{head}.{forged_payload}.{_sig}", f"{head}.{payload}.AAAA"):
        assert call_json(svc.url + "/api/profile", bad) == (
            401,
            {"error": "token signature is invalid"},
        )


def test_revocation(svc):
    api = svc.mint_api_token("johndoe")
    jwt = svc.mint_jwt("johndoe")
    other_jwt = svc.mint_jwt("johndoe")
    svc.revoke(api)
    svc.revoke(jwt)
    # The service looks tokens up WHERE revoked_at IS NULL: revoked reads as unknown.
    assert call_json(svc.url + "/api/tokens/validate", api) == (401, {"error": "invalid token"})
    assert call_json(svc.url + "/api/profile", api) == (401, {"error": "Invalid or expired token"})
    assert call_json(svc.url + "/api/profile", jwt) == (401, {"error": "session_revoked"})
    assert call_json(svc.url + "/api/sessions", jwt) == (401, {"error": "session_revoked"})
    assert call_json(svc.url + "/api/profile", other_jwt)[0] == 200
    (record,) = [s for s in svc.sessions("johndoe") if s["id"] == jwt_part(jwt, 1)["sid"]]
    assert record["revoked_reason"] == "revoked by test" and ISO_RE.match(record["revoked_at"])
    with pytest.raises(KeyError):
        svc.revoke("rexec_" + "1" * 64)
    with pytest.raises(ValueError):
        svc.revoke("not-a-token")
    with StandIn() as other:  # a JWT whose session this service never opened
        with pytest.raises(KeyError):
            svc.revoke(other.mint_jwt("johndoe"))


def test_expired_api_token(svc):
    expired = svc.mint_api_token("johndoe", expires_at=time.time() - 1)
    fresh = svc.mint_api_token("johndoe", expires_at=time.time() + 3600)
    assert call_json(svc.url + "/api/tokens/validate", expired) == (401, {"error": "token expired"})
    assert call_json(svc.url + "/api/profile", expired) == (
        401,
        {"error": "Invalid or expired token"},
    )
    assert call_json(svc.url + "/api/tokens/validate", fresh)[0] == 200


def test_not_found_and_methods(svc):
    assert call_json(svc.url + "/api/nope") == (404, {"error": "not found"})
    assert call_json(svc.url + "/nope") == (404, {"error": "not found"})
    status, hdrs, _ = call(svc.url + "/api/profile", svc.mint_jwt("johndoe"), method="POST")
    assert status == 405


def test_settings_page(svc):
    status, hdrs, body = call(svc.url + "/settings")
    assert status == 200 and hdrs["Content-Type"].startswith("text/html")
    assert "API Tokens" in body.decode()


# -- sessions ----------------------------------------------------------------------------------


def sid_of(jwt):
    return jwt_part(jwt, 1)["sid"]


def call_status_json(url, token=None, method="GET", headers=None):
    status, hdrs, body = call(url, token, method=method, headers=headers)
    assert hdrs["Content-Type"] == "application/json"
    return status, json.loads(body)


SESSION_FIELDS = {
    "id",
    "created_at",
    "last_seen_at",
    "ip_address",
    "user_agent",
    "revoked_at",
    "revoked_reason",
    "is_current",
}


def test_sessions_list_fields_and_is_current(svc):
    first = svc.mint_jwt("johndoe")
    second = svc.mint_jwt("johndoe")
    jane = svc.mint_jwt("janedoe")
    status, body = call_json(
        svc.url + "/api/sessions", first, headers={"User-Agent": "rexec-cli/9.9"}
    )
    assert status == 200 and set(body) == {"sessions"}
    sessions = body["sessions"]
    assert [s["id"] for s in sessions] == [sid_of(first), sid_of(second)]
    for record in sessions:
        assert set(record) == SESSION_FIELDS
        assert ISO_RE.match(record["created_at"]) and ISO_RE.match(record["last_seen_at"])
        assert record["ip_address"] == "127.0.0.1"
        assert record["revoked_at"] is None and record["revoked_reason"] is None
    by_id = {s["id"]: s for s in sessions}
    assert by_id[sid_of(first)]["is_current"] is True
    assert by_id[sid_of(second)]["is_current"] is False
    # the listing request used the first session: its User-Agent is the last seen one
    assert by_id[sid_of(first)]["user_agent"] == "rexec-cli/9.9"
    assert by_id[sid_of(second)]["user_agent"] in ("", "stand-in")
    assert sid_of(jane) not in by_id

    status, body = call_json(svc.url + "/api/sessions", svc.mint_api_token("johndoe"))
    assert status == 200
    assert [s["id"] for s in body["sessions"]] == [sid_of(first), sid_of(second)]
    assert not any(s["is_current"] for s in body["sessions"])

    status, body = call_json(svc.url + "/api/sessions", jane)
    assert status == 200 and [s["id"] for s in body["sessions"]] == [sid_of(jane)]
    assert body["sessions"][0]["is_current"] is True

    entries = svc.requests_to("/api/sessions")
    assert [(e["method"], e["status"], e["auth"], e["user"]) for e in entries] == [
        ("GET", 200, "jwt", "johndoe"),
        ("GET", 200, "api", "johndoe"),
        ("GET", 200, "jwt", "janedoe"),
    ]


def test_sessions_helper_matches_the_api(svc):
    jwt = svc.mint_jwt("johndoe")
    listed = call_json(svc.url + "/api/sessions", jwt)[1]["sessions"]
    helper = svc.sessions("johndoe")
    assert helper == [{**s, "is_current": False} for s in listed]
    assert svc.sessions("janedoe") == []
    with pytest.raises(KeyError):
        svc.sessions("nobody")


def test_delete_own_session_with_its_jwt(svc):
    jwt = svc.mint_jwt("johndoe")
    other = svc.mint_jwt("johndoe")
    url = f"{svc.url}/api/sessions/{sid_of(jwt)}"
    assert call_status_json(url, jwt, method="DELETE") == (200, {"revoked": True})
    assert call_json(svc.url + "/api/profile", jwt) == (401, {"error": "session_revoked"})
    assert call_json(svc.url + "/api/sessions", jwt) == (401, {"error": "session_revoked"})
    assert call_status_json(url, jwt, method="DELETE") == (401, {"error": "session_revoked"})
    assert call_json(svc.url + "/api/profile", other)[0] == 200
    (record,) = [s for s in svc.sessions("johndoe") if s["id"] == sid_of(jwt)]
    assert ISO_RE.match(record["revoked_at"]) and record["revoked_reason"] == "logout"
    # deleting it again with another token of the same user: still 200, first reason kept
    assert call_status_json(url, svc.mint_api_token("johndoe"), method="DELETE") == (
        200,
        {"revoked": True},
    )
    assert call_status_json(url, other, method="DELETE") == (200, {"revoked": True})
    (again,) = [s for s in svc.sessions("johndoe") if s["id"] == sid_of(jwt)]
    assert again == record
    (entry, *_rest) = svc.requests_to(f"/api/sessions/{sid_of(jwt)}")
    assert (entry["method"], entry["status"], entry["auth"], entry["user"]) == (
        "DELETE",
        200,
        "jwt",
        "johndoe",
    )


def test_delete_session_with_an_api_token(svc):
    jwt = svc.mint_jwt("janedoe")
    keep = svc.mint_jwt("janedoe")
    api = svc.mint_api_token("janedoe")
    status, body = call_status_json(f"{svc.url}/api/sessions/{sid_of(jwt)}", api, method="DELETE")
    assert (status, body) == (200, {"revoked": True})
    assert call_json(svc.url + "/api/profile", jwt) == (401, {"error": "session_revoked"})
    assert call_json(svc.url + "/api/profile", keep)[0] == 200
    assert call_json(svc.url + "/api/profile", api)[0] == 200
    listed = {s["id"]: s for s in call_json(svc.url + "/api/sessions", api)[1]["sessions"]}
    assert listed[sid_of(jwt)]["revoked_reason"]
    assert listed[sid_of(keep)]["revoked_at"] is None


def test_delete_unknown_or_other_users_session_is_404(svc):
    john = svc.mint_jwt("johndoe")
    jane = svc.mint_jwt("janedoe")
    not_found = (404, {"error": "session not found"})
    for token in (john, svc.mint_api_token("johndoe")):
        assert (
            call_status_json(f"{svc.url}/api/sessions/{'0' * 32}", token, method="DELETE")
            == not_found
        )
        assert (
            call_status_json(f"{svc.url}/api/sessions/{sid_of(jane)}", token, method="DELETE")
            == not_found
        )
    assert call_json(svc.url + "/api/profile", jane)[0] == 200
    assert svc.sessions("janedoe")[0]["revoked_at"] is None


def test_sessions_methods_and_auth_errors(svc):
    jwt = svc.mint_jwt("johndoe")
    status, hdrs, _ = call(svc.url + "/api/sessions", jwt, method="POST")
    assert status == 405 and hdrs["Allow"] == "GET, HEAD"
    status, hdrs, _ = call(svc.url + "/api/sessions", jwt, method="DELETE")
    assert status == 405 and hdrs["Allow"] == "GET, HEAD"
    for method in ("GET", "POST", "PUT"):
        status, hdrs, _ = call(f"{svc.url}/api/sessions/{sid_of(jwt)}", jwt, method=method)
        assert status == 405 and hdrs["Allow"] == "DELETE"
    assert svc.sessions("johndoe")[0]["revoked_at"] is None
    assert call_json(svc.url + "/api/sessions") == (401, {"error": "authorization header required"})
    assert call_json(svc.url + "/api/sessions", "rexec_" + "0" * 64) == (
        401,
        {"error": "Invalid or expired token"},
    )
    assert call_status_json(f"{svc.url}/api/sessions/{sid_of(jwt)}", method="DELETE") == (
        401,
        {"error": "authorization header required"},
    )
    assert call_json(svc.url + "/api/sessions", svc.mint_jwt("johndoe", exp=time.time() - 5)) == (
        401,
        {"error": "token is expired"},
    )


def test_revoked_session_is_refused_anywhere_under_api(svc):
    jwt = svc.mint_jwt("johndoe")
    svc.revoke(jwt)
    revoked = (401, {"error": "session_revoked"})
    for path in ("/api/profile", "/api/sessions", "/api/tokens/validate", "/api/nope"):
        assert call_json(svc.url + path, jwt) == revoked, path
    assert (
        call_status_json(f"{svc.url}/api/sessions/{sid_of(jwt)}", jwt, method="DELETE") == revoked
    )


def test_browser_login_session_has_the_browsers_user_agent(svc):
    token = login_via_form(svc, headers={"User-Agent": BROWSER_UA})
    (record,) = svc.sessions("johndoe")
    assert record["id"] == sid_of(token)
    assert record["user_agent"] == BROWSER_UA and record["ip_address"] == "127.0.0.1"
    assert record["revoked_at"] is None


# -- screen lock -------------------------------------------------------------------------------


def test_screen_lock(svc):
    old = svc.mint_jwt("johndoe")
    api = svc.mint_api_token("johndoe")
    jane = svc.mint_jwt("janedoe")
    svc.lock_screen("johndoe")
    new = svc.mint_jwt("johndoe")  # most likely in the same second as the lock
    locked = (423, {"error": "session_locked"})
    assert call_json(svc.url + "/api/profile", old) == locked
    assert call_json(svc.url + "/api/sessions", old) == locked
    assert call_status_json(f"{svc.url}/api/sessions/{sid_of(new)}", old, method="DELETE") == locked
    assert call_json(svc.url + "/api/profile", new)[0] == 200
    assert call_json(svc.url + "/api/sessions", new)[0] == 200
    assert call_json(svc.url + "/api/profile", api)[0] == 200
    assert call_json(svc.url + "/api/tokens/validate", api)[0] == 200
    assert call_json(svc.url + "/api/profile", jane)[0] == 200
    assert svc.requests_to("/api/profile")[0]["status"] == 423
    svc.unlock_screen("johndoe")
    assert call_json(svc.url + "/api/profile", old)[0] == 200
    assert call_json(svc.url + "/api/profile", new)[0] == 200
    # revocation wins over the lock
    svc.lock_screen("johndoe")
    svc.revoke(old)
    assert call_json(svc.url + "/api/profile", old) == (401, {"error": "session_revoked"})
    assert call_json(svc.url + "/api/profile", new) == locked
    svc.unlock_screen("johndoe")
    assert call_json(svc.url + "/api/profile", new)[0] == 200
    with pytest.raises(KeyError):
        svc.lock_screen("nobody")


# -- faults ------------------------------------------------------------------------------------


def test_fail_next_counts_down(svc):
    token = svc.mint_jwt("johndoe")
    svc.fail_next(2, status=502)
    assert call_json(svc.url + "/api/profile", token) == (502, {"error": "bad gateway"})
    status, body = call_json(svc.url + "/api/tokens/validate", token)
    assert status == 502 and "error" in body
    assert call_json(svc.url + "/api/profile", token)[0] == 200
    svc.fail_next(1)
    assert call_json(svc.url + "/api/profile", token) == (503, {"error": "service unavailable"})
    assert [e["fault"] for e in svc.log] == ["fail", "fail", None, "fail"]
    assert [e["status"] for e in svc.log] == [502, 502, 200, 503]


def test_delay_next(svc):
    token = svc.mint_jwt("johndoe")
    svc.delay_next(1, 0.3)
    start = time.monotonic()
    assert call(svc.url + "/api/profile", token)[0] == 200
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    assert call(svc.url + "/api/profile", token)[0] == 200
    assert time.monotonic() - start < 0.3
    assert [e["fault"] for e in svc.log] == ["delay", None]
    svc.delay_next(1, 5)
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        call(svc.url + "/api/profile", token, timeout=0.2)


def test_malformed_next(svc):
    token = svc.mint_jwt("johndoe")
    svc.malformed_next(1)
    status, _hdrs, body = call(svc.url + "/api/profile", token)
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)
    assert call_json(svc.url + "/api/profile", token)[0] == 200


def test_drop_next(svc):
    token = svc.mint_api_token("johndoe")
    svc.drop_next(2)
    for _ in range(2):
        with pytest.raises(
            (http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)
        ):
            call(svc.url + "/api/tokens/validate", token)
    assert call_json(svc.url + "/api/tokens/validate", token)[0] == 200
    assert [(e["fault"], e["status"]) for e in svc.log] == [
        ("drop", None),
        ("drop", None),
        (None, 200),
    ]


def test_faults_queue_in_order_and_clear(svc):
    token = svc.mint_jwt("johndoe")
    svc.fail_next(1, status=500)
    svc.malformed_next(1)
    assert call(svc.url + "/api/profile", token)[0] == 500
    status, _, body = call(svc.url + "/api/profile", token)
    assert status == 200 and not body.startswith(b"{")
    assert call_json(svc.url + "/api/profile", token)[0] == 200
    svc.fail_next(3)
    svc.drop_next(1)
    svc.delay_next(2, 1)
    svc.clear_faults()
    assert call_json(svc.url + "/api/profile", token)[0] == 200
    with pytest.raises(ValueError):
        svc.fail_next(-1)


def test_faults_spare_web_pages(svc):
    svc.fail_next(1)
    assert call(svc.url + "/cli-login?callback=" + CALLBACK)[0] == 200
    assert call(svc.url + "/settings")[0] == 200
    assert call(svc.url + "/api/profile", svc.mint_jwt("johndoe"))[0] == 503


def test_echo_token_fault_error_status(svc):
    api = svc.mint_api_token("johndoe")
    jwt = svc.mint_jwt("johndoe")
    svc.echo_token_next(2)
    assert call_json(svc.url + "/api/profile", api) == (401, {"error": f"invalid token {api}"})
    assert call_json(svc.url + "/api/sessions", jwt) == (401, {"error": f"invalid token {jwt}"})
    assert call_json(svc.url + "/api/profile", api)[0] == 200
    svc.echo_token_next(1, status=500, template="boom: {token} ({token})")
    assert call_json(svc.url + "/api/tokens/validate", api) == (
        500,
        {"error": f"boom: {api} ({api})"},
    )
    assert [(e["fault"], e["status"]) for e in svc.log] == [
        ("echo_token", 401),
        ("echo_token", 401),
        (None, 200),
        ("echo_token", 500),
    ]
    dumped = json.dumps(svc.log)
    assert api not in dumped and api[6:] not in dumped and jwt.split(".")[2] not in dumped


def test_echo_token_fault_with_200_says_not_valid(svc):
    api = svc.mint_api_token("janedoe")
    svc.echo_token_next(1, status=200, template="token {token} is not valid")
    assert call_json(svc.url + "/api/tokens/validate", api) == (
        200,
        {"valid": False, "error": f"token {api} is not valid"},
    )
    assert call_json(svc.url + "/api/tokens/validate", api)[1]["valid"] is True
    assert api not in json.dumps(svc.log)


def test_echo_token_fault_queues_with_the_others(svc):
    api = svc.mint_api_token("johndoe")
    svc.fail_next(1, status=502)
    svc.echo_token_next(1)
    svc.malformed_next(1)
    assert call(svc.url + "/api/profile", api)[0] == 502
    assert call_json(svc.url + "/api/profile", api) == (401, {"error": f"invalid token {api}"})
    assert not call(svc.url + "/api/profile", api)[2].startswith(b"{")
    assert call_json(svc.url + "/api/profile", api)[0] == 200
    # the token as presented, even when the header is not a proper Bearer one
    svc.echo_token_next(1, template="[{token}]")
    assert call_json(svc.url + "/api/profile", headers={"Authorization": "Bearer  x y"}) == (
        401,
        {"error": "[x y]"},
    )
    svc.echo_token_next(1, template="[{token}]")
    assert call_json(svc.url + "/api/profile") == (401, {"error": "[]"})
    svc.echo_token_next(3)
    svc.clear_faults()
    assert call_json(svc.url + "/api/profile", api)[0] == 200
    for bad in (
        {"n": -1},
        {"n": 1, "status": 302},
        {"n": 1, "template": "{nope}"},
        {"n": 1, "template": "{0}"},
    ):
        with pytest.raises(ValueError):
            svc.echo_token_next(**bad)


# -- log ---------------------------------------------------------------------------------------


def test_log_never_contains_tokens(svc):
    api = svc.mint_api_token("johndoe")
    jwt = svc.mint_jwt("johndoe")
    call(svc.url + "/api/profile", api)
    call(svc.url + "/api/profile", jwt)
    call(svc.url + "/api/tokens/validate", api)
    call(svc.url + "/api/tokens/validate?token=" + api, headers={"Host": "evil.example"})
    call(svc.url + "/callback/abc?token=" + jwt)
    svc.fail_next(1)
    call(svc.url + "/api/profile", jwt)
    token = login_via_form(svc)
    dumped = json.dumps(svc.log)
    for secret in (api, jwt, token, api[6:], jwt.split(".")[2], token.split(".")[2]):
        assert secret not in dumped
    assert "?" not in dumped
    assert [e["path"] for e in svc.log[3:5]] == ["/api/tokens/validate", "/callback/abc"]
    assert svc.log[3]["host_header"] == "evil.example"
    assert svc.log[0]["host_header"] == f"127.0.0.1:{svc.port}"
    for entry in svc.log:
        assert set(entry) == {
            "method",
            "path",
            "status",
            "host_header",
            "auth",
            "user",
            "fault",
            "time",
        }
    assert [e["auth"] for e in svc.log[:5]] == ["api", "jwt", "api", "none", "none"]
    assert len(svc.requests_to("/api/profile")) == 3
    svc.clear_log()
    assert svc.log == []


def test_log_never_contains_tokens_on_the_session_routes(svc):
    api = svc.mint_api_token("johndoe")
    jwt = svc.mint_jwt("johndoe")
    doomed = svc.mint_jwt("johndoe")
    call(svc.url + "/api/sessions", jwt)
    call(svc.url + "/api/sessions", api)
    call(f"{svc.url}/api/sessions/{sid_of(doomed)}", api, method="DELETE")
    call(svc.url + "/api/profile", doomed)
    call(f"{svc.url}/api/sessions/{'f' * 32}", jwt, method="DELETE")
    svc.lock_screen("johndoe")
    call(svc.url + "/api/sessions", jwt)
    svc.echo_token_next(1)
    call(svc.url + "/api/sessions", jwt)
    browser = login_via_form(svc, headers={"User-Agent": BROWSER_UA})
    call(svc.url + "/api/sessions", browser)
    dumped = json.dumps(svc.log)
    for secret in (
        api,
        api[6:],
        jwt,
        doomed,
        browser,
        jwt.split(".")[2],
        doomed.split(".")[2],
        browser.split(".")[2],
    ):
        assert secret not in dumped
    api_entries = [e for e in svc.log if e["path"].startswith("/api/")]
    assert [(e["method"], e["status"], e["auth"], e["user"], e["fault"]) for e in api_entries] == [
        ("GET", 200, "jwt", "johndoe", None),
        ("GET", 200, "api", "johndoe", None),
        ("DELETE", 200, "api", "johndoe", None),
        ("GET", 401, "jwt", None, None),
        ("DELETE", 404, "jwt", "johndoe", None),
        ("GET", 423, "jwt", None, None),
        ("GET", 401, "jwt", None, "echo_token"),
        ("GET", 200, "jwt", "johndoe", None),
    ]
    assert api_entries[2]["path"] == f"/api/sessions/{sid_of(doomed)}"


# -- /cli-login --------------------------------------------------------------------------------


def form_fields(page):
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))


def login_via_form(svc, username="johndoe", password="hunter2", callback=CALLBACK, headers=None):
    status, _, body = call(
        svc.url + "/cli-login?callback=" + urllib.parse.quote(callback, safe=""), headers=headers
    )
    assert status == 200
    fields = form_fields(body.decode())
    status, _, body = call(
        svc.url + "/cli-login",
        headers=headers,
        data={**fields, "username": username, "password": password},
    )
    assert status == 200
    fields = {k: html.unescape(v) for k, v in form_fields(body.decode()).items()}
    status, hdrs, _ = call(svc.url + "/cli-login/authorize", data=fields, headers=headers)
    assert status == 302
    location = hdrs["Location"]
    assert location.startswith(callback + "?token=")
    return location[len(callback + "?token=") :]


def test_cli_login_flow(svc):
    url = svc.url + "/cli-login?callback=" + CALLBACK
    status, hdrs, body = call(url)
    page = body.decode()
    assert status == 200 and hdrs["Content-Type"].startswith("text/html")
    assert 'name="username"' in page and 'id="username"' in page
    assert 'name="password"' in page and 'id="password"' in page
    assert re.search(r"<button[^>]*>Sign in</button>", page)
    assert 'action="/cli-login"' in page and 'method="post"' in page
    fields = form_fields(page)
    assert fields == {"callback": CALLBACK}

    status, _, body = call(
        svc.url + "/cli-login", data={**fields, "username": "johndoe", "password": "wrong"}
    )
    page = body.decode()
    assert status == 401 and "Invalid username or password" in page
    assert "Authorize CLI access" not in page
    assert form_fields(page) == {"callback": CALLBACK}

    status, _, body = call(
        svc.url + "/cli-login", data={**fields, "username": "johndoe", "password": "hunter2"}
    )
    page = body.decode()
    assert status == 200 and "Signed in as johndoe" in page
    assert re.search(r'<button[^>]*id="authorize"[^>]*>Authorize CLI access</button>', page)
    assert 'action="/cli-login/authorize"' in page
    grant_fields = form_fields(page)
    assert grant_fields["callback"] == CALLBACK and len(grant_fields["grant"]) >= 32

    status, hdrs, _ = call(svc.url + "/cli-login/authorize", data=grant_fields)
    assert status == 302
    location = hdrs["Location"]
    prefix = CALLBACK + "?token="
    assert location.startswith(prefix)
    token = location[len(prefix) :]
    assert JWT_RE.match(token)
    status, body = call_json(svc.url + "/api/profile", token)
    assert status == 200 and body["user"]["username"] == "johndoe"
    assert jwt_part(token, 1)["username"] == "johndoe"

    # the one-time value cannot be replayed, nor the step forged
    assert call(svc.url + "/cli-login/authorize", data=grant_fields)[0] == 400
    assert call(svc.url + "/cli-login/authorize", data={"callback": CALLBACK})[0] == 400
    assert [e["user"] for e in svc.requests_to("/cli-login")] == [None, None, "johndoe"]


def test_cli_login_concatenates_callback_verbatim(svc):
    odd = "http://127.0.0.1:1/cb?already=1"
    token = login_via_form(svc, callback=odd)
    assert call(svc.url + "/api/profile", token)[0] == 200


def test_cli_login_other_user(svc):
    token = login_via_form(svc, "janedoe", "correct-horse")
    status, body = call_json(svc.url + "/api/profile", token)
    assert status == 200 and body["user"]["username"] == "janedoe"


def test_cli_login_rejected(svc):
    svc.cli_login_rejected = True
    token = login_via_form(svc)
    assert call_json(svc.url + "/api/profile", token) == (
        401,
        {"error": "token signature is invalid"},
    )


def test_cli_login_missing_callback_and_escaping(svc):
    assert call(svc.url + "/cli-login")[0] == 400
    assert call(svc.url + "/cli-login?callback=")[0] == 400
    evil = 'http://127.0.0.1:1/cb/"><script>alert(1)</script>'
    status, _, body = call(svc.url + "/cli-login?callback=" + urllib.parse.quote(evil, safe=""))
    page = body.decode()
    assert status == 200 and "<script>" not in page
    assert html.escape(evil) in page
    status, _, body = call(
        svc.url + "/cli-login", data={"callback": evil, "username": "<b>x</b>", "password": "p"}
    )
    assert status == 401 and "<b>x</b>" not in body.decode()


# -- the browser's web session: one JWT per sign-in -------------------------------------------


def login_url(svc, callback=CALLBACK):
    return svc.url + "/cli-login?callback=" + urllib.parse.quote(callback, safe="")


def token_of(location, callback=CALLBACK):
    assert location.startswith(callback + "?token=")
    return location[len(callback + "?token=") :]


def cookie_header(hdrs):
    (value,) = hdrs.get_all("Set-Cookie")
    return value


def test_one_browser_hands_every_cli_login_the_same_jwt(svc):
    browser = ScriptedBrowser()
    first = token_of(browser.authorize(login_url(svc)))
    other_callback = "http://127.0.0.1:9877/callback/b3RoZXJub25jZQ"
    second = token_of(browser.authorize(login_url(svc, other_callback)), other_callback)
    third = token_of(browser.authorize(login_url(svc), user="johndoe"))
    assert first == second == third and JWT_RE.match(first)
    assert call_json(svc.url + "/api/profile", first)[0] == 200
    # signed in once: one sign-in POST, one session, and that session is the JWT's
    assert [e["method"] for e in svc.requests_to("/cli-login")] == ["GET", "POST", "GET", "GET"]
    (session,) = svc.sessions("johndoe")
    assert session["id"] == sid_of(first)
    assert svc.web_session_jwts("johndoe") == [first]
    assert svc.last_sign_in_jwt() == first
    assert svc.web_session_jwts("janedoe") == []


def test_separate_sign_ins_get_separate_jwts(svc):
    one = token_of(scripted_browser.authorize(login_url(svc)))
    two = token_of(scripted_browser.authorize(login_url(svc)))  # a fresh browser each call
    assert one != two and sid_of(one) != sid_of(two)
    assert svc.web_session_jwts("johndoe") == [one, two]
    assert svc.last_sign_in_jwt() == two
    assert {s["id"] for s in svc.sessions("johndoe")} == {sid_of(one), sid_of(two)}
    for token in (one, two):
        assert call_json(svc.url + "/api/profile", token)[0] == 200


def test_sign_in_sets_a_session_cookie_that_skips_the_form(svc):
    assert svc.last_sign_in_jwt() is None
    status, _, body = call(login_url(svc))
    fields = form_fields(body.decode())
    status, hdrs, body = call(
        svc.url + "/cli-login", data={**fields, "username": "johndoe", "password": "hunter2"}
    )
    assert status == 200 and "Signed in as johndoe" in body.decode()
    name, _, rest = cookie_header(hdrs).partition("=")
    value, *attributes = [part.strip() for part in rest.split(";")]
    assert name == f"rexec_web_{svc.port}" and len(value) >= 32
    assert {a.lower() for a in attributes} == {"path=/cli-login", "httponly", "samesite=lax"}
    assert value not in json.dumps(svc.log)
    grant = form_fields(body.decode())["grant"]
    token = token_of(
        call(svc.url + "/cli-login/authorize", data=form_fields(body.decode()))[1]["Location"]
    )

    cookie = {"Cookie": f"{name}={value}"}
    grants = set()
    for _ in range(2):
        status, hdrs, body = call(login_url(svc), headers=cookie)
        page = body.decode()
        assert status == 200 and "Signed in as johndoe" in page
        assert 'name="username"' not in page and 'name="password"' not in page
        assert re.search(r'<button[^>]*id="authorize"[^>]*>Authorize CLI access</button>', page)
        assert hdrs.get_all("Set-Cookie") is None
        fields = form_fields(page)
        grants.add(fields["grant"])
        status, hdrs, _ = call(svc.url + "/cli-login/authorize", data=fields, headers=cookie)
        assert status == 302 and token_of(hdrs["Location"]) == token
    assert len(grants | {grant}) == 3  # a new one-time grant for every page
    assert [e["user"] for e in svc.requests_to("/cli-login")] == [
        None,
        "johndoe",
        "johndoe",
        "johndoe",
    ]
    # a cookie this service never set is no sign-in (and is dropped)
    status, hdrs, body = call(login_url(svc), headers={"Cookie": f"{name}=forged"})
    assert status == 200 and 'name="password"' in body.decode()
    assert "max-age=0" in cookie_header(hdrs).lower()


def test_ending_the_session_signs_the_browser_out(svc):
    browser = ScriptedBrowser()
    token = token_of(browser.authorize(login_url(svc)))
    url = f"{svc.url}/api/sessions/{sid_of(token)}"
    assert call_status_json(url, token, method="DELETE") == (200, {"revoked": True})
    assert call_json(svc.url + "/api/profile", token) == (401, {"error": "session_revoked"})
    assert svc.web_session_jwts("johndoe") == []
    assert len(browser.cookies) == 1
    status, page, _ = browser.visit(login_url(svc))
    assert status == 200 and 'name="password"' in page and "Signed in as" not in page
    assert len(browser.cookies) == 0  # the service dropped the cookie
    again = token_of(browser.authorize(login_url(svc)))  # signs in again: a new session
    assert again != token and sid_of(again) != sid_of(token)
    assert call_json(svc.url + "/api/profile", again)[0] == 200
    assert svc.web_session_jwts("johndoe") == [again]
    assert svc.last_sign_in_jwt() == again


def test_revoking_the_jwt_or_locking_the_screen(svc):
    browser = ScriptedBrowser()
    token = token_of(browser.authorize(login_url(svc)))
    svc.lock_screen("johndoe")  # a locked session is still signed in: the same JWT, refused
    assert token_of(browser.authorize(login_url(svc))) == token
    assert call_json(svc.url + "/api/profile", token) == (423, {"error": "session_locked"})
    svc.unlock_screen("johndoe")
    svc.revoke(token)
    assert token_of(browser.authorize(login_url(svc))) != token


def test_an_expired_web_session_means_the_form_again(svc):
    browser = ScriptedBrowser()
    # The stand-in runs in this process: its clock (and the cookie jar's) is frozen, and
    # moved past the session's end only once the login is through, however slow the machine.
    with freeze_time() as clock:
        svc.jwt_lifetime = 60
        token = token_of(browser.authorize(login_url(svc)))
        assert call_json(svc.url + "/api/profile", token)[0] == 200
        clock.tick(61)
        assert call_json(svc.url + "/api/profile", token) == (401, {"error": "token is expired"})
        status, page, _ = browser.visit(login_url(svc))
        assert 'name="password"' in page and len(browser.cookies) == 0
        svc.jwt_lifetime = 3600
        assert token_of(browser.authorize(login_url(svc))) != token


def test_a_grant_shown_before_the_session_ended_is_refused(svc):
    browser = ScriptedBrowser()
    token = token_of(browser.authorize(login_url(svc)))
    status, page, _ = browser.visit(login_url(svc))
    fields = form_fields(page)
    svc.revoke(token)
    status, page, _ = browser.visit(svc.url + "/cli-login/authorize", fields, follow=False)
    assert status == 400 and "expired" in page
    assert len(browser.cookies) == 0


def test_the_grant_stays_bound_to_its_callback_and_single_use(svc):
    browser = ScriptedBrowser()
    browser.authorize(login_url(svc))
    _, page, _ = browser.visit(login_url(svc))
    fields = form_fields(page)
    other = {**fields, "callback": "http://127.0.0.1:1/callback/evil"}
    assert browser.visit(svc.url + "/cli-login/authorize", other, follow=False)[0] == 400
    # the refused attempt used the grant up
    assert browser.visit(svc.url + "/cli-login/authorize", fields, follow=False)[0] == 400
    assert browser.visit(svc.url + "/cli-login/authorize", {"callback": CALLBACK})[0] == 400


def test_signing_out_forgets_the_browser_but_the_jwt_keeps_working(svc):
    browser = ScriptedBrowser()
    token = token_of(browser.authorize(login_url(svc)))
    browser.sign_out(login_url(svc))
    assert len(browser.cookies) == 0
    assert svc.web_session_jwts("johndoe") == []
    assert call_json(svc.url + "/api/profile", token)[0] == 200  # the web app's logout is local
    assert svc.sessions("johndoe")[0]["revoked_at"] is None
    assert token_of(browser.authorize(login_url(svc))) != token
    assert call(svc.url + "/cli-login/sign-out")[0] == 405


def test_the_scripted_browser_switches_user_only_when_told(svc):
    browser = ScriptedBrowser()
    john = token_of(browser.authorize(login_url(svc)))
    jane = token_of(browser.authorize(login_url(svc), "janedoe", "correct-horse"))
    assert jwt_part(jane, 1)["username"] == "janedoe"
    assert token_of(browser.authorize(login_url(svc))) == jane  # whoever is signed in
    assert svc.web_session_jwts("janedoe") == [jane]
    assert svc.web_session_jwts("johndoe") == []  # that browser forgot john's sign-in
    assert call_json(svc.url + "/api/profile", john)[0] == 200
    with pytest.raises(RuntimeError, match="authorize"):
        ScriptedBrowser().authorize(login_url(svc), "johndoe", "wrong")


def test_a_second_sign_in_in_the_same_browser_replaces_the_first(svc):
    status, _, body = call(login_url(svc))
    fields = form_fields(body.decode())
    creds = {**fields, "username": "johndoe", "password": "hunter2"}
    _, hdrs, _ = call(svc.url + "/cli-login", data=creds)
    first = cookie_header(hdrs).split(";")[0]
    _, hdrs, _ = call(svc.url + "/cli-login", data=creds, headers={"Cookie": first})
    second = cookie_header(hdrs).split(";")[0]
    assert first != second
    assert 'name="password"' in call(login_url(svc), headers={"Cookie": first})[2].decode()
    assert "Signed in as" in call(login_url(svc), headers={"Cookie": second})[2].decode()
    assert len(svc.web_session_jwts("johndoe")) == 1


def test_cookies_of_two_stand_ins_do_not_mix(svc):
    browser = ScriptedBrowser()
    with StandIn() as other:
        here = token_of(browser.authorize(login_url(svc)))
        there = token_of(browser.authorize(login_url(other)))
        assert token_of(browser.authorize(login_url(svc))) == here
        assert token_of(browser.authorize(login_url(other))) == there
        assert call_json(other.url + "/api/profile", there)[0] == 200
    assert len(browser.cookies) == 2


def test_cli_login_rejected_signs_the_web_sessions_jwt_with_a_foreign_key(svc):
    browser = ScriptedBrowser()
    svc.cli_login_rejected = True
    bad = token_of(browser.authorize(login_url(svc)))
    assert token_of(browser.authorize(login_url(svc))) == bad
    assert call_json(svc.url + "/api/profile", bad) == (
        401,
        {"error": "token signature is invalid"},
    )
    svc.cli_login_rejected = False  # the same sign-in, now handed out with the good key
    good = token_of(browser.authorize(login_url(svc)))
    assert good != bad and jwt_part(good, 1) == jwt_part(bad, 1)
    assert call_json(svc.url + "/api/profile", good)[0] == 200


class _Callbacks:
    """A loopback server standing for the CLI's callback listener: records what it got."""

    def __init__(self):
        import http.server
        import threading

        got = self.got = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                got.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/callback/bm9uY2U"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_scripted_browser_command_line_keeps_cookies_in_a_jar(svc, tmp_path):
    callbacks = _Callbacks()
    jar = tmp_path / "cookies.txt"
    try:
        command = scripted_browser.browser_command(cookie_jar=str(jar)).replace(" %s", "")
        for _ in range(2):
            proc = subprocess.run(
                [*shlex.split(command), login_url(svc, callbacks.url)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
        without = scripted_browser.browser_command().replace(" %s", "")
        proc = subprocess.run([*shlex.split(without), login_url(svc, callbacks.url)], timeout=60)
        assert proc.returncode == 0
        # naming another user signs the jar's browser out and in again as that user
        jane = scripted_browser.browser_command("janedoe", "correct-horse", str(jar))
        proc = subprocess.run(
            [*shlex.split(jane.replace(" %s", "")), login_url(svc, callbacks.url)]
        )
        assert proc.returncode == 0
    finally:
        callbacks.close()
    tokens = [urllib.parse.parse_qs(p.split("?", 1)[1])["token"][0] for p in callbacks.got]
    assert len(tokens) == 4 and tokens[0] == tokens[1] != tokens[2]
    assert jwt_part(tokens[0], 1)["username"] == "johndoe"
    assert jwt_part(tokens[3], 1)["username"] == "janedoe"
    assert jar.stat().st_mode & 0o777 == 0o600
    assert [e["method"] for e in svc.requests_to("/cli-login")].count("POST") == 3


# -- the token API ------------------------------------------------------------------------------

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
GO_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
CREATED_FIELDS = {
    "token",
    "id",
    "name",
    "token_prefix",
    "scopes",
    "expires_at",
    "created_at",
    "message",
}


def api(url, token=None, method="GET", body=None, raw=None, headers=None):
    """(status, headers, parsed JSON or the raw bytes when not JSON) of one API request."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with OPENER.open(req, timeout=5) as resp:
            status, got, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            status, got, payload = err.code, err.headers, err.read()
    try:
        return status, got, json.loads(payload)
    except ValueError:
        return status, got, payload


def create(svc, token, body=None, raw=None):
    status, _, answer = api(svc.url + "/api/tokens", token, "POST", body, raw)
    return status, answer


def listed(svc, token):
    status, _, answer = api(svc.url + "/api/tokens", token)
    assert status == 200 and set(answer) == {"tokens"}
    return answer["tokens"]


def seconds_of(go_time):
    """A Go-written RFC 3339 UTC time in (fractional) Unix seconds."""
    import calendar

    whole, _, rest = go_time.rstrip("Z").partition(".")
    base = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return base + (float("0." + rest) if rest else 0.0)


@pytest.mark.parametrize("kind", ["jwt", "api"])
def test_create_token(svc, kind):
    caller = svc.mint_jwt("johndoe") if kind == "jwt" else svc.mint_api_token("johndoe")
    before = time.time()
    status, body = create(svc, caller, {"name": "laptop", "expires_in": 30})
    after = time.time()
    assert status == 201 and set(body) == CREATED_FIELDS
    token = body["token"]
    assert API_TOKEN_RE.match(token)
    assert UUID4_RE.match(body["id"]) and body["token_prefix"] == token[:12]
    assert body["name"] == "laptop" and body["scopes"] == ["read", "write"]
    assert body["message"] == "Save this token now. You won't be able to see it again!"
    assert GO_TIME_RE.match(body["created_at"]) and GO_TIME_RE.match(body["expires_at"])
    created, expires = seconds_of(body["created_at"]), seconds_of(body["expires_at"])
    assert before - 0.001 <= created <= after + 0.001
    # the expiry is read from the clock just before created_at: 30 days, to the microsecond
    assert 30 * 86400 - 0.5 <= expires - created <= 30 * 86400
    # the new token works, and can itself make tokens
    status, valid = call_json(svc.url + "/api/tokens/validate", token)
    assert status == 200 and valid["username"] == "johndoe" and valid["scopes"] == ["read", "write"]
    assert call_json(svc.url + "/api/profile", token)[0] == 200
    status, again = create(svc, token, {"name": "made by a made token"})
    assert status == 201 and again["token"] != token
    assert svc.api_token_id(token) == body["id"]
    entries = svc.requests_to("/api/tokens")
    assert [(e["method"], e["status"], e["auth"], e["user"]) for e in entries] == [
        ("POST", 201, kind, "johndoe"),
        ("POST", 201, "api", "johndoe"),
    ]
    dumped = json.dumps(svc.log)
    assert token not in dumped and token[6:] not in dumped and again["token"] not in dumped


@pytest.mark.parametrize(
    "extra",
    [{}, {"expires_in": None}, {"expires_in": 0}, {"expires_in": -5}, {"expires_in": -(2**63)}],
    ids=["absent", "null", "zero", "negative", "int64-min"],
)
def test_created_token_without_expiry(svc, extra):
    status, body = create(svc, svc.mint_jwt("janedoe"), {"name": "ci", **extra})
    assert status == 201 and body["expires_at"] is None
    (entry,) = [t for t in listed(svc, body["token"]) if t["id"] == body["id"]]
    assert "expires_at" not in entry  # Go's omitempty: a null time is left out


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (["read"], ["read"]),
        ([], ["read", "write"]),
        (None, ["read", "write"]),
        (["admin", "x"], ["admin", "x"]),
    ],
)
def test_created_token_scopes(svc, scopes, expected):
    status, body = create(svc, svc.mint_jwt("johndoe"), {"name": "n", "scopes": scopes})
    assert status == 201 and body["scopes"] == expected
    assert call_json(svc.url + "/api/tokens/validate", body["token"])[1]["scopes"] == expected
    assert listed(svc, body["token"])[0]["scopes"] == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"not json",
        b"[]",
        b'"laptop"',
        b"null",
        b"{}",
        b'{"name": ""}',
        b'{"name": null}',
        b'{"name": 3}',
        b'{"name": ["x"]}',
        b'{"name": "x", "expires_in": "5"}',
        b'{"name": "x", "expires_in": 1.5}',
        b'{"name": "x", "expires_in": 1e2}',
        b'{"name": "x", "expires_in": 1.0}',
        b'{"name": "x", "expires_in": true}',
        b'{"name": "x", "expires_in": 9223372036854775808}',
        b'{"name": "x", "expires_in": NaN}',
        b'{"name": "x", "scopes": "read"}',
        b'{"name": "x", "scopes": [1]}',
        b'{"name": "x", "scopes": {}}',
        b'{"name": "x", "scopes": [["read"]]}',
        b'{"name": "x",',
        b'{"name": "x", "name": ""}',
    ],
)
def test_create_token_bad_bodies_all_say_name_is_required(svc, raw):
    jwt = svc.mint_jwt("johndoe")
    assert create(svc, jwt, raw=raw) == (400, {"error": "name is required"})
    assert svc.api_tokens("johndoe") == []
    assert svc.requests_to("/api/tokens")[0]["user"] == "johndoe"


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b'{"NAME": "upper"}', "upper"),  # Go matches keys case-insensitively
        (b'{"name": "a", "Name": "b"}', "b"),  # the last one wins
        (b'{"name": "kept", "name": null}', "kept"),  # null leaves a string as it was
        (b' {"name": "x", "other": [1, {"y": 2}]} trailing', "x"),  # the first value only
    ],
)
def test_create_token_binds_as_go_does(svc, raw, name):
    status, body = create(svc, svc.mint_jwt("johndoe"), raw=raw)
    assert status == 201 and body["name"] == name


def test_create_token_the_database_refuses(svc):
    jwt = svc.mint_jwt("johndoe")
    assert create(svc, jwt, {"name": "x" * 255})[0] == 201
    failed = (500, {"error": "failed to create token"})
    assert create(svc, jwt, {"name": "x" * 256}) == failed  # name VARCHAR(255)
    assert create(svc, jwt, {"name": "a\x00b"}) == failed
    assert create(svc, jwt, {"name": "a", "scopes": ["r\x00"]}) == failed
    assert len(svc.api_tokens("johndoe")) == 1


def test_an_expiry_past_the_year_9999_is_stored_but_unwritable(svc):
    jwt = svc.mint_jwt("johndoe")
    status, _, body = api(
        svc.url + "/api/tokens", jwt, "POST", {"name": "far", "expires_in": 3_000_000}
    )
    assert (status, body) == (201, b"")  # Go cannot write the time: an empty body
    status, _, body = api(svc.url + "/api/tokens", jwt)
    assert (status, body) == (200, b"")  # ...and nor can it list the user's tokens now
    (record,) = svc.api_tokens("johndoe")
    url = f"{svc.url}/api/tokens/{record['id']}/permanent"
    assert api(url, jwt, "DELETE")[2] == {"message": "token deleted"}
    assert listed(svc, jwt) is None


def test_create_token_needs_a_good_bearer(svc):
    url = svc.url + "/api/tokens"
    body = {"name": "x"}
    assert api(url, None, "POST", body)[::2] == (401, {"error": "authorization header required"})
    assert api(url, "rexec_" + "0" * 64, "POST", body)[::2] == (
        401,
        {"error": "Invalid or expired token"},
    )
    jwt = svc.mint_jwt("johndoe")
    svc.revoke(jwt)
    assert api(url, jwt, "POST", body)[::2] == (401, {"error": "session_revoked"})
    assert api(url, svc.mint_jwt("johndoe", exp=time.time() - 5), "POST", body)[::2] == (
        401,
        {"error": "token is expired"},
    )
    assert api(url, svc.mint_jwt("johndoe"), "POST", raw=b"not json")[::2] == (
        400,
        {"error": "name is required"},
    )
    assert svc.api_tokens("johndoe") == []


def test_list_tokens(svc):
    jwt = svc.mint_jwt("johndoe")
    assert listed(svc, jwt) is None  # a Go nil slice: {"tokens": null}
    minted = svc.mint_api_token("johndoe")
    jane = svc.mint_api_token("janedoe")
    _, made = create(svc, jwt, {"name": "laptop", "scopes": ["read"], "expires_in": 7})
    tokens = listed(svc, jwt)
    assert [t["name"] for t in tokens] == ["laptop", "minted"]  # newest first
    laptop, old = tokens
    assert list(laptop) == [
        "id",
        "user_id",
        "name",
        "token_prefix",
        "scopes",
        "expires_at",
        "created_at",
    ]  # the struct's order; null times left out
    assert laptop["id"] == made["id"] and laptop["user_id"] == svc.users["johndoe"].id
    assert laptop["token_prefix"] == made["token"][:12] and laptop["scopes"] == ["read"]
    assert abs(seconds_of(laptop["expires_at"]) - seconds_of(made["expires_at"])) < 1e-6
    assert abs(seconds_of(laptop["created_at"]) - seconds_of(made["created_at"])) < 1e-6
    assert re.fullmatch(r"[^.]*(\.\d{1,6})?Z", laptop["created_at"])  # PostgreSQL: microseconds
    assert old["id"] == svc.api_token_id(minted) and old["token_prefix"] == minted[:12]
    assert "expires_at" not in old and "last_used_at" not in old
    assert old["scopes"] == ["read", "write"]
    assert svc.api_tokens("johndoe") == tokens
    # using a token notes it as last used
    call(svc.url + "/api/tokens/validate", minted)
    (old,) = [t for t in listed(svc, jwt) if t["name"] == "minted"]
    assert GO_TIME_RE.match(old["last_used_at"])
    # only the caller's own
    (theirs,) = listed(svc, jane)
    assert theirs["id"] == svc.api_token_id(jane)
    assert api(svc.url + "/api/tokens", jwt, "HEAD")[0] == 200


def test_revoke_token(svc):
    jwt = svc.mint_jwt("johndoe")
    _, made = create(svc, jwt, {"name": "laptop"})
    keep = svc.mint_api_token("johndoe")
    url = f"{svc.url}/api/tokens/{made['id']}"
    assert api(url, jwt, "DELETE")[::2] == (200, {"message": "token revoked"})
    assert call_json(svc.url + "/api/tokens/validate", made["token"]) == (
        401,
        {"error": "invalid token"},
    )
    for path in ("/api/profile", "/api/sessions", "/api/tokens"):
        assert call_json(svc.url + path, made["token"]) == (
            401,
            {"error": "Invalid or expired token"},
        )
    assert create(svc, made["token"], {"name": "x"})[0] == 401
    assert api(url, jwt, "DELETE")[::2] == (404, {"error": "token not found"})  # again
    assert [t["id"] for t in listed(svc, jwt)] == [svc.api_token_id(keep)]
    (revoked,) = [t for t in svc.api_tokens("johndoe", revoked=True) if t["id"] == made["id"]]
    assert GO_TIME_RE.match(revoked["revoked_at"])
    assert call_json(svc.url + "/api/tokens/validate", keep)[0] == 200
    # revoking with the token itself works once
    own = f"{svc.url}/api/tokens/{svc.api_token_id(keep)}"
    assert api(own, keep, "DELETE")[::2] == (200, {"message": "token revoked"})
    assert api(own, keep, "DELETE")[0] == 401


def test_revoke_someone_elses_or_an_unknown_token_is_404(svc):
    jane = svc.mint_api_token("janedoe")
    john = svc.mint_jwt("johndoe")
    not_found = (404, {"error": "token not found"})
    for token_id in (svc.api_token_id(jane), "0" * 8, "validate", "%2e%2e"):
        assert api(f"{svc.url}/api/tokens/{token_id}", john, "DELETE")[::2] == not_found
        assert api(f"{svc.url}/api/tokens/{token_id}/permanent", john, "DELETE")[::2] == not_found
    assert call_json(svc.url + "/api/tokens/validate", jane)[0] == 200
    assert api(f"{svc.url}/api/tokens/{svc.api_token_id(jane)}", None, "DELETE")[::2] == (
        401,
        {"error": "authorization header required"},
    )


def test_permanent_delete(svc):
    jwt = svc.mint_jwt("johndoe")
    _, made = create(svc, jwt, {"name": "gone"})
    _, revoked = create(svc, jwt, {"name": "revoked first"})
    api(f"{svc.url}/api/tokens/{revoked['id']}", jwt, "DELETE")
    for body in (made, revoked):
        url = f"{svc.url}/api/tokens/{body['id']}/permanent"
        assert api(url, jwt, "DELETE")[::2] == (200, {"message": "token deleted"})
        assert api(url, jwt, "DELETE")[::2] == (404, {"error": "token not found"})
        assert call_json(svc.url + "/api/tokens/validate", body["token"]) == (
            401,
            {"error": "invalid token"},
        )
        assert call_json(svc.url + "/api/profile", body["token"])[0] == 401
        with pytest.raises(KeyError):
            svc.api_token_id(body["token"])
    assert listed(svc, jwt) is None
    assert svc.api_tokens("johndoe", revoked=True) == []


def test_expired_created_token(svc):
    jwt = svc.mint_jwt("johndoe")
    _, made = create(svc, jwt, {"name": "short", "expires_in": 1})
    svc.expire_api_token(made["id"])
    assert call_json(svc.url + "/api/tokens/validate", made["token"]) == (
        401,
        {"error": "token expired"},
    )
    assert call_json(svc.url + "/api/profile", made["token"]) == (
        401,
        {"error": "Invalid or expired token"},
    )
    (entry,) = listed(svc, jwt)  # expired tokens are still listed
    assert entry["id"] == made["id"] and seconds_of(entry["expires_at"]) <= time.time()
    with pytest.raises(KeyError):
        svc.expire_api_token("no-such-id")


def test_token_routes_methods(svc):
    jwt = svc.mint_jwt("johndoe")
    for path, method, allow in [
        ("/api/tokens", "PUT", "GET, HEAD, POST"),
        ("/api/tokens", "DELETE", "GET, HEAD, POST"),
        ("/api/tokens/abc", "GET", "DELETE"),
        ("/api/tokens/abc", "POST", "DELETE"),
        ("/api/tokens/abc/permanent", "GET", "DELETE"),
        ("/api/tokens/validate", "POST", "GET, HEAD, DELETE"),
    ]:
        status, hdrs, body = api(svc.url + path, jwt, method)
        assert (status, hdrs["Allow"], body) == (405, allow, {"error": "method not allowed"})
    # the service's router takes DELETE /api/tokens/validate for a token id "validate"
    assert api(svc.url + "/api/tokens/validate", jwt, "DELETE")[::2] == (
        404,
        {"error": "token not found"},
    )
    assert api(svc.url + "/api/tokens/a/b", jwt, "DELETE")[::2] == (404, {"error": "not found"})


def test_older_service_without_the_token_api(svc):
    svc.token_api = False
    jwt = svc.mint_jwt("johndoe")
    api_token = svc.mint_api_token("johndoe")
    not_found = (404, {"error": "not found"})
    for path, method in [
        ("/api/tokens", "POST"),
        ("/api/tokens", "GET"),
        ("/api/tokens/abc", "DELETE"),
        ("/api/tokens/abc/permanent", "DELETE"),
    ]:
        assert api(svc.url + path, jwt, method, {"name": "x"} if method == "POST" else None)[
            ::2
        ] == (not_found)
        assert api(svc.url + path, None, method)[::2] == not_found  # before any auth, as unknown
    assert call_json(svc.url + "/api/tokens/validate", api_token)[0] == 200
    status, hdrs, _ = api(svc.url + "/api/tokens/validate", jwt, "DELETE")
    assert (status, hdrs["Allow"]) == (405, "GET, HEAD")
    assert svc.api_tokens("johndoe")[0]["name"] == "minted"
    svc.token_api = True
    assert create(svc, jwt, {"name": "x"})[0] == 201


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, "internal server error"),
        (503, "service unavailable"),
        (403, "forbidden"),
        (401, "unauthorized"),
        (405, "method not allowed"),
        (501, "not implemented"),
    ],
)
def test_fail_token_creation_next(svc, status, error):
    jwt = svc.mint_jwt("johndoe")
    api_token = svc.mint_api_token("johndoe")
    svc.fail_token_creation_next(2, status)
    # other requests, the token list included, pass the fault by
    assert call_json(svc.url + "/api/profile", jwt)[0] == 200
    assert call_json(svc.url + "/api/tokens/validate", api_token)[0] == 200
    assert listed(svc, jwt)[0]["name"] == "minted"
    assert create(svc, jwt, {"name": "x"}) == (status, {"error": error})
    assert call_json(svc.url + "/api/sessions", jwt)[0] == 200
    assert create(svc, api_token, {"name": "x"}) == (status, {"error": error})
    assert create(svc, jwt, {"name": "x"})[0] == 201
    assert len(svc.api_tokens("johndoe")) == 2  # the failed ones made none
    assert [e["fault"] for e in svc.requests_to("/api/tokens") if e["method"] == "POST"] == [
        "fail",
        "fail",
        None,
    ]


def test_faults_for_one_method_or_path_wait_for_it(svc):
    jwt = svc.mint_jwt("johndoe")
    svc.fail_next(1, 500, path="/api/sessions")
    svc.drop_next(1, method="DELETE")
    svc.fail_next(1, 502)
    svc.delay_next(1, 0.3, path="/api/tokens", method="post")
    assert call_json(svc.url + "/api/profile", jwt) == (502, {"error": "bad gateway"})
    assert call_json(svc.url + "/api/profile", jwt)[0] == 200
    assert call_json(svc.url + "/api/sessions", jwt) == (500, {"error": "internal server error"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        api(f"{svc.url}/api/tokens/x", jwt, "DELETE")
    start = time.monotonic()
    assert create(svc, jwt, {"name": "slow"})[0] == 201
    assert time.monotonic() - start >= 0.3
    assert [e["fault"] for e in svc.log] == ["fail", None, "fail", "drop", "delay"]
    for bad in ({"path": "api/tokens"}, {"path": "/api/tokens?x=1"}):
        with pytest.raises(ValueError):
            svc.fail_next(1, **bad)
    with pytest.raises(ValueError):
        svc.fail_token_creation_next(1, 302)


def test_the_log_never_holds_a_created_token(svc):
    jwt = svc.mint_jwt("johndoe")
    made = [create(svc, jwt, {"name": f"t{i}", "expires_in": i})[1]["token"] for i in range(3)]
    for token in made:
        call(svc.url + "/api/tokens/validate", token)
        call(svc.url + "/api/profile", token)
        create(svc, token, {"name": "child"})
        api(svc.url + "/api/tokens", token)
    api(f"{svc.url}/api/tokens/{svc.api_token_id(made[0])}", jwt, "DELETE")
    call(svc.url + "/api/tokens/validate", made[0])
    svc.echo_token_next(1, path="/api/tokens", method="POST")
    create(svc, made[1], {"name": "echoed"})
    children = [t["token_prefix"] for t in svc.api_tokens("johndoe")]
    dumped = json.dumps(svc.log)
    for token in made:
        assert token not in dumped and token[6:] not in dumped and token[6:30] not in dumped
    assert all(prefix not in dumped for prefix in children)
    for entry in svc.log:
        assert set(entry) == {
            "method",
            "path",
            "status",
            "host_header",
            "auth",
            "user",
            "fault",
            "time",
        }
    assert {e["user"] for e in svc.log if e["status"] in (200, 201)} == {"johndoe"}
    assert token not in state_dump(svc)


# -- command line ------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_command_line(sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "rexec_credential.testing", "--port", "0", "--jwt-lifetime", "600"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "0"},
    )
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        keys = [line.split("=", 1)[0] for line in lines]
        assert keys == ["url", "user", "api_token", "jwt", "password"], lines
        values = {line.split("=", 1)[0]: line.split("=", 1)[1].rstrip("\n") for line in lines}
        assert re.match(r"^http://127\.0\.0\.1:\d+$", values["url"])
        assert values["user"] == "johndoe" and values["password"] == "hunter2"
        assert API_TOKEN_RE.match(values["api_token"])
        assert JWT_RE.match(values["jwt"])
        claims = jwt_part(values["jwt"], 1)
        assert claims["exp"] - claims["iat"] == 600
        status, body = call_json(values["url"] + "/api/tokens/validate", values["api_token"])
        assert status == 200 and body["username"] == "johndoe"
        status, body = call_json(values["url"] + "/api/profile", values["jwt"])
        assert status == 200 and body["user"]["username"] == "johndoe"
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert out == ""
    assert "Traceback" not in err and err == ""


def test_help_names_the_demo_users():
    proc = subprocess.run(
        [sys.executable, "-m", "rexec_credential.testing", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    (john,) = [line for line in lines if "johndoe" in line and "hunter2" in line]
    (jane,) = [line for line in lines if "janedoe" in line and "correct-horse" in line]
    assert "pro" in john and "admin" in john
    assert "free" in jane and "admin" not in jane


def test_command_line_without_the_token_api():
    proc = subprocess.Popen(
        [sys.executable, "-m", "rexec_credential.testing", "--port", "0", "--no-token-api"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        values = {line.split("=", 1)[0]: line.split("=", 1)[1].rstrip("\n") for line in lines}
        url, jwt = values["url"], values["jwt"]
        assert create_at(url, jwt) == (404, {"error": "not found"})
        assert call_json(url + "/api/tokens/validate", values["api_token"])[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=5)
    assert proc.returncode == 0
    help_text = subprocess.run(
        [sys.executable, "-m", "rexec_credential.testing", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "--no-token-api" in help_text


def create_at(base, token):
    status, _, body = api(base + "/api/tokens", token, "POST", {"name": "x"})
    return status, body


# -- the stand-in's own failures ---------------------------------------------------------------


def test_a_failure_in_the_standins_own_code_is_a_500_and_is_kept():
    def broken(request):
        raise RuntimeError("stand-in defect")

    with StandIn() as service:
        service.api.handle = broken  # break the stand-in itself: what the client sees
        status, _, body = call(service.url + "/api/profile", token="anything")
        assert (status, json.loads(body)) == (500, {"error": "internal server error"})
        assert service.requests_to("/api/profile")[0]["status"] == 500
    assert len(service.errors) == 1
    assert "RuntimeError: stand-in defect" in service.errors[0]


def test_a_failure_past_the_answer_closes_the_connection_and_is_kept():
    def broken(entry):
        raise RuntimeError("log defect")

    with StandIn() as service:
        service._record = broken
        with pytest.raises(http.client.RemoteDisconnected):
            call(service.url + "/api/profile", token="anything")
        # the handler thread keeps it after the client has seen the connection close
        assert eventually(lambda: service.errors)
    assert len(service.errors) == 1 and "RuntimeError: log defect" in service.errors[0]


def test_clients_hanging_up_are_not_failures_of_the_standin():
    reset = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends a reset
    with StandIn() as service:
        server = service._server
        finished = []  # a spy: every request's connection, closed once its handler is done
        real = server.shutdown_request
        server.shutdown_request = lambda request: (real(request), finished.append(1))
        service.delay_next(1, 0.3)
        for request in (b"GET /api/profile HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /api/pro"):
            with socket.create_connection(("127.0.0.1", service.port), timeout=5) as client:
                client.sendall(request)  # the whole request (its answer waits), or a part
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
        assert call(service.url + "/api/profile")[0] == 401  # still serving
        assert eventually(lambda: len(finished) == 3)
    assert service.errors == []
