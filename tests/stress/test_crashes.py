"""A laptop that dies mid-write: SIGKILL at random moments, never a torn file.

Each round starts one writer — `rexec-credential store` of a new host or `rexec-credential
erase` of a seeded credential (both write credentials.json only), or `rexec-login --token
-` against the stand-in (credentials.json, then config.json) — waits until it is about to
work (blocked reading its input, which is then given; for a login, the moment the service
has answered), sleeps a random 0–80 ms drawn from a seeded random.Random (squared uniform:
denser in the first milliseconds, where the rewrite is; a failure names its round and
reproduces) and SIGKILLs it. credentials.json is seeded with 1,000 credentials (~170 kB)
so that each rewrite takes milliseconds and kills land before, inside and after it.

After every kill: both files parse and each is exactly the old or the new version (a
store or erase leaves config.json byte for byte; a login may be caught between its two
renames, never with config.json new and credentials.json old: config.json never names a
login that credentials.json does not hold), modes are 0600/0700, and a `rexec-credential
store` run at once (5 s timeout) of a new token for the active login — which rewrites
both files — succeeds, which proves no stale lock, writes, and removes the killed
writer's `.config.json.tmp-*` and `.credentials.json.tmp-*`.

Aimed variants: kills the instant a writer's temporary file exists (polled; for a login,
either file's), a write that runs out of space (RLIMIT_FSIZE: EFBIG, as a full disk's
ENOSPC) in either file, and a logout after a login killed with its token half-written.
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
CONFIG_TMP = ".config.json.tmp-"
CREDENTIALS_TMP = ".credentials.json.tmp-"
SEEDED_TOKEN = "rexec_" + "0ld" * 20
FOREIGN = {"x-other-tool": {"kept": True}}


def record(protocol: str, host: str, username: str, password: str) -> dict:
    return {"protocol": protocol, "host": host, "username": username, "password": password}


def credential_input(rec: dict) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in rec.items()).encode() + b"\n"


class Stamp:
    """Equal to any created_at a writer may give during this test (Unix seconds)."""

    def __init__(self) -> None:
        self.since = int(time.time()) - 1

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, int)
            and not isinstance(other, bool)
            and self.since <= other <= int(time.time()) + 1
        )

    def __repr__(self) -> str:
        return f"<created_at since {self.since}>"


class Home:
    """~/.rexec: both files, as the tests read and model them."""

    def __init__(self, config_path) -> None:
        self.directory = config_path.parent
        self.config = config_path
        self.credentials = config_path.parent / "credentials.json"

    def read(self, where: str = "") -> tuple:
        """(config object, credentials object): both parse, 0600 in a 0700 directory."""
        assert stat.S_IMODE(self.directory.stat().st_mode) == 0o700, f"{where}: directory mode"
        found = []
        for path in (self.config, self.credentials):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{where}: {path.name} mode"
            raw = path.read_bytes()
            try:
                found.append(json.loads(raw))
            except ValueError:
                raise AssertionError(
                    f"{where}: torn {path.name} ({len(raw)} bytes): {raw[:80]!r}"
                ) from None
        config, stored = found
        # config.json never names a login that credentials.json does not hold.
        assert any(
            (a["host"], a["token"]) == (config["host"], config["token"]) for a in stored["accounts"]
        ), f"{where}: the active login is no account"
        return config, stored

    def leftovers(self) -> list:
        return sorted(
            n for n in os.listdir(self.directory) if n.startswith((CONFIG_TMP, CREDENTIALS_TMP))
        )


def seed(home: Home, standin) -> tuple:
    active = {
        "host": standin.url,
        "token": SEEDED_TOKEN,
        "username": "seeded",
        "email": "seeded@example.com",
        "tier": "free",
    }
    config = {**active, **FOREIGN}
    stored = {
        "version": 1,
        **FOREIGN,
        "accounts": [{**active, "created_at": 1_700_000_000}],
        "credentials": [
            record("https", f"seed{i}.example.com", f"su{i}", f"{i:04d}" * 16)
            for i in range(SEEDED_RECORDS)
        ],
    }
    home.directory.mkdir(mode=0o700)
    for path, data in ((home.config, config), (home.credentials, stored)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
    return config, stored


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


class Writer:
    """One round's writer: what it runs, its input, and the files it would produce."""

    def __init__(self, kind: str, argv: list, data: bytes, new: tuple, gate: str) -> None:
        self.kind, self.argv, self.data, self.new, self.gate = kind, argv, data, new, gate


