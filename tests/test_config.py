"""The config file store (SPEC §3): modes, atomicity, locking, corruption, permissions."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from rexec_credential.config import ConfigFile, directory_for
from rexec_credential.errors import StorageError


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def warnings():
    return []


@pytest.fixture
def cfg(home, warnings) -> ConfigFile:
    return ConfigFile(directory_for({"HOME": str(home)}), warnings.append)


def put(key, value):
    def change(data):
        data[key] = value
        return True
    return change


def test_directory_defaults_to_home_and_honours_override(home):
    assert directory_for({"HOME": str(home)}) == str(home / ".rexec")
    assert directory_for({"HOME": str(home), "REXEC_CONFIG_DIR": "/x/y"}) == "/x/y"


def test_missing_file_loads_as_empty(cfg):
    assert cfg.load() == {}


def test_modes_are_0600_and_0700_even_with_umask_000(cfg):
    old = os.umask(0)
    try:
        cfg.update(put("host", "https://h"))
    finally:
        os.umask(old)
    assert mode(cfg.path) == 0o600
    assert mode(cfg.directory) == 0o700
    assert mode(cfg.lock_path) == 0o600


def test_existing_loose_directory_is_set_back_to_0700(cfg):
    os.makedirs(cfg.directory, mode=0o755)
    os.chmod(cfg.directory, 0o755)
    cfg.update(put("host", "https://h"))
    assert mode(cfg.directory) == 0o700


def test_unknown_keys_are_preserved(cfg):
    os.makedirs(cfg.directory, mode=0o700)
    with open(cfg.path, "w") as f:
        json.dump({"host": "https://h", "future_setting": {"a": [1, 2]}, "theme": "dark"}, f)
    os.chmod(cfg.path, 0o600)
    cfg.update(put("token", "t"))
    assert cfg.load() == {"host": "https://h", "future_setting": {"a": [1, 2]}, "theme": "dark",
                          "token": "t"}


def test_no_change_means_no_write(cfg):
    cfg.update(put("host", "https://h"))
    before = os.stat(cfg.path).st_mtime_ns, os.stat(cfg.path).st_ino
    cfg.update(lambda data: False)
    assert (os.stat(cfg.path).st_mtime_ns, os.stat(cfg.path).st_ino) == before


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe\x00", b"", b'"str"'])
def test_corrupted_file_is_reported_with_the_remedy_on_read(cfg, content):
    os.makedirs(cfg.directory, mode=0o700)
    with open(cfg.path, "wb") as f:
        f.write(content)
    with pytest.raises(StorageError) as info:
        cfg.load()
    assert info.value.exit_code == 4
    assert f"configuration file {cfg.path} is corrupted" in info.value.message
    assert "rexec-logout" in info.value.message and "rexec-login" in info.value.message
    with open(cfg.path, "rb") as f:
        assert f.read() == content  # reading never destroys it


def test_corrupted_file_is_moved_to_a_0600_backup_before_a_write(cfg, warnings):
    os.makedirs(cfg.directory, mode=0o700)
    with open(cfg.path, "w") as f:
        f.write('{"token": "half-written')
    os.chmod(cfg.path, 0o644)
    cfg.update(put("host", "https://h"))
    backups = [n for n in os.listdir(cfg.directory) if n.startswith("config.json.corrupt-")]
    assert len(backups) == 1
    backup = os.path.join(cfg.directory, backups[0])
    assert mode(backup) == 0o600
    with open(backup) as f:
        assert f.read() == '{"token": "half-written'
    assert cfg.load() == {"host": "https://h"}
    assert any(backup in w for w in warnings)


def test_remove_deletes_even_a_corrupted_file(cfg):
    os.makedirs(cfg.directory, mode=0o700)
    with open(cfg.path, "w") as f:
        f.write("garbage")
    assert cfg.remove() is True
    assert not os.path.exists(cfg.path)
    assert cfg.remove() is False


def test_loose_file_is_warned_about_and_tightened_on_next_write(cfg, warnings):
    cfg.update(put("host", "https://h"))
    os.chmod(cfg.path, 0o644)
    cfg.load()
    assert len(warnings) == 1 and "0644" in warnings[0] and cfg.path in warnings[0]
    cfg.update(put("tier", "pro"))
    assert mode(cfg.path) == 0o600


def test_symlink_at_config_path_is_not_followed(cfg, tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text('{"precious": true}')
    os.makedirs(cfg.directory, mode=0o700)
    os.symlink(victim, cfg.path)
    with pytest.raises(StorageError, match="symbolic link"):
        cfg.load()
    with pytest.raises(StorageError, match="symbolic link"):
        cfg.update(put("token", "t"))
    assert victim.read_text() == '{"precious": true}'


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the directory")
def test_directory_owned_by_another_user_is_refused(cfg):
    os.makedirs(cfg.directory, mode=0o700)
    os.chown(cfg.directory, 65534, 65534)
    with pytest.raises(StorageError, match="belongs to another user"):
        cfg.update(put("token", "t"))
    assert not os.path.exists(cfg.path)


CRASH_WRITER = textwrap.dedent("""
    import os, signal, sys
    from rexec_credential.config import ConfigFile
    cfg = ConfigFile(sys.argv[1], lambda line: None)
    os.rename = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # die between write and rename
    def change(data):
        data["token"] = "new"
        return True
    cfg.update(change)
