"""A laptop that dies mid-write (issue 6): SIGKILL at random moments, never a torn file.

Each round starts one writer — `rexec-credential store`, `rexec-credential erase` or
`rexec-login --token -` against the stand-in — waits until it is about to work (blocked
reading its input, which is then given; for a login, the moment the service has answered),
sleeps a random 0–80 ms drawn from a seeded random.Random (squared uniform: denser in the
first milliseconds, where the rewrite is; a failure names its round and reproduces) and
SIGKILLs it. The config is seeded with 1,000 credentials (~170 kB) so that each rewrite
takes milliseconds and kills land before, inside and after it. After every kill: the file
parses and is exactly the old or the new version, modes are 0600/0700, and a
`rexec-credential store` run at once (5 s timeout) succeeds, which proves no stale lock,
writes, and removes the killed writer's `.config.json.tmp-*`.

Two aimed variants: kills the instant a writer's temporary file exists (polled), and a
write that runs out of space (RLIMIT_FSIZE: EFBIG, as a full disk's ENOSPC).
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time

import pytest
from conftest import BIN_DIR, run_bin

from . import rounds

ROUNDS = rounds(full=200, ci=40)
SEED = 20240606
SEEDED_RECORDS = 1000
MAX_DELAY = 0.080
TMP_PREFIX = ".config.json.tmp-"
SEEDED_TOKEN = "rexec_" + "0ld" * 20


def record(protocol: str, host: str, username: str, password: str) -> dict:
    return {"protocol": protocol, "host": host, "username": username, "password": password}


def credential_input(rec: dict) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in rec.items()).encode() + b"\n"


def seed(config_path, standin) -> dict:
    data = {
        "host": standin.url, "token": SEEDED_TOKEN, "username": "seeded",
        "email": "seeded@example.com", "tier": "free",
        "credentials": [record("https", f"seed{i}.example.com", f"su{i}", f"{i:04d}" * 16)
                        for i in range(SEEDED_RECORDS)],
        "x-other-tool": {"kept": True},
    }
    config_path.parent.mkdir(mode=0o700)
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    return data


def blocked_on_stdin(pid: int) -> bool:
    """True once the process sleeps in read(0, ...) — it has started and wants its input."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        if "pipe_read" in wchan or "pipe_wait" in wchan:
            return True
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields[:2] in (["0", "0x0"], ["63", "0x0"])  # read(0, …) on x86-64 / arm64


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the writer never got ready")
        time.sleep(0.0005)


def check_file(config_path, where: str = "") -> dict:
    """The config parses, is 0600 in a 0700 directory; its object."""
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600, f"{where}: config mode"
    assert stat.S_IMODE(config_path.parent.stat().st_mode) == 0o700, f"{where}: directory mode"
    raw = config_path.read_bytes()
    try:
        return json.loads(raw)
    except ValueError:
        raise AssertionError(f"{where}: torn config ({len(raw)} bytes): {raw[:80]!r}") from None


def leftovers(config_path) -> list:
    return [n for n in os.listdir(config_path.parent) if n.startswith(TMP_PREFIX)]


class Writer:
    """One round's writer: what it runs, its input, and the file it would produce."""

    def __init__(self, argv: list, data: bytes, new: dict, gate: str) -> None:
        self.argv, self.data, self.new, self.gate = argv, data, new, gate


def store_writer(old: dict, n: int) -> Writer:
    rec = record("https", f"round{n}.example.com", f"ru{n}", f"rp{n}-" + "s" * 40)
    new = copy.deepcopy(old)
    new["credentials"] = [rec] + new["credentials"]
    return Writer(["rexec-credential", "store"], credential_input(rec), new, "stdin")


def erase_writer(old: dict, rng: random.Random) -> Writer:
    victims = [r for r in old["credentials"] if r["host"].startswith("seed")]
    victim = rng.choice(victims)
    new = copy.deepcopy(old)
    new["credentials"] = [r for r in new["credentials"] if r != victim]
    return Writer(["rexec-credential", "erase"], credential_input(victim), new, "stdin")


def login_writer(old: dict, n: int, standin) -> Writer:
    user = f"crash{n}"
    standin.add_user(user, f"{user}@example.com", tier="pro")
    token = standin.mint_api_token(user)
    protocol, hostport = standin.url.split("://")
    new = copy.deepcopy(old)
    previous = record(protocol, hostport, old["username"], old["token"])
    new.update(host=standin.url, token=token, username=user, email=f"{user}@example.com",
               tier="pro")
    new["credentials"] = [previous] + new["credentials"]  # set_active keeps the old login
    return Writer(["rexec-login", "--token", "-", "--host", standin.url], token.encode(), new,
                  "service")


