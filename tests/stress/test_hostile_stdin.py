"""Hostile standard input to every executable, run for real as subprocesses.

Each executable gets 500 payloads with --full (the README's figure), 60 otherwise, from
a seeded random.Random: random bytes, valid requests mutated (bit flips, truncation,
NUL, CR and invalid UTF-8 inserted, lines over 65535 bytes, `=`-less and duplicate
lines, extra line breaks) and random, mutated or genuine tokens. After every run: no
traceback, an exit status from the command's documented set (and the one its input
calls for), stderr at most one line when non-zero, and config.json and credentials.json
each absent or whole JSON with mode 0600 (never a partial write). Both files seeded with
sentinel entries (the active login in config.json; its account, another login and
credentials in credentials.json) before the credential runs are byte-for-byte unchanged
by `get`, and their sentinels survive `store`/`erase` of unrelated hosts.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote_to_bytes

import pytest
from conftest import run_bin

from rexec_credential import protocol
from rexec_credential.errors import ProtocolError

from . import rounds

N = rounds(full=500, ci=60)
WORKERS = 4  # subprocesses at a time: keeps both cores busy while others wait on I/O

SENTINEL_TOKEN = "rexec_" + "5e" * 32
SENTINEL_RECORDS = [
    {
        "protocol": "https",
        "host": "sentinel-two.example",
        "username": "alice",
        "password": "pw-sentinel-2",
    },
    {
        "protocol": "http",
        "host": "127.0.0.1:9",
        "path": "sentinel.git",
        "username": "bob",
        "password": "pw-sentinel-3",
        "password_expiry_utc": 4102444800,
    },
]
SENTINEL_LOGIN = {
    "host": "https://sentinel.example",
    "token": SENTINEL_TOKEN,
    "username": "sentinel",
    "email": "sentinel@example.com",
    "tier": "pro",
}
SENTINEL_CONFIG = {**SENTINEL_LOGIN, "sentinel_unknown_key": {"kept": [1, 2, 3]}}
SENTINEL_ACCOUNTS = [
    {**SENTINEL_LOGIN, "created_at": 1_700_000_000},
    {
        "host": "https://sentinel-other.example",
        "token": "rexec_" + "07" * 32,
        "username": "other",
        "email": "other@example.com",
        "tier": "free",
        "created_at": 1_700_000_000,
    },
]
# A copy of the active login's token that git stored for another path: logout removes it.
COPY_OF_TOKEN = {
    "protocol": "https",
    "host": "sentinel-two.example",
    "username": "copy",
    "password": SENTINEL_TOKEN,
}


def sentinel_credentials(records: list) -> dict:
    return {
        "version": 1,
        "sentinel_unknown_key": {"kept": "too"},
        "accounts": SENTINEL_ACCOUNTS,
        "credentials": records,
    }


def seed_sentinels(directory, records: list) -> None:
    """Both files as rexec-login and rexec-credential store leave them (0600 in 0700)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    for name, data in (
        ("config.json", SENTINEL_CONFIG),
        ("credentials.json", sentinel_credentials(records)),
    ):
        (directory / name).write_text(json.dumps(data, indent=2))
        (directory / name).chmod(0o600)


SENTINEL_HOSTS = (b"sentinel.example", b"sentinel-two.example", b"127.0.0.1:9")
# Unrelated entries seeded beside the sentinels, for erase to find (and remove).
UNRELATED_RECORDS = [
    {"protocol": "https", "host": "victim.example", "username": f"user{i}", "password": "pw"}
    for i in range(3)
] + [{"protocol": "https", "host": "git.example.com:8443", "username": "eve", "password": "pw"}]

