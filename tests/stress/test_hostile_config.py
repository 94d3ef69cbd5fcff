"""Hostile files in ~/.rexec and hostile tokens: generated cases never crash, never write.

Both files are attacked: config.json (the five fields, other tools' keys, the earlier
one-file layout with its `credentials` list) and credentials.json (`version`, `accounts`,
`credentials` and other keys), each absent, empty, garbage, JSON that is not an object,
or an object holding arbitrary JSON where every field is expected. What the properties
prove: loading both files either succeeds or reports exactly the corrupted ones (exit 4)
and writes nothing; any pair of objects gives answers, not crashes, to every operation
on the stored logins and credentials and loses none of the credentials stored before;
and `rexec-credential get|store|erase` (in-process) on any such pair of files exits only
with a documented status (get 0 or 4, store and erase 0), prints at most one stderr line,
never rewrites a file it had no reason to touch, and leaves whatever it wrote whole.

10,000 generated cases per property with --full (the README's figures), 1,500 otherwise.
Here the ~100 ms that config.json is re-read before it counts as corrupted (time for the
Rexec CLI to finish an in-place write) is set to 0: nobody writes these files while a
case runs, the outcome is the same, and 10,000 cases would otherwise wait over 15 minutes;
test_rexec_cli_race.py exercises that wait with a real writer.

Three hostile contents found crashing the commands are pinned by explicit cases at the
end: JSON nested too deeply for the parser, a stored JWT whose `exp` is not a finite
number, and a stored expiry beyond what the system clock can show.
"""

from __future__ import annotations

import json
import os
import tempfile

import pytest
from conftest import call, run_bin
from helpers import changes, jwt
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rexec_credential import hosts, precedence, protocol, records, storage, tokens
from rexec_credential.accounts import Account
from rexec_credential.errors import RexecError, StorageError
from rexec_credential.state import State

from . import rounds