def store_writer(old: tuple, n: int) -> Writer:
    rec = record("https", f"round{n}.example.com", f"ru{n}", f"rp{n}-" + "s" * 40)
    config, stored = copy.deepcopy(old)
    stored["credentials"] = [rec] + stored["credentials"]
    return Writer(
        "store", ["rexec-credential", "store"], credential_input(rec), (config, stored), "stdin"
    )


def erase_writer(old: tuple, rng: random.Random) -> Writer:
    victims = [r for r in old[1]["credentials"] if r["host"].startswith("seed")]
    victim = rng.choice(victims)
    config, stored = copy.deepcopy(old)
    stored["credentials"] = [r for r in stored["credentials"] if r != victim]
    return Writer(
        "erase", ["rexec-credential", "erase"], credential_input(victim), (config, stored), "stdin"
    )


def login_writer(old: tuple, n: int, standin) -> Writer:
    user = f"crash{n}"
    standin.add_user(user, f"{user}@example.com", tier="pro")
    token = standin.mint_api_token(user)
    config, stored = copy.deepcopy(old)
    fields = {
        "host": standin.url,
        "token": token,
        "username": user,
        "email": f"{user}@example.com",
        "tier": "pro",
    }
    config.update(fields)
    # The login becomes an account; the one it replaces already is one (checked by read()).
    stored["accounts"] = [{**fields, "created_at": Stamp()}] + stored["accounts"]
    return Writer(
        "login",
        ["rexec-login", "--token", "-", "--host", standin.url],
        token.encode(),
        (config, stored),
        "service",
    )


def renew(old: tuple, n: int) -> tuple:
    """The request of a store of a new token for the active login, and the files after it:
    config.json's token and that login's account change (both files are written)."""
    config, stored = copy.deepcopy(old)
    token = "rexec_" + f"{n:04x}" * 16
    protocol, hostport = config["host"].split("://")
    request = record(protocol, hostport, config["username"], token)
    account = next(
        a
        for a in stored["accounts"]
        if (a["host"], a["token"]) == (config["host"], config["token"])
    )
    account["token"] = config["token"] = token
    return credential_input(request), (config, stored)