# Requests git (or something pretending to be git) could send; mutated below.
UNRELATED = [
    b"protocol=https\nhost=victim.example\n",
    b"protocol=https\nhost=victim.example\nusername=eve\npassword=secret-1\n",
    b"url=https://eve:pw@git.example.com:8443/org/repo.git\n",
    b"protocol=http\nhost=127.0.0.1:8080\npath=repo.git\nusername=u\npassword=p\n"
    b"password_expiry_utc=4102444800\noauth_refresh_token=r\n",
    b"capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=victim.example\n"
    b'username=mallory\npassword=pw\nwwwauth[]=Basic realm="x"\rhost=sentinel.example\n'
    b"wwwauth[]=Bearer\x0bhost=sentinel-two.example\n\n",
    b"protocol=https\nhost=victim.example\nusername=u\npassword=p\nephemeral=1\n",
    b"protocol=https\r\nhost=victim.example\r\nusername=crlf\r\npassword=p\r\n\r\n",
    b"protocol=https\nhost=victim.example\nusername=old\npassword=p\npassword_expiry_utc=1000\n",
    b"quit=1\nprotocol=https\nhost=victim.example\n",
    b"protocol=https\nhost=victim.example\npath=a/b\nusername=\npassword=\n",
]
SENTINEL_QUERIES = [  # for get only: it must answer them and still write nothing
    b"protocol=https\nhost=sentinel.example\n",
    b"protocol=https\nhost=sentinel-two.example\nusername=alice\n",
    b"url=http://127.0.0.1:9/sentinel.git\n",
    b"",
]
BAD_UTF8 = [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"]
HUGE = [65524, 65525, 65534, 65535, 70000, 150000]  # around git's 65535-byte line limit
TRACEBACK = re.compile(r"Traceback|^\s+File \"", re.M)


# -- payloads ---------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three of: bit flip, truncation, NUL/CR/bad UTF-8/newline insertion, a line
    over 65535 bytes, an `=`-less line, a duplicated line."""
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(
            [
                "bit_flip",
                "truncate",
                "nul",
                "cr",
                "bad_utf8",
                "huge_line",
                "no_equals",
                "duplicate",
                "newline",
            ]
        )
        at = rng.randint(0, len(data))
        lines = data.split(b"\n")
        if op == "bit_flip" and data:
            i = rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        elif op == "truncate":
            data = data[:at]
        elif op in ("nul", "cr", "bad_utf8", "newline"):
            blob = {"nul": b"\0", "cr": b"\r", "newline": b"\n"}.get(op) or rng.choice(BAD_UTF8)
            data = data[:at] + blob + data[at:]
        elif op == "huge_line":
            prefix = rng.choice([b"wwwauth[]=", b"password=", b"host=", b"x"])
            lines.insert(rng.randint(0, len(lines)), prefix + b"A" * rng.choice(HUGE))
            data = b"\n".join(lines)
        elif op == "no_equals":
            lines.insert(rng.randint(0, len(lines)), rng.choice([b"garbage", b"host", b" "]))
            data = b"\n".join(lines)
        elif op == "duplicate":
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            data = b"\n".join(lines)
    return data


def random_token(rng: random.Random) -> bytes:
    """Token-shaped text: right or wrong length, alphabet, segments, whitespace."""
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    b64 = alnum + "-_"
    shape = rng.choice(["api", "jwt", "text"])
    if shape == "api":
        body = "".join(rng.choice(alnum) for _ in range(rng.choice([0, 31, 32, 64, 65, 200])))
        text = "rexec_" + body
    elif shape == "jwt":
        text = ".".join(
            "".join(rng.choice(b64) for _ in range(rng.randint(0, 40)))
            for _ in range(rng.choice([2, 3, 3, 4]))
        )
    else:
        text = "".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(0, 80)))
    return text.encode("utf-8", "surrogatepass") + rng.choice([b"", b"\n", b"\r\n", b"  \n"])


def payloads(seed: int, n: int, bases: list, tokens: list = ()) -> list:
    """n (kind, bytes) pairs: random bytes, valid, mutated, random tokens, given tokens."""
    rng = random.Random(seed)
    kinds = ["random", "valid", "mutated", "mutated", "mutated", "token"]
    if tokens:
        kinds += ["given", "given_mutated"]
    found = []
    for _ in range(n):
        kind = rng.choice(kinds)
        if kind == "random":
            data = rng.randbytes(rng.choice([0, 1, 16, 200, 4000, 70000]))
        elif kind == "valid":
            data = rng.choice(bases)
        elif kind == "mutated":
            data = mutate(rng, rng.choice(bases))
        elif kind == "token":
            data = random_token(rng)
        elif kind == "given":
            data = rng.choice(tokens) + rng.choice([b"", b"\n", b" \r\n"])
        else:
            data = mutate(rng, rng.choice(tokens))
        found.append((kind, data))
    return found


def short(data: bytes) -> str:
    return repr(data[:120]) + (f"... ({len(data)} bytes)" if len(data) > 120 else "")


# -- what git would mean, read independently of the product --------------------------------


def final_host(data: bytes) -> bytes | None:
    """The host a well-formed request names (from host= or url=), None when it names none;
    raises ValueError for a request the wire format refuses (nothing may be written)."""
    host = None
    for raw in data.split(b"\n"):
        if len(raw) >= 65535:
            raise ValueError("line too long")
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line:
            break
        line.decode("utf-8")  # UnicodeDecodeError is a ValueError
        key, sep, value = line.partition(b"=")
        if not sep or b"\0" in line:
            raise ValueError("not key=value")
        if key == b"host":
            host = value
        elif key == b"url":
            _, sep, rest = value.partition(b"://")
            authority = re.split(rb"[/?#]", rest, maxsplit=1)[0]
            host = unquote_to_bytes(authority.rpartition(b"@")[2]) if sep else host
    return host


def may_touch_sentinels(data: bytes) -> bool:
    """True when store/erase of this request could legitimately reach a sentinel entry."""
    try:
        host = final_host(data)
    except ValueError:
        return False  # malformed: nothing may be written at all
    return host is None or any(h in host for h in SENTINEL_HOSTS) or b"sentinel" in host


def expected_credential_status(data: bytes) -> int:
    try:
        protocol.read(io.BytesIO(data))
    except ProtocolError:
        return 2
    return 0


# -- checks shared by every run --------------------------------------------------------------


def check_config(path) -> dict | None:
    """Absent, or whole JSON (an object) with mode 0600: never a partial write."""
    try:
        raw = path.read_bytes()
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    assert mode == 0o600, oct(mode)
    data = json.loads(raw)
    assert isinstance(data, dict)
    return data


def check_common(result, allowed: set, label: str, stderr_lines_before: int = 0) -> None:
    assert not TRACEBACK.search(result.err), f"{label}: {result.err[-2000:]}"
    assert result.code in allowed, f"{label}: {result!r}"[:3000]
    if result.code:
        assert result.err.count("\n") <= stderr_lines_before + 1, f"{label}: {result.err!r}"
        assert result.err.endswith("\n")


def check_files(directory) -> tuple:
    """Both files absent or whole JSON objects, 0600: (config, credentials), None if absent."""
    return check_config(directory / "config.json"), check_config(directory / "credentials.json")


def check_sentinels(found: tuple, label: str) -> None:
    config, stored = found
    assert config == SENTINEL_CONFIG, f"{label}: config.json changed"
    for key in ("version", "sentinel_unknown_key", "accounts"):
        assert stored.get(key) == sentinel_credentials([])[key], f"{label}: lost {key}"
    for record in SENTINEL_RECORDS:
        assert record in stored.get("credentials", []), f"{label}: lost {record['host']}"


def snapshot(directory) -> dict:
    """Every file in the directory and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def check_no_leftovers(directory) -> None:
    names = os.listdir(directory)
    assert not [n for n in names if ".tmp-" in n or ".corrupt-" in n], names


def run_all(function, items) -> list:
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(function, items))


