"""The ~/.rexec directory (rexec_credential.storage, jsonfile): two files under one lock —
modes, atomicity, locking, corruption, permissions, non-regular files, a writer that
rewrites config.json in place, and the earlier one-file layout."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import rexec_cli
from conftest import run_bin
from helpers import NOW, read_json, write_json

from rexec_credential.accounts import Account
from rexec_credential.errors import StorageError
from rexec_credential.precedence import config_directory
from rexec_credential.storage import Storage

DATA = Path(__file__).parent / "data"


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def warnings():
    return []


@pytest.fixture
def box(home, warnings) -> Storage:
    return Storage(config_directory({"HOME": str(home)}), warnings.append)


def put(key, value):
    """A change that sets a config.json key."""

    def change(state):
        state.config[key] = value

    return change


def add(record):
    """A change that stores a git credential."""
    return lambda state: state.store(record, NOW)


CRED = {"protocol": "https", "host": "example.com", "username": "u", "password": "p"}
# A login as the Rexec CLI writes it into config.json.
CLI_LOGIN = {
    "host": "https://rexec.pipeops.io",
    "token": "rexec_" + "c" * 64,
    "username": "cli-user",
    "email": "cli@example.com",
    "tier": "pro",
}


def test_missing_files_load_as_empty(box):
    state = box.load()
    assert state.config == {} and state.accounts == [] and state.credentials == []


def test_modes_are_0600_and_0700_even_with_umask_000(box):
    old = os.umask(0)
    try:
        box.update(put("host", "https://h"))
        box.update(add(CRED))
    finally:
        os.umask(old)
    for path in (box.config.path, box.credentials.path, box.lock_path):
        assert mode(path) == 0o600, path
    assert mode(box.directory) == 0o700


def test_existing_loose_directory_is_set_back_to_0700(box):
    os.makedirs(box.directory, mode=0o755)
    os.chmod(box.directory, 0o755)
    box.update(put("host", "https://h"))
    assert mode(box.directory) == 0o700


def test_config_is_written_as_the_rexec_cli_writes_it(box):
    account = Account(
        "https://rexec.pipeops.io", "johndoe", "rexec_" + "a" * 64, "j@example.com", "pro"
    )
    box.update(lambda state: state.log_in(account))
    # json.MarshalIndent(cfg, "", "  ") of the five fields, in the struct's order.
    assert Path(box.config.path).read_text() == (
        '{\n  "host": "https://rexec.pipeops.io",\n  "token": "' + account.token + '",\n'
        '  "username": "johndoe",\n  "email": "j@example.com",\n  "tier": "pro"\n}'
    )


def test_unknown_keys_are_preserved_in_both_files(box):
    os.makedirs(box.directory, mode=0o700)
    Path(box.config.path).write_text(json.dumps({"host": "https://h", "theme": "dark"}))
    Path(box.credentials.path).write_text(json.dumps({"version": 1, "plugin": {"a": [1]}}))
    box.update(put("token", "t"))
    box.update(add(CRED))
    assert read_json(Path(box.config.path)) == {"host": "https://h", "token": "t", "theme": "dark"}
    assert read_json(Path(box.credentials.path))["plugin"] == {"a": [1]}


def test_no_change_means_no_write(box):
    box.update(put("host", "https://h"))
    box.update(add(CRED))
    files = [Path(box.config.path), Path(box.credentials.path)]
    before = [(f.stat().st_mtime_ns, f.stat().st_ino) for f in files]
    box.update(lambda state: None)
    box.update(add(CRED))  # already stored
    assert [(f.stat().st_mtime_ns, f.stat().st_ino) for f in files] == before


def test_a_credential_for_another_host_leaves_config_json_alone(box):
    box.update(put("host", "https://h"))
    before = os.stat(box.config.path).st_ino
    box.update(add(CRED))
    assert os.stat(box.config.path).st_ino == before


def test_a_change_that_changes_nothing_creates_nothing(box):
    box.update(lambda state: state.erase({"host": "example.com"}))
    assert not os.path.exists(box.directory)


@pytest.mark.parametrize("name", ["config.json", "credentials.json"])
@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe\x00", b'"str"'])
def test_corrupted_file_is_reported_with_the_remedy_on_read(box, name, content):
    os.makedirs(box.directory, mode=0o700)
    path = os.path.join(box.directory, name)
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(StorageError) as info:
        box.load()
    assert info.value.exit_code == 4
    assert f"configuration file {path} is corrupted" in info.value.message
    assert "rexec-logout" in info.value.message and "rexec-login" in info.value.message
    with open(path, "rb") as f:
        assert f.read() == content  # reading never destroys it


@pytest.mark.parametrize("content", [b"", b"  \n"], ids=["empty", "blank"])
def test_an_empty_config_json_that_stays_empty_is_no_login(box, content):
    os.makedirs(box.directory, mode=0o700)
    Path(box.config.path).write_bytes(content)
    assert box.load().active() is None


def test_a_config_json_cut_short_while_it_is_written_is_read_again(box):
    """The Rexec CLI truncates, then writes: a read in between must wait for the write."""
    os.makedirs(box.directory, mode=0o700)
    whole = b'{\n  "host": "https://h",\n  "token": "t"\n}'
    Path(box.config.path).write_bytes(whole[:9])

    def finish():
        time.sleep(0.03)
        with open(box.config.path, "r+b") as f:
            f.write(whole)

    writer = threading.Thread(target=finish)
    writer.start()
    state = box.load()
    writer.join()
    assert state.config == {"host": "https://h", "token": "t"}


def test_a_config_json_that_stays_cut_short_is_corrupted_after_a_moment(box):
    os.makedirs(box.directory, mode=0o700)
    Path(box.config.path).write_bytes(b'{"host": "ht')
    started = time.monotonic()
    with pytest.raises(StorageError, match="is corrupted"):
        box.load()
    assert time.monotonic() - started >= 0.1  # it was given the time a writer needs


def test_corrupted_file_is_moved_to_a_0600_backup_before_a_write(box, warnings):
    os.makedirs(box.directory, mode=0o700)
    with open(box.config.path, "w") as f:
        f.write('{"token": "half-written')
    os.chmod(box.config.path, 0o644)
    box.update(put("host", "https://h"))
    backups = [n for n in os.listdir(box.directory) if n.startswith("config.json.corrupt-")]
    assert len(backups) == 1
    backup = os.path.join(box.directory, backups[0])
    assert mode(backup) == 0o600
    with open(backup) as f:
        assert f.read() == '{"token": "half-written'
    assert box.load().config == {"host": "https://h"}
    assert any(backup in w for w in warnings)


def test_a_corrupted_config_json_is_left_alone_by_a_change_to_credentials(box):
    os.makedirs(box.directory, mode=0o700)
    Path(box.config.path).write_text("{oops")
    box.update(add(CRED))
    assert Path(box.config.path).read_text() == "{oops"
    assert [n for n in os.listdir(box.directory) if ".corrupt-" in n] == []
    assert read_json(Path(box.credentials.path))["credentials"] == [CRED]


def test_set_aside_corrupted_moves_both_to_backups_and_names_them(box, warnings):
    os.makedirs(box.directory, mode=0o700)
    Path(box.config.path).write_text("garbage")
    Path(box.credentials.path).write_text("\x00garbage")
    os.chmod(box.config.path, 0o600)
    os.chmod(box.credentials.path, 0o600)
    box.update(lambda state: None, set_aside_corrupted=True)
    assert not os.path.exists(box.config.path) and not os.path.exists(box.credentials.path)
    backups = sorted(n for n in os.listdir(box.directory) if ".corrupt-" in n)
    assert [b.split(".corrupt-")[0] for b in backups] == ["config.json", "credentials.json"]
    texts = {Path(box.directory, b).read_text() for b in backups}
    assert texts == {"garbage", "\x00garbage"}
    assert all(mode(os.path.join(box.directory, b)) == 0o600 for b in backups)
    assert len(warnings) == 2
    for backup in backups:
        assert sum(os.path.join(box.directory, backup) in w for w in warnings) == 1


def test_a_file_dropped_on_purpose_goes_corrupted_or_not_and_backups_on_request(box, warnings):
    os.makedirs(box.directory, mode=0o700)
    Path(box.config.path).write_text("garbage")
    Path(box.config.path + ".corrupt-20260101T000000").write_text("{}")
    Path(box.credentials.path + ".corrupt-20260101T000000-1").write_text("{}")
    os.mkdir(box.config.path + ".corrupt-a-directory")  # not one of ours: left alone
    Path(box.credentials.path).write_text('{"accounts": [], "credentials": [], "mine": 1}')
    assert box.remove_everything() == 2
    assert not os.path.exists(box.config.path) and not os.path.exists(box.credentials.path)
    assert warnings == []  # dropped on purpose: no backup made, none announced
    assert os.listdir(box.directory) == [] or set(os.listdir(box.directory)) <= {
        "config.json.lock",
        "config.json.corrupt-a-directory",
    }


def test_loose_file_is_warned_about_and_tightened_on_next_write(box, warnings):
    box.update(put("host", "https://h"))
    os.chmod(box.config.path, 0o644)
    box.load()
    assert len(warnings) == 1 and "0644" in warnings[0] and box.config.path in warnings[0]
    box.update(put("tier", "pro"))
    assert mode(box.config.path) == 0o600


def test_loose_mode_is_warned_once_per_command(box, warnings):
    box.update(put("host", "https://h"))
    box.update(add(CRED))
    os.chmod(box.config.path, 0o644)
    os.chmod(box.credentials.path, 0o644)
    box.load()
    box.load()
    assert len(warnings) == 1


@pytest.mark.parametrize("name", ["config.json", "credentials.json"])
def test_symlink_at_either_path_is_not_followed(box, tmp_path, name):
    victim = tmp_path / "victim.json"
    victim.write_text('{"precious": true}')
    os.makedirs(box.directory, mode=0o700)
    os.symlink(victim, os.path.join(box.directory, name))
    with pytest.raises(StorageError, match="symbolic link"):
        box.load()
    with pytest.raises(StorageError, match="symbolic link"):
        box.update(put("token", "t") if name == "config.json" else add(CRED))
    assert victim.read_text() == '{"precious": true}'


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the directory")
def test_directory_owned_by_another_user_is_refused(box):
    os.makedirs(box.directory, mode=0o700)
    os.chown(box.directory, 65534, 65534)
    with pytest.raises(StorageError, match="belongs to another user"):
        box.update(put("token", "t"))
    assert not os.path.exists(box.config.path)


CRASH_WRITER = textwrap.dedent("""
    import os, signal, sys
    from rexec_credential.storage import Storage
    box = Storage(sys.argv[1], lambda line: None)
    os.rename = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # die between write and rename
    def change(state):
        state.config["token"] = "new"
    box.update(change)