def kill_during(writer: Writer, delay: float, standin) -> int:
    """Run the writer, SIGKILL it `delay` seconds after its gate; its exit status."""
    answered = len(standin.requests_to("/api/tokens/validate"))
    proc = subprocess.Popen(
        [str(BIN_DIR / writer.argv[0]), *writer.argv[1:]],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if writer.gate == "stdin":
            wait_until(lambda: blocked_on_stdin(proc.pid) or proc.poll() is not None)
            proc.stdin.write(writer.data)
            proc.stdin.close()
        else:
            proc.stdin.write(writer.data)
            proc.stdin.close()
            wait_until(
                lambda: (
                    len(standin.requests_to("/api/tokens/validate")) > answered
                    or proc.poll() is not None
                )
            )
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


def next_store(home: Home, current: tuple, n: int, where: str) -> tuple:
    """The next command after a kill: a store of a new token for the active login, which
    must not be blocked by the dead writer's lock, must write both files and must remove
    the dead writer's temporary files; the files after it."""
    request, expected = renew(current, n)
    result = run_bin("rexec-credential", "store", stdin=request, timeout=5)
    assert (result.code, result.out, result.err) == (0, "", ""), f"{where}: {result}"
    found = home.read(where)
    assert found == expected, f"{where}: the next store lost something"
    assert not home.leftovers(), f"{where}: temporary files left: {home.leftovers()}"
    return found


def test_sigkill_mid_write_leaves_old_or_new_file_and_no_stale_lock(
    standin, config_path, record_property
):
    """Figure: 200 SIGKILLs (--full; 40 in CI) at random moments of store/erase/login writes:
    0 torn files (each file each time exactly the old or the new version, config.json never
    ahead of credentials.json), 0 wrong modes, 0 stale locks (the next store always succeeds
    within 5 s), 0 temporary files left after the next write. The summary line counts kills
    that landed before the first rename (with a temporary file written or not), between a
    login's two renames, and after the last rename."""
    rng = random.Random(SEED)
    home = Home(config_path)
    current = seed(home, standin)
    outcomes = {"old": 0, "old+tmp": 0, "between": 0, "new": 0, "finished": 0}
    kinds = {"store": 0, "erase": 0, "login": 0}
    started = time.monotonic()
    for n in range(ROUNDS):
        op = rng.choice(("store", "erase", "login"))
        kinds[op] += 1
        delay = MAX_DELAY * rng.random() ** 2  # 0-80 ms, denser where the write is
        if op == "store":
            writer = store_writer(current, n)
        elif op == "erase":
            writer = erase_writer(current, rng)
        else:
            writer = login_writer(current, n, standin)
        config_before = home.config.read_bytes()
        code = kill_during(writer, delay, standin)
        where = f"round {n} ({op}, killed after {delay * 1000:.1f} ms, seed {SEED})"

        config, stored = found = home.read(where)
        tmp = home.leftovers()
        (old_config, old_stored), (new_config, new_stored) = current, writer.new
        assert config in (old_config, new_config), f"{where}: config.json neither old nor new"
        assert stored in (old_stored, new_stored), f"{where}: credentials.json neither old nor new"
        if op != "login":
            assert home.config.read_bytes() == config_before, f"{where}: config.json touched"
        if code == 0:
            outcomes["finished"] += 1
            assert found == writer.new, f"{where}: finished but wrote something else"
        elif found == writer.new:
            outcomes["new"] += 1
        elif stored == new_stored:
            assert op == "login" and config == old_config, where
            outcomes["between"] += 1
        else:
            assert found == current, f"{where}: config.json written before credentials.json"
            outcomes["old+tmp" if tmp else "old"] += 1
        for prefix in (CONFIG_TMP, CREDENTIALS_TMP):
            assert len([t for t in tmp if t.startswith(prefix)]) <= 1, (
                f"{where}: temporary files accumulate: {tmp}"
            )

        current = next_store(home, found, n, where)

    assert stat.S_IMODE((config_path.parent / "config.json.lock").stat().st_mode) == 0o600
    elapsed = time.monotonic() - started
    summary = (
        f"crashes: {ROUNDS} SIGKILLs ({kinds['store']} store, {kinds['erase']} erase, "
        f"{kinds['login']} login) in {elapsed:.1f} s — killed before the first rename "
        f"{outcomes['old']}, mid-write with a temporary file {outcomes['old+tmp']}, "
        f"between a login's two renames {outcomes['between']}, after the last rename "
        f"{outcomes['new']}, finished first {outcomes['finished']}; "
        "0 torn, 0 wrong modes, 0 stale locks, 0 temporary files left"
    )
    record_property("figures", summary)
    print(summary)
    killed = outcomes["old"] + outcomes["old+tmp"] + outcomes["between"] + outcomes["new"]
    assert killed > 0, "no kill landed at all"


SIGHTED_ROUNDS = rounds(full=51, ci=12)


def kill_when_temp_file_appears(writer: Writer, home: Home, prefix: str) -> str | None:
    """Run the writer and SIGKILL it the moment its temporary file `prefix<pid>` shows;
    the file's name. None when the writer got past that file's rename first.

    The window between creating the temporary file and renaming it lasts a few ms (write
    and fsync); polling the directory catches it nearly always.
    """
    proc = subprocess.Popen(
        [str(BIN_DIR / writer.argv[0]), *writer.argv[1:]],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.stdin.write(writer.data)
    proc.stdin.close()
    own = f"{prefix}{proc.pid}"  # not a leftover of an earlier writer
    seen = False
    while proc.poll() is None and not seen:
        seen = own in os.listdir(home.directory)
    proc.kill()
    proc.wait()
    if seen and proc.returncode == -signal.SIGKILL and (home.directory / own).exists():
        return own
    return None


def test_sigkill_while_the_temporary_file_exists_never_tears_the_config(
    standin, config_path, record_property
):
    """Figure: 51 SIGKILLs (--full; 12 in CI) aimed at the instant a writer's temporary file
    exists — a store's credentials.json one, a login's credentials.json one and a login's
    config.json one in turn (at least half are caught there; the summary says how many):
    every caught kill leaves both files complete (old, or for a login caught at config.json,
    credentials.json new and config.json old) and a 0600 temporary file, which the next
    store removes — 0 torn, 0 temporary files left behind."""
    home = Home(config_path)
    current = seed(home, standin)
    aims = [("store", CREDENTIALS_TMP), ("login", CREDENTIALS_TMP), ("login", CONFIG_TMP)]
    caught = {aim: 0 for aim in aims}
    for n in range(SIGHTED_ROUNDS):
        op, prefix = aims[n % len(aims)]
        writer = store_writer(current, n) if op == "store" else login_writer(current, n, standin)
        name = kill_when_temp_file_appears(writer, home, prefix)
        where = f"round {n} ({op}, aimed at {prefix}<pid>)"
        config, stored = found = home.read(where)
        assert config in (current[0], writer.new[0]), f"{where}: config.json neither old nor new"
        assert stored in (current[1], writer.new[1]), f"{where}: credentials.json neither"
        if name is not None:
            caught[(op, prefix)] += 1
            if prefix == CREDENTIALS_TMP:
                assert found == current, f"{where}: killed before its first rename, files changed"
            else:
                assert (config, stored) == (current[0], writer.new[1]), (
                    f"{where}: killed between the renames, not in between"
                )
            assert stat.S_IMODE((home.directory / name).stat().st_mode) == 0o600
        current = next_store(home, found, n, where)
    total = sum(caught.values())
    summary = (
        f"crashes: {total} of {SIGHTED_ROUNDS} SIGKILLs caught a writer with its "
        f"temporary file open (store at credentials.json {caught[aims[0]]}, login at "
        f"credentials.json {caught[aims[1]]}, login at config.json {caught[aims[2]]}): "
        "0 torn, 0 temporary files left after the next write"
    )
    record_property("figures", summary)
    print(summary)
    assert total >= SIGHTED_ROUNDS // 2, summary
    assert all(caught.values()), summary


def run_with_file_size_limit(limit: int, argv: list, data: bytes) -> subprocess.CompletedProcess:
    with_limit = (
        "import os, resource, sys; "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); "
        "os.execv(sys.argv[2], sys.argv[2:])"
    )
    return subprocess.run(
        [sys.executable, "-c", with_limit, str(limit), str(BIN_DIR / argv[0]), *argv[1:]],
        input=data,
        capture_output=True,
        timeout=30,
    )


def test_a_write_that_runs_out_of_space_keeps_the_old_file_and_no_temp_file(config_path, standin):
    """Figure: a store whose credentials.json write hits the file-size limit (EFBIG, as a
    full disk's ENOSPC) exits 4 with one line, leaves both files byte for byte and no
    temporary file."""
    home = Home(config_path)
    seed(home, standin)
    before = (home.config.read_bytes(), home.credentials.read_bytes())
    new = record("https", "full.example.com", "fu", "fp-secret")
    proc = run_with_file_size_limit(
        len(before[1]) // 2, ["rexec-credential", "store"], credential_input(new)
    )
    err = proc.stderr.decode()
    assert proc.returncode == 4 and err.count("\n") == 1 and "cannot write" in err, err
    assert str(home.credentials) in err
    assert "Traceback" not in err and not proc.stdout
    assert (home.config.read_bytes(), home.credentials.read_bytes()) == before
    assert not home.leftovers()


def test_a_login_whose_config_write_runs_out_of_space_keeps_config_json(config_path, standin):
    """A login whose credentials.json write fits but whose config.json write hits the limit
    (config.json made large by another tool's key): exit 4 with one line naming config.json,
    config.json byte for byte, credentials.json whole (the login recorded as an account, as
    it is before config.json names it), no temporary file."""
    home = Home(config_path)
    config, stored = seed(home, standin)
    stored["credentials"] = stored["credentials"][:3]
    config["x-other-tool"] = {"kept": True, "pad": "x" * 200_000}
    for path, data in ((home.config, config), (home.credentials, stored)):
        path.write_text(json.dumps(data, indent=2))
    before = home.config.read_bytes()
    token = standin.mint_api_token("johndoe")
    proc = run_with_file_size_limit(
        100_000, ["rexec-login", "--token", "-", "--host", standin.url], token.encode()
    )
    err = proc.stderr.decode()
    assert proc.returncode == 4 and err.count("\n") == 1 and "cannot write" in err, err
    assert str(home.config) in err and "Traceback" not in err
    assert home.config.read_bytes() == before
    after = json.loads(home.credentials.read_bytes())
    assert after["credentials"] == stored["credentials"]
    assert [a["token"] for a in after["accounts"]] in ([SEEDED_TOKEN], [token, SEEDED_TOKEN])
    assert not home.leftovers()


@pytest.mark.parametrize(
    "prefix", [CREDENTIALS_TMP, CONFIG_TMP], ids=["at credentials.json", "at config.json"]
)
def test_logout_after_a_killed_login_leaves_no_token_on_disk(standin, config_path, prefix):
    """Figure: after a login killed with its token half-written to a temporary file,
    rexec-logout leaves 0 files holding its token — but credentials.json when the login
    got that far: a login killed at its config.json write is recorded as an account, which
    the plain logout (of the active login) keeps and `rexec-logout --all` removes."""
    home = Home(config_path)
    current = seed(home, standin)
    for attempt in range(50):
        writer = login_writer(current, attempt, standin)
        token = writer.data.decode()
        name = kill_when_temp_file_appears(writer, home, prefix)
        # Caught after it wrote the token (not between creating the file and writing to it).
        if name is not None and token.encode() in (home.directory / name).read_bytes():
            break
        current = home.read(f"attempt {attempt}")
    else:
        pytest.skip("no login could be caught with its token half-written")

    def holding() -> list:
        return sorted(
            p.name
            for p in home.directory.iterdir()
            if p.is_file() and token.encode() in p.read_bytes()
        )

    assert name in holding()
    result = run_bin("rexec-logout")
    assert result.code == 0 and not config_path.exists(), result
    assert not home.leftovers()
    if prefix == CREDENTIALS_TMP:
        assert holding() == [], f"after rexec-logout the token is still on disk in {holding()}"
    else:
        assert holding() == ["credentials.json"]
        assert token in [a["token"] for a in json.loads(home.credentials.read_bytes())["accounts"]]
        result = run_bin("rexec-logout", "--all")
        assert result.code == 0, result
        assert holding() == [], f"after rexec-logout --all the token is on disk in {holding()}"


def test_a_split_of_the_earlier_layout_killed_between_its_renames_duplicates_nothing(config_path):
    """The first write to an earlier one-file config.json (credentials in its `credentials`
    list) splits it: credentials.json is written with those credentials, then config.json
    without them. Killed between the two renames, the credentials are in both files; the
    next write must still keep each credential once (here: 1,000 seeded ones and the two
    stores), not once per file."""
    home = Home(config_path)
    home.directory.mkdir(mode=0o700)
    seeded = [
        record("https", f"seed{i}.example.com", f"su{i}", f"{i:04d}" * 16)
        for i in range(SEEDED_RECORDS)
    ]
    earlier = {
        "host": "https://rexec.pipeops.io",
        "token": SEEDED_TOKEN,
        "username": "seeded",
        "email": "seeded@example.com",
        "tier": "free",
        "credentials": seeded,
        **FOREIGN,
    }
    for attempt in range(30):
        home.config.write_text(json.dumps(earlier, indent=2))
        home.config.chmod(0o600)
        if home.credentials.exists():
            home.credentials.unlink()
        first = record("https", "first.example.com", "fu", f"fp{attempt}")
        writer = Writer(
            "store", ["rexec-credential", "store"], credential_input(first), (), "stdin"
        )
        if kill_when_temp_file_appears(writer, home, CONFIG_TMP) is not None:
            break
    else:
        pytest.skip("no split could be caught between its two renames")
    assert "credentials" in json.loads(home.config.read_bytes())  # still the earlier layout
    assert len(json.loads(home.credentials.read_bytes())["credentials"]) == SEEDED_RECORDS + 1

    then = record("https", "then.example.com", "tu", "tp")
    result = run_bin("rexec-credential", "store", stdin=credential_input(then), timeout=5)
    assert (result.code, result.err) == (0, ""), result
    assert "credentials" not in json.loads(home.config.read_bytes())  # split now
    kept = json.loads(home.credentials.read_bytes())["credentials"]
    slots = [(c["protocol"], c["host"], c["username"]) for c in kept]
    twice = len(slots) - len(set(slots))
    assert twice == 0, f"{twice} credentials kept twice after the split was completed"
    assert sorted(map(json.dumps, kept)) == sorted(map(json.dumps, seeded + [first, then]))
