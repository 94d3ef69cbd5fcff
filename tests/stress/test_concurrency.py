"""Parallel jobs sharing one HOME: every process at once, nothing lost or resurrected.

~/.rexec is seeded, then every process is started with subprocess.Popen before any of
them is given its input, so they all contend for the one lock together: `rexec-credential
store` (each its own host and user: credentials.json only), `erase` (each a seeded
credential nobody re-stores), `get` (each a seeded credential nobody touches, through both
executable names) and `rexec-login --token -` against the stand-in (each a user of its own,
API token or JWT: config.json and credentials.json). The end state is therefore
deterministic except for which login ended up active: config.json holds that login's five
fields (and a key another tool put there), credentials.json every credential stored and
none erased, and every login as an account — the seeded one it replaced included.

Run twice: on the two-file layout, and on the earlier one-file layout (a config.json
holding the credentials and the active login's expiry and refresh token), which the first
writer splits while the others wait for the lock: nothing may be lost or duplicated by
the split either. The children run under umask 000 to prove the modes do not come from it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import pytest
from conftest import BIN_DIR
from helpers import accounts, credentials, read_json

from rexec_credential import tokens

from . import rounds

PROCESSES = rounds(full=200, ci=60)
KINDS = ("store", "store", "erase", "get", "login")  # 40% store, 20% each of the others
SEEDED_HOST = "https://rexec.pipeops.io"
SEEDED_TOKEN = "rexec_" + "5eed" * 16
FOREIGN_KEY = {"x-other-tool": {"keep": True, "n": 7}}


def credential_input(protocol: str, host: str, username: str, password: str | None = None) -> bytes:
    lines = [f"protocol={protocol}", f"host={host}", f"username={username}"]
    if password is not None:
        lines.append(f"password={password}")
    return ("\n".join(lines) + "\n\n").encode()


def as_tuple(record: dict) -> tuple:
    return tuple(record.get(k) for k in ("protocol", "host", "username", "password"))


SEEDED_EXPIRY = 4102444800
SEEDED_REFRESH = "seeded-refresh"
CONFIG_KEYS = {"host", "token", "username", "email", "tier", *FOREIGN_KEY}


def seed(config_path, keep: list, doomed: list, layout: str) -> None:
    """~/.rexec before the jobs start: an active login elsewhere, kept and doomed records."""
    active = {
        "host": SEEDED_HOST,
        "token": SEEDED_TOKEN,
        "username": "seeded",
        "email": "seeded@example.com",
        "tier": "free",
    }
    records = [dict(zip(("protocol", "host", "username", "password"), r)) for r in keep + doomed]
    config_path.parent.mkdir(mode=0o700)
    if layout == "earlier one file":
        config = {
            **active,
            "credentials": records,
            "password_expiry_utc": SEEDED_EXPIRY,
            "oauth_refresh_token": SEEDED_REFRESH,
            **FOREIGN_KEY,
        }
    else:
        config = {**active, **FOREIGN_KEY}
        account = {
            **active,
            "created_at": 1_700_000_000,
            "password_expiry_utc": SEEDED_EXPIRY,
            "oauth_refresh_token": SEEDED_REFRESH,
        }
        write_new(
            config_path.parent / "credentials.json",
            {"version": 1, **FOREIGN_KEY, "accounts": [account], "credentials": records},
        )
    write_new(config_path, config)


def write_new(path, data: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)


def plan(standin, count: int) -> tuple[list, list, list, dict]:
    """Jobs (kind, argv, stdin, expectation); the seeded records; the login tokens."""
    jobs, keep, doomed, logins = [], [], [], {}
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        if kind == "store":
            record = ("https", f"new{i}.example.com", f"nu{i}", f"np{i}-secret")
            jobs.append((kind, ["rexec-credential", "store"], credential_input(*record), record))
        elif kind == "erase":
            record = ("https", f"doomed{i}.example.com", f"du{i}", f"dp{i}-secret")
            doomed.append(record)
            jobs.append((kind, ["rexec-credential", "erase"], credential_input(*record), record))
        elif kind == "get":
            record = ("https", f"keep{i}.example.com", f"ku{i}", f"kp{i}-secret")
            keep.append(record)
            name = "git-credential-rexec" if i % 2 else "rexec-credential"
            jobs.append((kind, [name, "get"], credential_input(*record[:3]), record))
        else:
            user = f"worker{i}"
            standin.add_user(user, f"{user}@example.com", tier="pro")
            token = standin.mint_jwt(user) if i % 2 else standin.mint_api_token(user)
            logins[token] = user
            argv = ["rexec-login", "--token", "-", "--host", standin.url]
            jobs.append((kind, argv, token.encode(), user))
    # Untouched seeded records beyond the ones being read, so a lost rewrite shows.
    keep += [("https", f"still{j}.example.com", f"su{j}", f"sp{j}-secret") for j in range(10)]
    return jobs, keep, doomed, logins


def launch_all(jobs: list, iodir, env: dict, umask: int = 0) -> list:
    """Start every job under `umask`, then hand each its input: they race for the lock."""
    procs = []
    old_umask = os.umask(umask)  # inherited by the children (000: the most permissive)
    try:
        for n, (_, argv, _, _) in enumerate(jobs):
            with open(iodir / f"{n}.out", "wb") as out, open(iodir / f"{n}.err", "wb") as err:
                procs.append(
                    subprocess.Popen(
                        [str(BIN_DIR / argv[0]), *argv[1:]],
                        stdin=subprocess.PIPE,
                        stdout=out,
                        stderr=err,
                        env=env,
                    )
                )
    finally:
        os.umask(old_umask)
    for proc, (_, _, data, _) in zip(procs, jobs):
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died early; its exit status and stderr say why below
    return procs


def wait_all(procs: list, budget: float) -> list:
    deadline = time.monotonic() + budget
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for other in procs:
                if other.poll() is None:
                    other.kill()
                    other.wait()
            raise AssertionError(f"processes still running after {budget} s") from None
    return codes


@pytest.mark.parametrize("layout", ["two files", "earlier one file"])
def test_parallel_processes_on_one_home_lose_no_credential(
    standin, config_path, tmp_path, record_property, layout
):
    """Figure: 200 processes (--full; 60 in CI) started at once on one HOME under umask 000 —
    80/24 store, 40/12 erase, 40/12 get, 40/12 login — end with 0 lost credentials, 0 erased
    ones back, 0 lost logins (each an account, the replaced seeded login too), 0 torn files,
    0 tracebacks (every stderr empty), both files 0600 in a 0700 dir; on both layouts."""
    jobs, keep, doomed, logins = plan(standin, PROCESSES)
    seed(config_path, keep, doomed, layout)
    directory = config_path.parent
    iodir = tmp_path / "io"
    iodir.mkdir()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    codes = wait_all(launch_all(jobs, iodir, env), budget=120)
    elapsed = time.monotonic() - started

    problems = []
    for n, ((kind, argv, _, expect), code) in enumerate(zip(jobs, codes)):
        out = (iodir / f"{n}.out").read_text("utf-8", "replace")
        err = (iodir / f"{n}.err").read_text("utf-8", "replace")
        if code != 0 or err:
            problems.append(f"{' '.join(argv)}: exit {code}, stderr {err!r}")
        elif kind in ("store", "erase") and out:
            problems.append(f"{' '.join(argv)} printed {out!r}")
        elif kind == "get":
            answer = dict(line.split("=", 1) for line in out.splitlines())
            if as_tuple(answer) != expect or set(answer) != {
                "protocol",
                "host",
                "username",
                "password",
            }:
                problems.append(f"get {expect[1]} answered {out!r}")
        elif kind == "login" and out != f"✓ Logged in as {expect} ({expect}@example.com)\n":
            problems.append(f"login {expect} printed {out!r}")
    assert not problems, "\n".join(problems[:20])

    # Both files parse (no torn or interleaved write); config.json is the active login only.
    config = read_json(config_path)
    stored = read_json(directory / "credentials.json")
    assert set(config) == CONFIG_KEYS, sorted(config)  # split, and nothing else added
    assert config["x-other-tool"] == FOREIGN_KEY["x-other-tool"]  # unknown keys survive
    assert config["host"] == standin.url
    assert config["token"] in logins, "the active login is none of the logged-in tokens"
    active_user = logins[config["token"]]
    assert (config["username"], config["email"], config["tier"]) == (
        active_user,
        f"{active_user}@example.com",
        "pro",
    )
    assert stored["version"] == 1
    if layout == "two files":
        assert stored["x-other-tool"] == FOREIGN_KEY["x-other-tool"]

    expected = set(keep) | {jobs[n][3] for n in range(len(jobs)) if jobs[n][0] == "store"}
    kept = [as_tuple(r) for r in credentials(directory)]
    lost = expected - set(kept)
    back = set(kept) & set(doomed)
    assert not lost, f"{len(lost)} credentials lost: {sorted(lost)[:5]}"
    assert not back, f"{len(back)} erased credentials came back"
    assert set(kept) == expected and len(kept) == len(expected), "unexpected or duplicated"

    # Every login is an account (the active one too), and the seeded login it replaced.
    found = accounts(directory)
    expected_logins = {(standin.url, user, token) for token, user in logins.items()}
    expected_logins.add((SEEDED_HOST, "seeded", SEEDED_TOKEN))
    pairs = [(a["host"], a["username"], a["token"]) for a in found]
    missing = expected_logins - set(pairs)
    assert not missing, f"{len(missing)} logins lost: {sorted(missing)[:5]}"
    assert set(pairs) == expected_logins and len(pairs) == len(expected_logins), (
        "unexpected or duplicated accounts"
    )
    for account in found:
        if account["token"] == SEEDED_TOKEN:
            assert (account["email"], account["tier"]) == ("seeded@example.com", "free")
            # The earlier layout's facts about the active login moved into its account.
            assert account["password_expiry_utc"] == SEEDED_EXPIRY
            assert account["oauth_refresh_token"] == SEEDED_REFRESH
            continue
        user = logins[account["token"]]
        assert (account["email"], account["tier"]) == (f"{user}@example.com", "pro")
        assert isinstance(account["created_at"], int)
        sid = tokens.jwt_claims(account["token"]).get("sid")
        assert account.get("session_id") == sid, (user, account.get("session_id"), sid)

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = ["config.json", "config.json.lock", "credentials.json"]
    assert sorted(os.listdir(directory)) == names  # no temporary files, no backups
    for name in names:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name

    # Every request reached the stand-in itself and succeeded.
    protocol, hostport = standin.url.split("://")
    assert all(e["status"] == 200 and e["host_header"] == hostport for e in standin.log)
    assert {e["user"] for e in standin.log} == set(logins.values())

    counts = {k: sum(1 for j in jobs if j[0] == k) for k in ("store", "erase", "get", "login")}
    summary = (
        f"concurrency ({layout}): {len(jobs)} processes at once ({counts}) in "
        f"{elapsed:.1f} s: {len(kept)} credentials and {len(found)} accounts, 0 lost, "
        "0 resurrected, 0 torn, 0 tracebacks"
    )
    record_property("figures", summary)
    print(summary)


def test_parallel_writers_under_a_umask_that_masks_owner_write_keep_every_mode(
    standin, config_path, tmp_path
):
    """Figure: 20 stores and 4 logins at once under umask 0277 all succeed and leave both
    files and the lock 0600 and the directory 0700 (run as root the failed reopen cannot
    show, so the lock's mode does)."""
    records = [("https", f"u{i}.example.com", f"u{i}", f"p{i}") for i in range(20)]
    jobs = [("store", ["rexec-credential", "store"], credential_input(*r), r) for r in records]
    logins = {}
    for i in range(4):
        user = f"masked{i}"
        standin.add_user(user, f"{user}@example.com", tier="pro")
        token = standin.mint_api_token(user)
        logins[token] = user
        jobs.append(
            ("login", ["rexec-login", "--token", "-", "--host", standin.url], token.encode(), user)
        )
    iodir = tmp_path / "io"
    iodir.mkdir()
    procs = launch_all(jobs, iodir, dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), 0o277)
    assert wait_all(procs, budget=60) == [0] * len(jobs)
    assert not any((iodir / f"{n}.err").read_bytes() for n in range(len(jobs)))
    directory = config_path.parent
    assert {as_tuple(r) for r in credentials(directory)} == set(records)
    assert {a["token"]: a["username"] for a in accounts(directory)} == logins
    assert read_json(config_path)["token"] in logins
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("config.json", "credentials.json", "config.json.lock"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
