"""The Rexec stand-in service, exercised over real HTTP on loopback with urllib."""

from __future__ import annotations

import base64
import html
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from rexec_credential.testing import StandIn, User

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
    assert call_json(svc.url + "/api/tokens/validate", api) == (401, {"error": "token revoked"})
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