CASES = rounds(full=10_000, ci=1_500)
SETTINGS = settings(
    max_examples=CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
NOW = 1_700_000_000


@pytest.fixture(autouse=True, scope="module")
def no_settle():
    """No 100 ms wait on an unparsable config.json (see the module docstring)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(storage, "SETTLE", 0.0)
        yield


# -- strategies -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=6,
)
# Finite claims: a JWT whose exp is infinite or NaN is pinned by its own case below.
claims = st.dictionaries(
    st.sampled_from(["exp", "sid", "username", "iat"]),
    st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.none(),
    max_size=4,
)
jwts = claims.map(lambda c: jwt(**c))
texts = st.sampled_from(
    [
        "https://rexec.pipeops.io",
        "http://127.0.0.1:8080",
        "https://h",
        "h",
        "not a url",
        "ftp://x",
        "https://",
        "http://[::1]:80/",
        "rexec_" + "a" * 64,
        "rexec_" + "b" * 31,
        "",
        "4102444800",
        "1000",
        "0",
        "-5",
        "99999999999999999999",
        "u",
        "p",
        "https",
        "example.com",
    ]
)
anything = json_values | texts | jwts | st.text(max_size=20)

config_keys = st.sampled_from(
    [
        "host",
        "token",
        "username",
        "email",
        "tier",
        "credentials",
        "password_expiry_utc",
        "oauth_refresh_token",
        "other",
    ]
)
record_keys = st.sampled_from(
    list(records.MATCH_KEYS)
    + ["password", "password_expiry_utc", "oauth_refresh_token", "ephemeral", "x"]
)
account_keys = st.sampled_from(
    [
        "host",
        "username",
        "email",
        "tier",
        "token",
        "created_at",
        "session_id",
        "password_expiry_utc",
        "oauth_refresh_token",
        "x",
    ]
)
credential_objects = st.dictionaries(record_keys, anything, max_size=8)
account_objects = st.dictionaries(account_keys, anything, max_size=9)
configs = st.dictionaries(
    config_keys, anything | st.lists(credential_objects | anything, max_size=4), max_size=8
)
stored_objects = st.dictionaries(
    st.sampled_from(["version", "accounts", "credentials", "other"]),
    anything | st.lists(account_objects | credential_objects | anything, max_size=4),
    max_size=4,
)
queries = st.dictionaries(
    st.sampled_from(list(records.MATCH_KEYS) + ["password"]),
    st.text(max_size=20) | texts,
    max_size=5,
)
# What a file may hold: nothing, garbage, JSON that is no object, or an object.
ABSENT = None
odd_bytes = st.sampled_from(
    [
        b"",
        b"  \n",
        b"\n\t",
        b"[]",
        b"null",
        b'"x"',
        b"1",
        b"{",
        b'{"host": "ht',
        b"\xff\xfe{}",
        b"{}",
    ]
)


def contents(objects):
    return (
        st.none()
        | odd_bytes
        | st.binary(max_size=200)
        | objects.map(lambda obj: json.dumps(obj).encode())
    )


# -- reading the bytes, as the documentation states it ---------------------------------------


def corrupted(raw: bytes | None) -> bool:
    """Not a JSON object, and not empty or blank (which holds nothing)."""
    if raw is None or not raw.strip():
        return False
    try:
        return not isinstance(json.loads(raw.decode("utf-8")), dict)
    except ValueError:
        return True


def host_not_a_url(raw: bytes | None) -> bool:
    """A config.json object whose `host` is there but is no URL (it has no usable login)."""
    if corrupted(raw) or raw is None or not raw.strip():
        return False
    host = json.loads(raw.decode("utf-8")).get("host")
    if host is None or host == "":
        return False
    try:
        hosts.normalise(host)
    except (RexecError, AttributeError):  # AttributeError: not a text at all
        return True
    return False


def earlier_layout(raw: bytes) -> bool:
    """A config.json object with the earlier layout's keys (split on the next write)."""
    return (
        not corrupted(raw)
        and bool(raw.strip())
        and bool(
            {"credentials", "password_expiry_utc", "oauth_refresh_token"} & set(json.loads(raw))
        )
    )


def plant(directory: str, name: str, raw: bytes | None) -> None:
    path = os.path.join(directory, name)
    if raw is None:
        if os.path.lexists(path):
            os.unlink(path)
        return
    with open(path, "wb") as f:
        f.write(raw)
    os.chmod(path, 0o600)


def snapshot(directory: str) -> dict:
    found = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            found[name] = f.read()
    return found


# -- tokens ------------------------------------------------------------------------------------


@SETTINGS
@given(st.text(max_size=200))
def test_token_classifier_never_raises_anything_but_auth_error(text):
    try:
        found = tokens.classify(text)
    except RexecError as exc:
        assert exc.exit_code == 1
        # Always one fixed line: the input is never echoed back.
        assert exc.message in (
            "Invalid token: empty; " + tokens.VALID_FORMS,
            "Invalid token: malformed; " + tokens.VALID_FORMS,
        )
    else:
        assert found in ("api", "jwt")
        tokens.expiry(text)
        assert text not in tokens.redact(text)


# -- loading both files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o700)
        yield directory


@SETTINGS
@given(config=contents(configs), stored=contents(stored_objects))
def test_loading_both_files_reports_the_corrupted_ones_and_never_writes(scratch, config, stored):
    """Whatever the two files hold: load() gives a State, or StorageError (exit 4, "is
    corrupted", naming a corrupted file) exactly when one is corrupted; load_lenient()
    names exactly the corrupted ones; neither writes, creates or moves a file."""
    plant(scratch, "config.json", config)
    plant(scratch, "credentials.json", stored)
    before = snapshot(scratch)
    box = storage.Storage(scratch, lambda line: None)
    bad = [
        path
        for path, raw in ((box.config.path, config), (box.credentials.path, stored))
        if corrupted(raw)
    ]
    event(f"corrupted files: {len(bad)}")
    try:
        state = box.load()
    except StorageError as exc:
        assert exc.exit_code == 4 and "is corrupted" in exc.message, exc.message
        assert bad and any(path in exc.message for path in bad), (exc.message, bad)
    else:
        assert not bad, bad
        assert isinstance(state.config, dict) and isinstance(state.credentials, list)
    lenient, found = box.load_lenient()
    assert found == bad
    assert isinstance(lenient, State)
    assert snapshot(scratch) == before  # reading wrote nothing, made no lock, moved nothing


# -- any objects in both files -----------------------------------------------------------------

FRESH = {"protocol": "https", "host": "fresh.example", "username": "u", "password": "p-fresh"}


def original_credentials(config: dict, stored: dict) -> list:
    """The credential entries both objects hold (credentials.json's, then the earlier
    layout's list in config.json)."""
    found = []
    for holder in (stored, config):
        entries = holder.get("credentials")
        found += entries if isinstance(entries, list) else []
    return found


@SETTINGS
@given(config=configs, stored=stored_objects, query=queries)
def test_any_objects_in_both_files_give_answers_not_crashes(config, stored, query):
    """What a hand-edited file or another tool may put in config.json and credentials.json
    never makes resolve/find/store/erase/log_in crash; a credential stored is found; no
    credential stored earlier is lost by storing another; what would be written is JSON
    that reads back to the same answers."""
    state = State(json.loads(json.dumps(config)), json.loads(json.dumps(stored)))
    try:
        precedence.resolve(state, {}, None, NOW)
    except RexecError as exc:  # a usage error, or config.json's host not being a URL
        assert exc.exit_code == 2 or isinstance(exc, precedence.BadStoredHost), exc
    logins = state.logins()
    assert all(isinstance(account.token, str) and account.token for account, _ in logins)
    assert sum(active for _, active in logins) <= 1
    found = state.find(query, NOW)
    assert found is None or isinstance(found["password"], str)

    before = original_credentials(config, stored)
    state.store(dict(FRESH), NOW)
    answer = state.find({k: FRESH[k] for k in ("protocol", "host", "username")}, NOW)
    assert answer is not None and answer["password"] == FRESH["password"]
    lost = [
        entry
        for entry in before
        if entry not in state.credentials
        and not (isinstance(entry, dict) and records.same_slot(entry, FRESH))
    ]
    assert not lost, lost

    written = (
        json.loads(json.dumps(state.config_content())),
        json.loads(json.dumps(state.stored_content())),
    )
    again = State(*written)
    assert again.find({"protocol": "https", "host": "fresh.example"}, NOW) == answer
    assert again.stored_content()["version"] == 1
    assert [a.token for a, _ in again.logins()] == [a.token for a, _ in state.logins()]

    state.erase(query)
    json.dumps([state.config_content(), state.stored_content()])

    account = Account(
        "https://rexec.pipeops.io",
        "me",
        "rexec_" + "c" * 64,
        "me@example.com",
        "pro",
        created_at=NOW,
    )
    assert changes(state, lambda s: s.log_in(account))
    assert state.active().token == account.token and state.logins()[0][0].token == account.token
    stored_after = state.stored_content()
    assert account.token in [a["token"] for a in stored_after["accounts"]]
    assert "credentials" not in state.config_content()  # the earlier layout is split
    json.dumps([state.config_content(), stored_after])


# -- the commands on any pair of files ---------------------------------------------------------

REQUEST = "protocol=https\nhost=fresh.example\nusername=u\npassword=p-fresh\n"
QUERY = "protocol=https\nhost=fresh.example\n"
ANSWER_KEYS = set(protocol.CREDENTIAL_KEYS)
MOVED = "warning: configuration file was corrupted; moved it to "


def check_protocol_output(out: str) -> None:
    *lines, last = out.split("\n")  # git splits at "\n" only
    assert last == ""
    for line in lines:
        key, sep, _ = line.partition("=")
        assert sep and key in ANSWER_KEYS, line


@SETTINGS
@given(
    config=contents(configs),
    stored=contents(stored_objects),
    operation=st.sampled_from(["get", "store", "erase"]),
    query=queries,
)
def test_credential_commands_on_any_files_exit_as_documented(
    home, config, stored, operation, query
):
    """`rexec-credential get|store|erase` with either file absent, empty, garbage, not an
    object or any object: get exits 0, or 4 exactly when a file is corrupted (one line,
    nothing on stdout); store and erase exit 0 with at most the one line that names where a
    corrupted credentials.json went; config.json keeps its bytes unless it held the earlier
    layout (then it is split, whole JSON); what is written is whole JSON, 0600; after a
    store, get answers the stored credential unless config.json is corrupted."""
    directory = home / ".rexec"
    directory.mkdir(mode=0o700, exist_ok=True)
    for entry in os.listdir(directory):
        os.unlink(directory / entry)
    plant(str(directory), "config.json", config)
    plant(str(directory), "credentials.json", stored)
    config_bad, stored_bad = corrupted(config), corrupted(stored)
    lines = "".join(f"{k}={v}\n" for k, v in query.items() if not {"\n", "\0"} & set(v))
    request = {"get": lines, "store": REQUEST, "erase": lines or QUERY}[operation]
    result = call("credential", [operation], stdin=request.encode())
    event(f"{operation}: exit {result.code}")
    assert "Traceback" not in result.err
    if operation == "get":
        # An empty request asks for the effective host: a config.json host that is no URL
        # is then reported, as a corrupted file is.
        asks_effective = not records.erasable(protocol.parse(lines.encode()))
        bad_host = asks_effective and host_not_a_url(config)
        assert result.code == (4 if config_bad or stored_bad or bad_host else 0), result
        if result.code:
            assert result.out == "" and result.err.count("\n") == 1, result
            assert "is corrupted" in result.err or "rexec-logout" in result.err
        else:
            assert result.err == "", result
            check_protocol_output(result.out)
        assert snapshot(directory) == {
            k: v
            for k, v in (("config.json", config), ("credentials.json", stored))
            if v is not None
        }
        return
    assert result.code == 0 and result.out == "", result
    assert result.err.count("\n") <= 1, result
    if result.err:
        assert result.err.startswith(MOVED + str(directory / "credentials.json.corrupt-"))
        assert stored_bad
    after = snapshot(directory)
    if config is not None and after.get("config.json") != config:
        # Rewritten only to split the earlier layout, or (erase) to drop a matching login.
        assert not config_bad and (earlier_layout(config) or operation == "erase"), after
        # A config.json left with no key at all is removed (absent and {} read alike).
        before, now = json.loads(config), json.loads(after.get("config.json", "{}"))
        dropped = {"credentials", "password_expiry_utc", "oauth_refresh_token"}
        if operation == "erase":
            dropped |= {"token", "username", "email", "tier"}
        assert {k: v for k, v in before.items() if k not in dropped} == {
            k: v for k, v in now.items() if k not in dropped
        }
    for name in ("config.json", "credentials.json"):
        if name in after and after[name] != (config if name == "config.json" else stored):
            assert isinstance(json.loads(after[name]), dict), name
            assert os.stat(directory / name).st_mode & 0o777 == 0o600, name
    if operation == "store" and not config_bad:
        got = call("credential", ["get"], stdin=QUERY.encode())
        assert got.code == 0 and "password=p-fresh\n" in got.out, got


# -- hostile contents that crash the commands (explicit cases) ----------------------------------


@pytest.mark.parametrize("name, shape", [("config.json", "array"), ("credentials.json", "object")])
def test_json_nested_too_deeply_is_corrupted_not_a_crash(home, name, shape):
    """A file of 100,000 nested arrays or objects (200 kB) is not a JSON object the
    commands can use: get reports it as corrupted (exit 4, one line); a store, which must
    write credentials.json, moves that one aside and leaves config.json alone; logout
    removes a corrupted config.json; never a traceback."""
    directory = home / ".rexec"
    directory.mkdir(mode=0o700)
    depth = 100_000
    raw = (
        "[" * depth + "]" * depth if shape == "array" else '{"a":' * depth + "1" + "}" * depth
    ).encode()
    plant(str(directory), name, raw)
    get = run_bin("rexec-credential", "get", stdin=QUERY)
    assert "Traceback" not in get.err, get.err[-300:]
    assert get.code == 4 and get.err.count("\n") == 1 and "is corrupted" in get.err, get
    store = run_bin("rexec-credential", "store", stdin=REQUEST)
    assert "Traceback" not in store.err and store.code == 0, store.err[-300:]
    backups = sorted(directory.glob(f"{name}.corrupt-*"))
    if name == "credentials.json":
        assert [b.read_bytes() for b in backups] == [raw]
        assert json.loads((directory / name).read_text())["credentials"]
    else:
        assert backups == [] and (directory / name).read_bytes() == raw
    logout = run_bin("rexec-logout", "--local")
    assert "Traceback" not in logout.err and logout.code == 0, logout.err[-300:]
    if name == "config.json":
        assert not (directory / name).exists()


@pytest.mark.parametrize("exp", ["1e999", "NaN"])
def test_a_stored_jwt_whose_exp_is_not_a_finite_number_is_answered_not_a_crash(home, exp):
    """git may store any password; one shaped like a JWT whose `exp` claim is Infinity or
    NaN (JSON as Python reads it) is answered by get like any other (exit 0, no stderr)."""
    header, payload = segment_raw('{"alg": "HS256"}'), segment_raw('{"exp": ' + exp + "}")
    token = f"{header}.{payload}.c2ln"
    assert tokens.kind(token) == "jwt", token
    stored = run_bin(
        "rexec-credential",
        "store",
        stdin=f"protocol=https\nhost=odd.example\nusername=u\npassword={token}\n",
    )
    assert (stored.code, stored.err) == (0, ""), stored
    got = run_bin("rexec-credential", "get", stdin="protocol=https\nhost=odd.example\n")
    assert "Traceback" not in got.err, got.err[-300:]
    assert (got.code, got.err) == (0, "") and f"password={token}\n" in got.out, got


def segment_raw(text: str) -> str:
    """One base64url segment of exactly this JSON text (json.dumps cannot write 1e999)."""
    import base64

    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def test_a_stored_expiry_beyond_the_clock_does_not_crash_whoami(standin, config_path):
    """git hands `store` the password_expiry_utc another helper gave it; a far one (here
    999999999999999999, which git's timestamp type holds) for the active login must not
    crash rexec-whoami, which shows the expiry (exit 0, no traceback)."""
    token = standin.mint_api_token("johndoe")
    assert run_bin("rexec-login", "--token", "-", "--host", standin.url, stdin=token).code == 0
    protocol_name, host = standin.url.split("://")
    stored = run_bin(
        "rexec-credential",
        "store",
        stdin=f"protocol={protocol_name}\nhost={host}\nusername=johndoe\n"
        f"password={token}\npassword_expiry_utc=999999999999999999\n",
    )
    assert (stored.code, stored.err) == (0, ""), stored
    result = run_bin("rexec-whoami")
    assert "Traceback" not in result.err, result.err[-400:]
    assert result.code == 0 and "Username: johndoe" in result.out, result