def kill_during(writer: Writer, delay: float, standin) -> int:
    """Run the writer, SIGKILL it `delay` seconds after its gate; its exit status."""
    answered = len(standin.requests_to("/api/tokens/validate"))
    proc = subprocess.Popen([str(BIN_DIR / writer.argv[0]), *writer.argv[1:]],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        if writer.gate == "stdin":
            wait_until(lambda: blocked_on_stdin(proc.pid) or proc.poll() is not None)
            proc.stdin.write(writer.data)
            proc.stdin.close()
        else:
            proc.stdin.write(writer.data)
            proc.stdin.close()
            wait_until(lambda: len(standin.requests_to("/api/tokens/validate")) > answered
                       or proc.poll() is not None)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        err = proc.stderr.read().decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode in (0, -signal.SIGKILL), (writer.argv, proc.returncode, err)
    assert not err, (writer.argv, err)
    return proc.returncode


def test_sigkill_mid_write_leaves_old_or_new_file_and_no_stale_lock(standin, config_path,
                                                                     record_property):
    """Figure: 200 SIGKILLs (--full; 40 in CI) at random moments of store/erase/login writes:
    0 torn files (each time exactly the old or the new version), 0 wrong modes, 0 stale locks
    (the next store always succeeds within 5 s), 0 temporary files left after the next write.
    The summary line counts kills that landed before the rename, with a temporary file
    half-written, and after the rename."""
    rng = random.Random(SEED)
    current = seed(config_path, standin)
    outcomes = {"old": 0, "old+tmp": 0, "new": 0, "finished": 0}
    started = time.monotonic()
    for n in range(ROUNDS):
        op = rng.choice(("store", "erase", "login"))
        delay = MAX_DELAY * rng.random() ** 2  # 0-80 ms, denser where the write is
        if op == "store":
            writer = store_writer(current, n)
        elif op == "erase":
            writer = erase_writer(current, rng)
        else:
            writer = login_writer(current, n, standin)
        code = kill_during(writer, delay, standin)
        where = f"round {n} ({op}, killed after {delay * 1000:.1f} ms, seed {SEED})"

        found = check_file(config_path, where)
        tmp = leftovers(config_path)
        if code == 0:
            outcomes["finished"] += 1
            assert found == writer.new, f"{where}: finished but wrote something else"
        elif found == writer.new:
            outcomes["new"] += 1
        else:
            assert found == current, f"{where}: the file is neither the old nor the new version"
            outcomes["old+tmp" if tmp else "old"] += 1
        assert len(tmp) <= 1, f"{where}: temporary files accumulate: {tmp}"
        current = found

        # The next command is never blocked by the dead writer's lock, and cleans up after it.
        after = record("https", f"after{n}.example.com", f"au{n}", f"ap{n}-" + "a" * 40)
        result = run_bin("rexec-credential", "store", stdin=credential_input(after), timeout=5)
        assert (result.code, result.out, result.err) == (0, "", ""), f"{where}: {result}"
        current["credentials"] = [after] + current["credentials"]
        assert check_file(config_path, where) == current, f"{where}: the next store lost something"
        assert not leftovers(config_path), f"{where}: the next writer left temporary files"

    assert stat.S_IMODE((config_path.parent / "config.json.lock").stat().st_mode) == 0o600
    elapsed = time.monotonic() - started
    summary = (f"crashes: {ROUNDS} SIGKILLs in {elapsed:.1f} s — killed before the rename "
               f"{outcomes['old']}, mid-write with a temporary file {outcomes['old+tmp']}, "
               f"after the rename {outcomes['new']}, finished first {outcomes['finished']}; "
               "0 torn, 0 wrong modes, 0 stale locks, 0 temporary files left")
    record_property("figures", summary)
    print(summary)
    assert outcomes["old"] + outcomes["old+tmp"] + outcomes["new"] > 0, "no kill landed at all"


SIGHTED_ROUNDS = rounds(full=50, ci=10)


def kill_when_temp_file_appears(writer: Writer, config_path) -> str | None:
    """Run the writer and SIGKILL it the moment its temporary file shows; the file's name.

    The window between creating `.config.json.tmp-PID` and renaming it lasts a few ms
    (write and fsync of the seeded file); polling the directory catches it nearly always.
    None when the writer got past the rename first.
    """
    directory = config_path.parent
    proc = subprocess.Popen([str(BIN_DIR / writer.argv[0]), *writer.argv[1:]],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    proc.stdin.write(writer.data)
    proc.stdin.close()
    own = f"{TMP_PREFIX}{proc.pid}"  # not a leftover of an earlier writer
    seen = False
    while proc.poll() is None and not seen:
        seen = own in os.listdir(directory)
    proc.kill()
    proc.wait()
    if seen and proc.returncode == -signal.SIGKILL and (directory / own).exists():
        return own
    return None


def test_sigkill_while_the_temporary_file_exists_never_tears_the_config(standin, config_path,
                                                                          record_property):
    """Figure: 50 SIGKILLs (--full; 10 in CI) aimed at the instant a writer's temporary file
    exists (store and login alternately; at least half are caught there, the summary says how
    many): every caught kill leaves the complete old file and a 0600 temporary file, which the
    next store removes — 0 torn, 0 temporary files left behind."""
    current = seed(config_path, standin)
    caught = 0
    for n in range(SIGHTED_ROUNDS):
        writer = (store_writer(current, n) if n % 2 else login_writer(current, n, standin))
        name = kill_when_temp_file_appears(writer, config_path)
        found = check_file(config_path, f"round {n}")
        assert found in (current, writer.new), f"round {n}: neither the old nor the new file"
        current = found
        if name is None:
            continue  # it got past the rename before it was seen
        caught += 1
        assert check_file(config_path) == current, f"round {n}: killed mid-write, file changed"
        assert stat.S_IMODE((config_path.parent / name).stat().st_mode) == 0o600
        after = record("https", f"after{n}.example.com", f"au{n}", f"ap{n}")
        result = run_bin("rexec-credential", "store", stdin=credential_input(after), timeout=5)
        assert (result.code, result.out, result.err) == (0, "", ""), result
        current["credentials"] = [after] + current["credentials"]
        assert check_file(config_path) == current
        assert not leftovers(config_path)
    summary = (f"crashes: {caught} of {SIGHTED_ROUNDS} SIGKILLs caught a writer with its "
               "temporary file open: 0 torn, 0 temporary files left after the next write")
    record_property("figures", summary)
    print(summary)
    assert caught >= SIGHTED_ROUNDS // 2, summary


def test_a_write_that_runs_out_of_space_keeps_the_old_file_and_no_temp_file(config_path,
                                                                             standin):
    """Figure: a store whose write hits the file-size limit (EFBIG, as a full disk's ENOSPC)
    exits 4 with one line, leaves the config byte for byte and no temporary file."""
    seed(config_path, standin)
    before = config_path.read_bytes()
    limit = len(before) // 2
    new = record("https", "full.example.com", "fu", "fp-secret")
    with_limit = ("import os, resource, sys; "
                  "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); "
                  "os.execv(sys.argv[2], sys.argv[2:])")
    proc = subprocess.run([sys.executable, "-c", with_limit, str(limit),
                           str(BIN_DIR / "rexec-credential"), "store"],
                          input=credential_input(new), capture_output=True, timeout=30)
    err = proc.stderr.decode()
    assert proc.returncode == 4 and err.count("\n") == 1 and "cannot write" in err, err
    assert "Traceback" not in err and not proc.stdout
    assert config_path.read_bytes() == before
    assert not leftovers(config_path)


def test_logout_after_a_killed_login_leaves_no_token_on_disk(standin, config_path):
    """Figure: after a login killed mid-write, rexec-logout leaves 0 files holding its token."""
    seed(config_path, standin)
    for attempt in range(50):
        writer = login_writer(json.loads(config_path.read_bytes()), attempt, standin)
        token = writer.data.decode()
        name = kill_when_temp_file_appears(writer, config_path)
        # Caught after it wrote the token (not between creating the file and writing to it).
        if name is not None and token.encode() in (config_path.parent / name).read_bytes():
            break
    else:
        pytest.skip("no login could be caught with its token half-written")
    result = run_bin("rexec-logout")
    assert result.code == 0 and not config_path.exists()
    holding = [p.name for p in config_path.parent.iterdir()
               if p.is_file() and token.encode() in p.read_bytes()]
    assert not holding, f"after rexec-logout the token is still on disk in {holding}"