def tally(results: list) -> str:
    counts = {}
    for code in results:
        counts[code] = counts.get(code, 0) + 1
    return ", ".join(f"exit {c}: {n}" for c, n in sorted(counts.items()))


# -- rexec-credential / git-credential-rexec ---------------------------------------------------

CREDENTIAL_RUNS = [
    ("rexec-credential", "get"),
    ("rexec-credential", "store"),
    ("rexec-credential", "erase"),
    ("git-credential-rexec", "get"),
]


@pytest.mark.parametrize(
    "executable, operation", CREDENTIAL_RUNS, ids=[f"{e} {o}" for e, o in CREDENTIAL_RUNS]
)
def test_credential_helper_survives_hostile_stdin_and_keeps_the_sentinels(
    config_path, executable, operation
):
    """500 payloads (--full) per operation: exit 0, or 2 exactly for malformed input (one
    stderr line, no output); stdout protocol lines only; get answers the sentinel queries,
    never changes a byte; store/erase of unrelated hosts keep every sentinel; 0 tracebacks,
    0 partial writes."""
    directory = config_path.parent
    seeded_records = UNRELATED_RECORDS + SENTINEL_RECORDS
    seed_sentinels(directory, seeded_records)
    seeded = snapshot(directory)
    writes = operation != "get"
    bases = UNRELATED + ([] if writes else SENTINEL_QUERIES)
    cases = []
    for kind, data in payloads(CREDENTIAL_RUNS.index((executable, operation)), N * 3, bases):
        if len(cases) < N and not (writes and may_touch_sentinels(data)):
            cases.append((kind, data))
    assert len(cases) == N

    def one(case):
        kind, data = case
        label = f"{executable} {operation} <{kind}> {short(data)}"
        result = run_bin(executable, operation, stdin=data)
        check_common(result, {0, 2, 4}, label)
        assert result.code == expected_credential_status(data), f"{label}: {result!r}"[:3000]
        if result.code:
            assert result.out == "" and result.err.startswith("invalid credential input: ")
        else:
            assert result.err == "", label  # git shows stderr on every fetch
            *lines, last = result.out.split("\n")  # git splits at "\n" only
            assert last == "", label
            for line in lines:
                key, sep, _ = line.partition("=")
                assert sep and key in protocol.CREDENTIAL_KEYS, label
            assert writes is False or result.out == "", label
            if kind == "valid" and data in SENTINEL_QUERIES[:3]:
                assert "password=" in result.out, label
        current = check_files(directory)
        if writes:
            check_sentinels(current, label)
        else:
            assert snapshot(directory) == seeded, label
        return result.code

    codes = run_all(one, cases)
    final = check_files(directory)
    kept = len(final[1]["credentials"])
    print(
        f"\n{executable} {operation}: {len(codes)} payloads, {tally(codes)}; "
        f"{len(seeded_records)} stored credentials before, {kept} after"
    )
    assert len(codes) == N and 2 in codes and 0 in codes
    check_sentinels(final, "after the run")
    check_no_leftovers(directory)
    if operation == "store":  # the unrelated requests were stored, beside the sentinels
        assert kept > len(seeded_records)
    if operation == "erase":  # and erased, around the sentinels
        assert kept < len(seeded_records)