""")


def test_crash_between_write_and_rename_leaves_the_old_file_intact(cfg):
    cfg.update(put("token", "old"))
    proc = subprocess.run([sys.executable, "-c", CRASH_WRITER, cfg.directory])
    assert proc.returncode == -9
    assert cfg.load() == {"token": "old"}
    cfg.update(put("token", "next"))  # the lock is not stale and the temp file is cleaned
    assert cfg.load() == {"token": "next"}
    assert [n for n in os.listdir(cfg.directory) if ".tmp-" in n] == []


ADDER = textwrap.dedent("""
    import sys
    from rexec_credential.config import ConfigFile
    cfg = ConfigFile(sys.argv[1], lambda line: None)
    def change(data):
        data.setdefault("credentials", []).append({"n": int(sys.argv[2])})
        return True
    cfg.update(change)
""")


def test_twenty_concurrent_writers_lose_no_update(cfg):
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, cfg.directory, str(n)])
             for n in range(20)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 20
    added = sorted(item["n"] for item in cfg.load()["credentials"])
    assert added == list(range(20))
    assert mode(cfg.path) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the file")
def test_file_owned_by_another_user_is_reported_on_read(cfg, warnings):
    cfg.update(put("host", "https://h"))
    os.chown(cfg.path, 65534, 65534)
    assert cfg.load() == {"host": "https://h"}
    assert len(warnings) == 1 and "belongs to another user (uid 65534)" in warnings[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the directory")
def test_remove_refuses_a_directory_owned_by_another_user(cfg):
    cfg.update(put("host", "https://h"))
    os.chown(cfg.directory, 65534, 65534)
    with pytest.raises(StorageError, match="belongs to another user"):
        cfg.remove()
    assert os.path.exists(cfg.path)


def test_loose_mode_is_warned_once_per_command(cfg, warnings):
    cfg.update(put("host", "https://h"))
    os.chmod(cfg.path, 0o644)
    cfg.load()
    cfg.load()
    assert len(warnings) == 1


# -- no path of ours may block: a FIFO planted at the lock or a temporary name ----------------


@pytest.mark.parametrize("command", [
    ("rexec-credential", "store"), ("rexec-login", "--token", "-"), ("rexec-logout",),
], ids=["store", "login", "logout"])
def test_a_fifo_at_the_lock_path_is_refused_not_waited_on(standin, home, command):
    from conftest import run_bin

    directory = home / ".rexec"
    directory.mkdir(mode=0o700)
    os.mkfifo(directory / "config.json.lock", 0o600)
    stdin = {"rexec-credential": "protocol=https\nhost=example.com\nusername=u\npassword=p\n",
             "rexec-login": standin.mint_api_token("johndoe")}.get(command[0], "")
    argv = command[1:] + (("--host", standin.url) if command[0] == "rexec-login" else ())
    result = run_bin(command[0], *argv, stdin=stdin, timeout=20)
    assert result.code == 4, result
    assert result.err.count("\n") == 1 and "config.json.lock" in result.err
    assert "not a regular file" in result.err
    assert stat.S_ISFIFO(os.lstat(directory / "config.json.lock").st_mode)  # left for the user


def test_a_fifo_at_a_temporary_name_is_cleared_not_waited_on(home):
    from conftest import run_bin

    directory = home / ".rexec"
    directory.mkdir(mode=0o700)
    os.mkfifo(directory / ".config.json.tmp-1", 0o600)
    result = run_bin("rexec-credential", "store",
                     stdin="protocol=https\nhost=example.com\nusername=u\npassword=p\n",
                     timeout=20)
    assert (result.code, result.err) == (0, "")
    assert not os.path.lexists(directory / ".config.json.tmp-1")