""")


def test_crash_between_write_and_rename_leaves_the_old_file_intact(box):
    box.update(put("token", "old"))
    proc = subprocess.run([sys.executable, "-c", CRASH_WRITER, box.directory])
    assert proc.returncode == -9
    assert box.load().config == {"token": "old"}
    box.update(put("token", "next"))  # the lock is not stale and the temp file is cleaned
    assert box.load().config == {"token": "next"}
    assert [n for n in os.listdir(box.directory) if ".tmp-" in n] == []


ADDER = textwrap.dedent("""
    import sys
    from rexec_credential.storage import Storage
    box = Storage(sys.argv[1], lambda line: None)
    n = int(sys.argv[2])
    box.update(lambda state: state.store({"protocol": "https", "host": f"h{n}.example",
                                          "username": "u", "password": "p"}, 0))
""")


def test_twenty_concurrent_writers_lose_no_update(box):
    procs = [
        subprocess.Popen([sys.executable, "-c", ADDER, box.directory, str(n)]) for n in range(20)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * 20
    added = sorted(int(r["host"][1:].split(".")[0]) for r in box.load().credentials)
    assert added == list(range(20))
    assert mode(box.credentials.path) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the file")
def test_file_owned_by_another_user_is_reported_on_read(box, warnings):
    box.update(put("host", "https://h"))
    os.chown(box.config.path, 65534, 65534)
    assert box.load().config == {"host": "https://h"}
    assert len(warnings) == 1 and "belongs to another user (uid 65534)" in warnings[0]


# -- a writer that rewrites config.json in place (the Rexec CLI) --------------------------------


def test_a_config_json_rewritten_during_an_update_is_read_again_not_overwritten(box):
    """Between our read and our rename the Rexec CLI saves another login: the update runs
    again on what it wrote, so its login is kept (as an account) rather than lost."""
    box.update(put("host", "https://rexec.pipeops.io"))
    theirs = dict(CLI_LOGIN)
    rounds = []
    mine = Account("https://rexec.pipeops.io", "johndoe", "rexec_" + "1" * 64)

    def change(state):
        rounds.append(dict(state.config))
        if len(rounds) == 1:  # the Rexec CLI writes while we are between read and rename
            with open(box.config.path, "w") as f:
                f.write(json.dumps(theirs, indent=2))
        state.log_in(mine)

    box.update(change)
    assert len(rounds) == 2 and rounds[1] == theirs
    state = box.load()
    assert state.active().username == "johndoe"
    assert [a.username for a in state.accounts] == ["johndoe", "cli-user"]


# -- the earlier one-file layout -----------------------------------------------------------------


def test_a_config_json_written_by_the_earlier_version_is_split_on_the_next_write(box):
    """tests/data/config-0.1.0.json was written by version 0.1.0's own store code: two
    logins (the first kept in its `credentials` list), credentials for GitHub (expiry,
    refresh token) and another git host (a path), the active login's refresh token and
    expiry beside its fields, and a key someone else added."""
    os.makedirs(box.directory, mode=0o700)
    earlier = (DATA / "config-0.1.0.json").read_text()
    Path(box.config.path).write_text(earlier)
    before = box.load()
    answers = {
        q: before.find(dict(zip(("protocol", "host"), q.split("://"))), NOW)
        for q in (
            "https://rexec.pipeops.io",
            "https://staging.example.com",
            "https://github.com",
            "https://git.example.com",
        )
    }
    assert all(answers.values())
    box.update(lambda state: state.store(CRED, NOW))  # any write splits the layout
    config = read_json(Path(box.config.path))
    assert config == {
        "host": "https://rexec.pipeops.io",
        "token": "rexec_" + "2" * 64,
        "username": "janedoe",
        "email": "jane@example.com",
        "tier": "free",
        "theme": "dark",
    }
    after = box.load()
    for query, answer in answers.items():
        assert after.find(dict(zip(("protocol", "host"), query.split("://"))), NOW) == answer
    assert answers["https://rexec.pipeops.io"]["oauth_refresh_token"] == "rexec-refresh"
    assert len(after.credentials) == 4  # the three earlier ones and the new one


# -- no path of ours may block: a FIFO planted at the lock or a temporary name ----------------


@pytest.mark.parametrize(
    "command",
    [
        ("rexec-credential", "store"),
        ("rexec-login", "--token", "-"),
        ("rexec-logout",),
    ],
    ids=["store", "login", "logout"],
)
def test_a_fifo_at_the_lock_path_is_refused_not_waited_on(standin, home, command):
    directory = home / ".rexec"
    write_json(directory / "config.json", {"host": standin.url, "token": "rexec_" + "a" * 64})
    os.mkfifo(directory / "config.json.lock", 0o600)
    stdin = {
        "rexec-credential": "protocol=https\nhost=example.com\nusername=u\npassword=p\n",
        "rexec-login": standin.mint_api_token("johndoe"),
    }.get(command[0], "")
    argv = command[1:] + (("--host", standin.url) if command[0] == "rexec-login" else ())
    result = run_bin(command[0], *argv, stdin=stdin, timeout=20)
    assert result.code == 4, result
    assert result.err.count("\n") == 1 and "config.json.lock" in result.err
    assert "not a regular file" in result.err
    assert stat.S_ISFIFO(os.lstat(directory / "config.json.lock").st_mode)  # left for the user


@pytest.mark.parametrize("name", [".config.json.tmp-1", ".credentials.json.tmp-1"])
def test_a_fifo_at_a_temporary_name_is_cleared_not_waited_on(home, name):
    directory = home / ".rexec"
    write_json(directory / "config.json", {"host": "https://h"})
    os.mkfifo(directory / name, 0o600)
    result = run_bin(
        "rexec-credential",
        "store",
        stdin="protocol=https\nhost=h\nusername=u\npassword=p\n",
        timeout=20,
    )
    assert (result.code, result.err) == (0, "")
    # The store touches only credentials.json: its temporary names are the ones cleared.
    cleared = name.startswith(".credentials")
    assert os.path.lexists(directory / name) is not cleared


@pytest.mark.parametrize("name", ["config.json", "credentials.json"])
def test_a_fifo_at_either_file_is_refused_not_waited_on(home, name):
    directory = home / ".rexec"
    directory.mkdir(mode=0o700)
    os.mkfifo(directory / name, 0o600)
    for argv, stdin in (
        (["get"], "protocol=https\nhost=h\n"),
        (["store"], "protocol=https\nhost=h\nusername=u\npassword=p\n"),
    ):
        result = run_bin("rexec-credential", *argv, stdin=stdin, timeout=20)
        assert result.code == 4 and "not a regular file" in result.err, result


@pytest.mark.parametrize("name", ["config.json", "credentials.json"])
def test_json_nested_past_the_parsers_depth_is_corrupted_not_a_crash(box, name):
    os.makedirs(box.directory, mode=0o700)
    path = Path(box.directory) / name
    path.write_text("[" * 100_000 + "]" * 100_000)
    path.chmod(0o600)
    with pytest.raises(StorageError, match="is corrupted"):
        box.load()
    box.update(lambda state: None, set_aside_corrupted=True)  # what rexec-logout does
    assert not path.exists()
    assert [n for n in os.listdir(box.directory) if n.startswith(name + ".corrupt-")]


def test_a_split_killed_between_its_renames_keeps_each_credential_once(box):
    """credentials.json was written, config.json still holds the earlier list."""
    entry = {"protocol": "https", "host": "a.example", "username": "u", "password": "p"}
    os.makedirs(box.directory, mode=0o700)
    Path(box.config.path).write_text(json.dumps({"host": "https://h", "credentials": [entry]}))
    Path(box.credentials.path).write_text(json.dumps({"version": 1, "credentials": [entry]}))
    for path in (box.config.path, box.credentials.path):
        os.chmod(path, 0o600)
    box.update(add(CRED))
    assert box.load().credentials == [CRED, entry]


# -- what an update writes: each file whose contents differ from what was read -------------


def traced(home, lines: list) -> Storage:
    return Storage(config_directory({"HOME": str(home)}), lines.append, trace=lines.append)


def fingerprint(path: str) -> tuple:
    """What a rewrite would change: the bytes, the inode (a rename), the mtime."""
    info = os.stat(path)
    return Path(path).read_bytes(), info.st_ino, info.st_mtime_ns


def writes(lines: list) -> list:
    return [line for line in lines if line.startswith(("wrote ", "removed "))]


def test_an_update_that_changes_nothing_writes_nothing(home):
    lines: list = []
    box = traced(home, lines)
    rexec_cli.save(box.directory, **CLI_LOGIN)  # config.json as the Rexec CLI writes it
    assert box.update(add(CRED)) is True
    before = [fingerprint(f.path) for f in (box.config, box.credentials)]
    lines.clear()
    for change in [
        add(CRED),  # already stored
        lambda state: state.erase({"protocol": "https", "host": "nowhere.example"}),
        put("host", CLI_LOGIN["host"]),  # the value it already has
        lambda state: state.config.update(dict(CLI_LOGIN)),  # the same fields again
        lambda state: None,
    ]:
        assert box.update(change) is False
    assert writes(lines) == []
    assert [fingerprint(f.path) for f in (box.config, box.credentials)] == before


def test_an_update_writes_only_the_file_it_changed(home):
    lines: list = []
    box = traced(home, lines)
    rexec_cli.save(box.directory, **CLI_LOGIN)
    config = fingerprint(box.config.path)
    assert box.update(add(CRED)) is True
    assert writes(lines) == [f"wrote {box.credentials.path}"]
    assert fingerprint(box.config.path) == config  # the file the Rexec CLI races us on
    stored = fingerprint(box.credentials.path)
    lines.clear()
    assert box.update(put("theme", "dark")) is True
    assert writes(lines) == [f"wrote {box.config.path}"]
    assert fingerprint(box.credentials.path) == stored


def test_a_config_json_left_empty_is_removed_and_nothing_is_created_for_nothing(home):
    lines: list = []
    box = traced(home, lines)
    assert box.update(lambda state: state.erase(CRED)) is False
    assert not os.path.exists(box.directory)  # nothing to write: not even the directory
    box.update(add(CRED))
    rexec_cli.save(box.directory, **CLI_LOGIN)
    lines.clear()
    assert box.update(lambda state: state.erase(CRED)) is True
    assert writes(lines) == [f"wrote {box.credentials.path}"]  # holding nothing, still there
    assert read_json(Path(box.credentials.path))["credentials"] == []
    lines.clear()
    assert box.update(lambda state: state.drop_config()) is True
    assert writes(lines) == [f"removed {box.config.path}"]
    assert box.update(lambda state: None) is False  # no file and {} are the same: no write
    Path(box.config.path).write_text("{}")
    os.remove(box.credentials.path)
    assert box.update(lambda state: state.erase(CRED)) is False
    assert Path(box.config.path).read_text() == "{}" and not os.path.exists(box.credentials.path)


def test_noop_updates_never_write_config_json_while_the_rexec_cli_rewrites_it(home):
    lines: list = []
    box = traced(home, lines)
    box.update(add(CRED))
    rexec_cli.save(box.directory, **CLI_LOGIN)
    cli = subprocess.Popen(
        [sys.executable, str(Path(rexec_cli.__file__)), "loop", box.directory, "1.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    rounds = updates = 0

    def noop(state):
        nonlocal rounds
        rounds += 1
        state.store(CRED, NOW)  # already stored

    lines.clear()
    while cli.poll() is None:
        assert box.update(noop) is False
        updates += 1
    saves = int(cli.stdout.read())
    assert cli.wait() == 0 and saves > 0 and updates > 0 and rounds >= updates
    assert writes(lines) == []
    # What the Rexec CLI wrote last is what config.json holds: not one of our writes.
    elsewhere = home / "elsewhere"
    elsewhere.mkdir()
    expected = rexec_cli.save(str(elsewhere), **rexec_cli.LOOP_LOGINS[(saves - 1) % 2])
    assert Path(box.config.path).read_bytes() == expected