# -- rexec-login --token - and the port-taken manual path -----------------------------------


@pytest.fixture
def login_tokens(standin):
    """Genuine tokens (valid for the stand-in) and revoked ones, as bytes."""
    good = [
        standin.mint_api_token("johndoe"),
        standin.mint_api_token("janedoe"),
        standin.mint_jwt("johndoe"),
        standin.mint_jwt("janedoe"),
    ]
    revoked = [standin.mint_api_token("janedoe"), standin.mint_jwt("johndoe")]
    for token in revoked:
        standin.revoke(token)
    expired = [standin.mint_jwt("janedoe", exp=1_000_000_000)]
    return [t.encode() for t in good], [t.encode() for t in revoked + expired]


def login_cases(seed: int, good: list, bad: list) -> list:
    cases = payloads(seed, N, [b"\n", b" \n", b"-\n", b"rexec_\n"] + UNRELATED, good + bad)
    rng = random.Random(seed + 100)
    # Some genuine tokens as they are, so that logins also succeed and write.
    for i in rng.sample(range(N), max(3, N // 10)):
        cases[i] = ("genuine", rng.choice(good) + rng.choice([b"", b"\n", b"\r\n"]))
    return cases


def expect_login(kind: str, data: bytes, good: list, manual: bool) -> set:
    line = data.split(b"\n", 1)[0] if manual else data[:65536]
    token = line.strip()
    if token in good:
        return {0}
    if kind in ("given_mutated", "given"):  # a flipped bit may leave an equivalent token
        return {0, 1}
    return {1}


@pytest.mark.parametrize("manual", [False, True], ids=["--token -", "port taken, pasted"])
def test_login_survives_hostile_stdin(standin, config_path, login_tokens, manual):
    """500 payloads (--full) each to `rexec-login --token -` and to the port-taken manual
    login: genuine tokens log in (0), everything else is a one-line failure (1: malformed,
    not UTF-8, rejected, revoked, expired, cancelled); 0 tracebacks, 0 partial writes."""
    good, bad = login_tokens
    cases = login_cases(10 + manual, good, bad)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = str(squatter.getsockname()[1])
    argv = (
        ["--host", standin.url, "--port", port, "--timeout", "5"]
        if manual
        else ["--token", "-", "--host", standin.url]
    )

    def one(case):
        kind, data = case
        label = f"rexec-login {'manual' if manual else '--token -'} <{kind}> {short(data)}"
        result = run_bin("rexec-login", *argv, stdin=data)
        warned = 0
        if manual:
            first = "Couldn't start local server: address already in use\n"
            assert result.err.startswith(first), label
            assert "Paste your token here: " in result.out, label
            warned = 2  # the busy port, and the hint at --port 0
        check_common(result, {0, 1, 2, 3}, label, stderr_lines_before=warned)
        assert result.code in expect_login(kind, data, good, manual), f"{label}: {result!r}"
        if result.code == 0:
            assert "✓ Logged in as " in result.out and result.err.count("\n") == warned
        else:
            assert result.err.count("\n") == warned + 1, label
        for token in good + bad:
            assert token.decode() not in result.out + result.err, label
        check_files(config_path.parent)
        return result.code

    try:
        codes = run_all(one, cases)
    finally:
        squatter.close()
    print(
        f"\nrexec-login {'manual' if manual else '--token -'}: {len(codes)} payloads, "
        f"{tally(codes)}"
    )
    assert len(codes) == N and 0 in codes and 1 in codes
    config, stored = check_files(config_path.parent)
    assert config and config.get("username") in ("johndoe", "janedoe")
    assert config["token"].encode() in good
    # Every login is an account: the one active, and at most one per user (replaced).
    logged = [(a["username"], a["token"].encode()) for a in stored["accounts"]]
    assert config["token"].encode() in [t for _, t in logged]
    assert all(t in good for _, t in logged) and len(logged) == len({u for u, _ in logged})
    check_no_leftovers(config_path.parent)


# -- rexec-whoami and rexec-logout ignore stdin --------------------------------------------------


def test_whoami_ignores_hostile_stdin(standin, config_path):
    """500 payloads (--full) on stdin to `rexec-whoami`: every run answers exactly as with
    no input (exit 0, the same profile block), the config unchanged; 0 tracebacks."""
    token = standin.mint_api_token("janedoe")
    assert run_bin("rexec-login", "--token", "-", "--host", standin.url, stdin=token).code == 0
    seeded = snapshot(config_path.parent)
    reference = run_bin("rexec-whoami")
    assert reference.code == 0 and "janedoe" in reference.out
    cases = payloads(20, N, UNRELATED + [token.encode()], [token.encode()])

    def one(case):
        kind, data = case
        label = f"rexec-whoami <{kind}> {short(data)}"
        result = run_bin("rexec-whoami", stdin=data)
        check_common(result, {0, 1, 3, 4}, label)
        assert (result.code, result.out, result.err) == (0, reference.out, ""), label
        assert snapshot(config_path.parent) == seeded, label
        return result.code

    codes = run_all(one, cases)
    print(f"\nrexec-whoami: {len(codes)} payloads, {tally(codes)}")
    assert len(codes) == N


def test_logout_ignores_hostile_stdin(tmp_path):
    """500 payloads (--full) on stdin to `rexec-logout`, each in a HOME holding the sentinel
    files: exit 0, `✓ Logged out` the sentinel login (its API token noted as still valid),
    config.json gone, the login's token gone from credentials.json (its account and a
    copy git stored), the other login and every other credential kept, nothing else in
    ~/.rexec touched; 0 tracebacks."""
    cases = payloads(30, N, UNRELATED, [SENTINEL_TOKEN.encode()])
    out = (
        "✓ Logged out sentinel (sentinel@example.com) on https://sentinel.example "
        "(1 other login remains)\n"
    )
    err = (
        "note: the API token of sentinel stays valid until you revoke it at "
        "https://sentinel.example/settings (API Tokens)\n"
    )

    def one(indexed):
        index, (kind, data) = indexed
        home = tmp_path / f"home-{index}"
        directory = home / ".rexec"
        directory.mkdir(parents=True, mode=0o700)
        seed_sentinels(directory, [COPY_OF_TOKEN] + SENTINEL_RECORDS)
        (directory / "neighbour").write_bytes(b"not ours")
        label = f"rexec-logout <{kind}> {short(data)}"
        result = run_bin("rexec-logout", stdin=data, env={**os.environ, "HOME": str(home)})
        check_common(result, {0}, label)
        assert (result.out, result.err) == (out, err), label
        config, stored = check_files(directory)
        assert config is None, label
        assert stored == sentinel_credentials(SENTINEL_RECORDS) | {
            "accounts": SENTINEL_ACCOUNTS[1:]
        }, label
        assert SENTINEL_TOKEN.encode() not in (directory / "credentials.json").read_bytes()
        assert (directory / "neighbour").read_bytes() == b"not ours", label
        assert set(os.listdir(directory)) == {
            "neighbour",
            "config.json.lock",
            "credentials.json",
        }, label
        return result.code

    codes = run_all(one, list(enumerate(cases)))
    print(f"\nrexec-logout: {len(codes)} payloads, {tally(codes)}")
    assert len(codes) == N
