"""Parallel jobs sharing one HOME (issue 6): every process at once, nothing lost or resurrected.

One config file is seeded, then every process is started with subprocess.Popen before any
of them is given its input, so they all contend for the lock together: `rexec-credential
store` (each its own host and user), `erase` (each a seeded credential nobody re-stores),
`get` (each a seeded credential nobody touches, through both executable names) and
`rexec-login --token -` against the stand-in (each a user of its own, API token or JWT).
The end state is therefore deterministic except for which login ended up active; every
other login must be kept under "credentials" (store.set_active keeps a previous login of
another user). The children run under umask 000 to prove the modes do not come from it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time

from conftest import BIN_DIR

from . import rounds

PROCESSES = rounds(full=200, ci=60)
KINDS = ("store", "store", "erase", "get", "login")  # 40% store, 20% each of the others
SEEDED_HOST = "https://rexec.pipeops.io"
SEEDED_TOKEN = "rexec_" + "5eed" * 16
FOREIGN_KEY = {"x-other-tool": {"keep": True, "n": 7}}


def credential_input(protocol: str, host: str, username: str, password: str | None = None
                     ) -> bytes:
    lines = [f"protocol={protocol}", f"host={host}", f"username={username}"]
    if password is not None:
        lines.append(f"password={password}")
    return ("\n".join(lines) + "\n\n").encode()


def as_tuple(record: dict) -> tuple:
    return tuple(record.get(k) for k in ("protocol", "host", "username", "password"))


def seed(config_path, keep: list, doomed: list) -> None:
    """The config before the jobs start: an active login elsewhere, kept and doomed records."""
    data = {
        "host": SEEDED_HOST, "token": SEEDED_TOKEN, "username": "seeded",
        "email": "seeded@example.com", "tier": "free",
        "credentials": [dict(zip(("protocol", "host", "username", "password"), r))
                        for r in keep + doomed],
        **FOREIGN_KEY,
    }
    config_path.parent.mkdir(mode=0o700)
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
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
                procs.append(subprocess.Popen([str(BIN_DIR / argv[0]), *argv[1:]],
                                              stdin=subprocess.PIPE, stdout=out, stderr=err,
                                              env=env))
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


def test_parallel_processes_on_one_home_lose_no_credential(standin, config_path, tmp_path,
                                                           record_property):
    """Figure: 200 processes (--full; 60 in CI) started at once on one HOME under umask 000 —
    80/24 store, 40/12 erase, 40/12 get, 40/12 login — end with 0 lost credentials, 0 erased
    ones back, 0 torn files, 0 tracebacks (every stderr empty), config 0600 in a 0700 dir."""
    jobs, keep, doomed, logins = plan(standin, PROCESSES)
    seed(config_path, keep, doomed)
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
            if as_tuple(answer) != expect or set(answer) != {"protocol", "host", "username",
                                                             "password"}:
                problems.append(f"get {expect[1]} answered {out!r}")
        elif kind == "login" and out != f"✓ Logged in as {expect} ({expect}@example.com)\n":
            problems.append(f"login {expect} printed {out!r}")
    assert not problems, "\n".join(problems[:20])

    data = json.loads(config_path.read_text())  # parses: no torn or interleaved write
    assert data["x-other-tool"] == FOREIGN_KEY["x-other-tool"]  # unknown keys survive
    assert data["host"] == standin.url
    assert data["token"] in logins, "the active login is none of the logged-in tokens"
    active_user = logins[data["token"]]
    assert (data["username"], data["email"], data["tier"]) == (
        active_user, f"{active_user}@example.com", "pro")

    protocol, hostport = standin.url.split("://")
    expected = set(keep)
    expected |= {jobs[n][3] for n in range(len(jobs)) if jobs[n][0] == "store"}
    expected |= {(protocol, hostport, user, token) for token, user in logins.items()
                 if token != data["token"]}
    expected.add(("https", "rexec.pipeops.io", "seeded", SEEDED_TOKEN))
    stored = [as_tuple(r) for r in data["credentials"]]
    lost = expected - set(stored)
    back = set(stored) & set(doomed)
    assert not lost, f"{len(lost)} credentials lost: {sorted(lost)[:5]}"
    assert not back, f"{len(back)} erased credentials came back"
    assert set(stored) == expected and len(stored) == len(expected), "unexpected or duplicated"

    directory = config_path.parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(os.listdir(directory)) == ["config.json", "config.json.lock"]  # no temp files
    for name in ("config.json", "config.json.lock"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name

    # Every request reached the stand-in itself and succeeded.
    assert all(e["status"] == 200 and e["host_header"] == hostport for e in standin.log)
    assert {e["user"] for e in standin.log} == set(logins.values())

    counts = {k: sum(1 for j in jobs if j[0] == k) for k in ("store", "erase", "get", "login")}
    summary = (f"concurrency: {len(jobs)} processes at once ({counts}) in {elapsed:.1f} s: "
               f"{len(stored)} credentials, 0 lost, 0 resurrected, 0 torn, 0 tracebacks")
    record_property("figures", summary)
    print(summary)


def test_parallel_writers_under_a_umask_that_masks_owner_write_keep_every_mode(config_path,
                                                                                tmp_path):
    """Figure: 20 stores at once under umask 0277 all succeed and leave config, lock 0600 and
    the directory 0700 (run as root the failed reopen cannot show, so the lock's mode does)."""
    records = [("https", f"u{i}.example.com", f"u{i}", f"p{i}") for i in range(20)]
    jobs = [("store", ["rexec-credential", "store"], credential_input(*r), r) for r in records]
    iodir = tmp_path / "io"
    iodir.mkdir()
    procs = launch_all(jobs, iodir, dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), 0o277)
    assert wait_all(procs, budget=60) == [0] * len(jobs)
    assert not any((iodir / f"{n}.err").read_bytes() for n in range(len(jobs)))
    data = json.loads(config_path.read_text())
    assert {as_tuple(r) for r in data["credentials"]} == set(records)
    assert stat.S_IMODE(config_path.parent.stat().st_mode) == 0o700
    for name in ("config.json", "config.json.lock"):
        assert stat.S_IMODE((config_path.parent / name).stat().st_mode) == 0o600, name
