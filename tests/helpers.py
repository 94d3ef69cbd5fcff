"""Helpers shared by the tests: tokens, logins (recorded in the files, or made by running
rexec-login), and what the two files hold, read and written the way the commands do."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from conftest import Result, call

from rexec_credential.accounts import Account
from rexec_credential.storage import Storage

NOW = 1_700_000_000
# What `rexec-whoami --all --porcelain/--json` says of each login.
WHOAMI_ALL_KEYS = {
    "username",
    "email",
    "tier",
    "role",
    "host",
    "token_source",
    "token_kind",
    "token_expires",
    "token_name",
    "active",
    "state",
    "error",
}


def eventually(check, timeout: float = 10.0, pause: float = 0.05) -> bool:
    """Poll `check()` until it is true or `timeout` seconds pass; its last answer."""
    import time

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return bool(check())
        time.sleep(pause)
    return True


def segment(obj: object) -> str:
    """One base64url JSON segment of a JWT."""
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def jwt(**claims) -> str:
    """An unsigned-looking JWT carrying claims (the client never verifies signatures)."""
    return f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment(claims)}.c2ln"


def storage(directory: Path) -> Storage:
    """The Storage of a ~/.rexec directory, warnings printed."""
    return Storage(str(directory), print)


def record_login(
    directory: Path,
    host: str,
    token: str,
    username: str = "johndoe",
    email: str = "john@example.com",
    tier: str = "pro",
) -> None:
    """Write a login into the files of `directory` as rexec-login records one once the
    service has accepted its token: no command runs and no service is asked."""
    account = Account(host, username, token, email, tier, created_at=NOW)
    storage(directory).update(lambda state: state.log_in(account))


def login_with_token(host: str, token: str, env: dict | None = None) -> Result:
    """`rexec-login --token - --host <host>` in-process, the token on stdin; it must succeed."""
    result = call("login", ["--token", "-", "--host", host], stdin=token.encode(), env=env)
    assert result.code == 0, result
    return result


def read_json(path: Path) -> dict:
    """A JSON file's object ({} when there is no file)."""
    return json.loads(path.read_text()) if path.exists() else {}


def write_json(path: Path, data: object) -> None:
    """Write a JSON file by hand (0600 in a 0700 directory), as a person or tool might."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(0o600)


def credentials(directory: Path) -> list:
    """The credentials git stored (credentials.json's list)."""
    return read_json(directory / "credentials.json").get("credentials", [])


def accounts(directory: Path) -> list:
    """The accounts (credentials.json's list)."""
    return read_json(directory / "credentials.json").get("accounts", [])


def changes(state, operation) -> bool:
    """Whether `operation(state)` changes what either file must hold: the comparison
    Storage.update makes to decide what to write."""

    def contents():
        return json.dumps([state.config_content(), state.stored_content()], sort_keys=True)

    before = contents()
    operation(state)
    return contents() != before
