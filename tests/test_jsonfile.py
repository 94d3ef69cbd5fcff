"""One JSON file (rexec_credential.jsonfile), called directly on real files in tmp_path:
reading a missing, empty, corrupted, linked or non-regular file without following or
blocking; the settle that re-reads a file another program is rewriting; the atomic 0600
replace and its check that nobody wrote the file in between; moving a corrupted file aside.

Elsewhere: test_storage.py exercises it through Storage (both files under the lock,
modes, corruption, FIFOs and links at every name, a writer that rewrites config.json
during an update), as do tests/stress/test_rexec_cli_race.py (the Rexec CLI's in-place
writes against the settle), tests/stress/test_crashes.py (writers killed mid-write),
tests/stress/test_concurrency.py (every command at once on one directory),
tests/stress/test_hostile_neighbours.py (files planted at its names and temporary names)
and, through the commands, test_trust_boundaries.py (a corrupted file moved aside).
Time is frozen (freezegun) wherever a test depends on it; the file's `inspect` callback,
called at each opening, is where a test plays the other program or moves the clock.
"""

from __future__ import annotations

import os
import stat
import threading

import pytest
from freezegun import freeze_time

from rexec_credential import jsonfile
from rexec_credential.errors import StorageError
from rexec_credential.jsonfile import BACKUP_MARK, Changed, Corrupted, JsonFile

FROZEN = "2026-01-02 03:04:05"
STAMP = "20260102T030405"  # FROZEN as move_aside names it
TICK = 0.05  # seconds of frozen time each opening takes in the settle tests
TIMEOUT = 10.0  # seconds a read that must not block may take before the test fails


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


class Opened:
    """A JsonFile's `inspect`: the stat of each opened file, and `then(n)` at the n-th."""

    def __init__(self, then=None) -> None:
        self.stats: list = []
        self._then = then

    def __call__(self, path: str, info: os.stat_result) -> None:
        self.stats.append(info)
        if self._then is not None:
            self._then(len(self.stats))


@pytest.fixture
def directory(tmp_path):
    path = tmp_path / "rexec"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def path(directory):
    return directory / "config.json"


def write(path, data: bytes) -> None:
    """Write a file by hand, 0600, as a person or another program might."""
    path.write_bytes(data)
    path.chmod(0o600)


def changed_at(path, when: float) -> None:
    """Set the file's modification time (Unix seconds)."""
    os.utime(path, (when, when))


def finish_writing(path, data: bytes) -> None:
    """The other program's write completes (a new file renamed over the name, so a reader
    that already opened the old one still reads what it held)."""
    tmp = path.with_name(path.name + ".other")
    tmp.write_bytes(data)
    os.rename(tmp, path)


@pytest.fixture
def away_from_utc():
    """A local time zone five hours behind UTC."""
    import time

    old = os.environ.get("TZ")
    os.environ["TZ"] = "EST+05"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.fixture
def zero_umask():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# -- reading ----------------------------------------------------------------------------------


def test_a_missing_file_holds_nothing(path):
    opened = Opened()
    file = JsonFile(str(path), opened)
    assert file.read() == ({}, None)
    assert file.read_bytes() is None
    assert opened.stats == []


def test_read_gives_the_object_and_its_bytes_and_shows_the_file(path):
    raw = b'{"token": "t", "nested": {"a": [1, 2]}, "name": "\\u00e9\xc3\xa9"}'
    write(path, raw)
    opened = Opened()
    assert JsonFile(str(path), opened).read() == (
        {"token": "t", "nested": {"a": [1, 2]}, "name": "\u00e9\u00e9"},
        raw,
    )
    [info] = opened.stats
    assert (info.st_ino, info.st_size) == (os.stat(path).st_ino, len(raw))


def test_a_file_larger_than_one_read_is_read_whole(path):
    raw = b'{"big": "' + b"x" * (3 << 20) + b'"}'
    write(path, raw)
    data, got = JsonFile(str(path), Opened()).read()
    assert got == raw and len(data["big"]) == 3 << 20


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"token": "t"',
        b"[]",
        b'"text"',
        b"null",
        b"1",
        b"{}{}",
        b"\xff\xfe{}",
        b"{\x00}",
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser goes
    ],
    ids=["open", "cut-short", "list", "string", "null", "number", "two", "utf-16", "nul", "deep"],
)
def test_what_is_not_a_json_object_is_corrupted(path, raw):
    write(path, raw)
    with pytest.raises(Corrupted) as info:
        JsonFile(str(path), Opened()).read()
    assert info.value.message == (
        f"configuration file {path} is corrupted; run 'rexec-logout' to remove it, "
        "then 'rexec-login'"
    )
    assert isinstance(info.value, StorageError) and info.value.exit_code == 4
    assert jsonfile.parse(raw) is None


@pytest.mark.parametrize("raw", [b"", b" \n\t\r\n"], ids=["empty", "blank"])
def test_an_empty_file_holds_nothing(path, raw):
    write(path, raw)
    assert JsonFile(str(path), Opened()).read() == ({}, raw)


@pytest.mark.parametrize("target", ["a file", "nothing"])
def test_a_symbolic_link_is_never_followed(directory, path, target):
    victim = directory / "victim.json"
    if target == "a file":
        write(victim, b'{"token": "t"}')
    os.symlink(victim, path)
    opened = Opened()
    file = JsonFile(str(path), opened)
    for read in (file.read, file.read_bytes):
        with pytest.raises(StorageError) as info:
            read()
        assert info.value.message == (
            f"cannot read {path}: it is a symbolic link; remove it, then run 'rexec-login'"
        )
    assert opened.stats == []


def test_a_fifo_is_refused_not_waited_on(path):
    os.mkfifo(path, 0o600)  # nobody writes it: a blocking open would wait for ever
    opened = Opened()
    failures: list = []

    def read() -> None:
        try:
            JsonFile(str(path), opened).read()
        except StorageError as exc:
            failures.append(exc.message)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(TIMEOUT)
    blocked = reader.is_alive()
    if blocked:  # a writer lets a blocked open return, so the thread ends
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(TIMEOUT)
    assert not blocked
    assert failures == [f"configuration file {path} is not a regular file"]
    assert opened.stats == []


def test_a_directory_is_refused(path):
    path.mkdir()
    with pytest.raises(StorageError, match="is not a regular file"):
        JsonFile(str(path), Opened()).read_bytes()


# -- the settle: a file another program is rewriting ------------------------------------------


def test_without_a_settle_a_cut_short_file_is_corrupted_at_once(path):
    write(path, b'{"tok')  # just written: it may be mid-write, but no settle was asked for

    def other_program(n: int) -> None:
        if n == 1:
            finish_writing(path, b'{"token": "t"}')  # a second read would see it

    opened = Opened(other_program)
    with pytest.raises(Corrupted):
        JsonFile(str(path), opened).read()
    assert len(opened.stats) == 1


@pytest.mark.parametrize("cut", [b"", b'{"token": "t", "us'], ids=["truncated", "cut-short"])
def test_a_file_finished_during_the_settle_is_read_again(path, cut):
    whole = b'{"token": "t", "username": "johndoe"}'
    write(path, cut)
    with freeze_time(FROZEN) as clock:
        changed_at(path, clock().timestamp())

        def other_program(n: int) -> None:
            clock.tick(TICK)
            if n == 2:  # while the second read has the cut-short file open
                finish_writing(path, whole)

        opened = Opened(other_program)
        assert JsonFile(str(path), opened, settle=0.1).read() == (
            {"token": "t", "username": "johndoe"},
            whole,
        )
    assert len(opened.stats) == 3


@pytest.mark.parametrize(
    "settle, age, wait",
    [
        (0.2, 60.0, 0.2),  # changed long ago: the settle alone
        (0.2, 0.5, jsonfile.RECENT),  # changed half a second ago: up to a second
        (1.5, 0.5, 1.5),  # a settle longer than that stays as long
        (1.5, 60.0, 1.5),
    ],
    ids=["old", "recent", "long-recent", "long-old"],
)
def test_a_file_that_stays_cut_short_is_corrupted_after_the_settle(path, settle, age, wait):
    write(path, b'{"token": "t", "us')
    with freeze_time(FROZEN) as clock:
        changed_at(path, clock().timestamp() - age)
        opened = Opened(lambda n: clock.tick(TICK))
        with pytest.raises(Corrupted):
            JsonFile(str(path), opened, settle=settle).read()
    # Each opening took TICK: the reads went on for `wait`, and not one read longer.
    assert wait / TICK + 1 <= len(opened.stats) <= wait / TICK + 2


def test_a_file_that_stays_empty_through_the_settle_holds_nothing(path):
    write(path, b"")
    with freeze_time(FROZEN) as clock:
        changed_at(path, clock().timestamp())
        opened = Opened(lambda n: clock.tick(TICK))
        assert JsonFile(str(path), opened, settle=0.1).read() == ({}, b"")
    assert len(opened.stats) > jsonfile.RECENT / TICK  # re-read for the whole second first


# -- replacing --------------------------------------------------------------------------------


def test_replace_writes_a_0600_file_whatever_the_umask(directory, path, zero_umask):
    JsonFile(str(path), Opened()).replace('{"name": "\u00e9"}\n')
    assert path.read_bytes() == '{"name": "\u00e9"}\n'.encode()
    assert mode(path) == 0o600
    assert os.listdir(directory) == ["config.json"]  # no temporary left


def test_replace_renames_a_new_file_over_the_old_one(directory, path, zero_umask):
    write(path, b'{"old": 1}')
    path.chmod(0o644)
    before = os.stat(path).st_ino
    with open(path, "rb") as reader:  # a reader that opened the old file
        JsonFile(str(path), Opened()).replace('{"new": 2}')
        assert reader.read() == b'{"old": 1}'  # reads it whole, never half of the new one
    assert path.read_bytes() == b'{"new": 2}'
    assert os.stat(path).st_ino != before and mode(path) == 0o600
    assert os.listdir(directory) == ["config.json"]


def test_replace_clears_a_killed_writers_temporaries_and_only_those(directory, path):
    for name in (".config.json.tmp-1", ".config.json.tmp-99999", ".credentials.json.tmp-1"):
        (directory / name).write_text('{"token": "half')
    JsonFile(str(path), Opened()).replace("{}")
    assert sorted(os.listdir(directory)) == [".credentials.json.tmp-1", "config.json"]


def test_replace_replaces_a_symbolic_link_never_writes_through_it(directory, path):
    victim = directory / "victim"
    victim.write_bytes(b"precious")
    os.symlink(victim, path)
    JsonFile(str(path), Opened()).replace("{}")
    assert victim.read_bytes() == b"precious"
    assert not path.is_symlink() and path.read_bytes() == b"{}" and mode(path) == 0o600


def test_replace_in_a_missing_directory_is_a_storage_error(tmp_path):
    path = tmp_path / "gone" / "config.json"
    with pytest.raises(StorageError) as info:
        JsonFile(str(path), Opened()).replace("{}")
    assert info.value.message == f"cannot write {path}: No such file or directory"
    assert not path.parent.exists()


@pytest.mark.parametrize("before", [b'{"token": "t"}', None], ids=["a file", "no file"])
def test_replace_with_what_was_read_writes_when_nobody_wrote_between(path, before):
    if before is not None:
        write(path, before)
    file = JsonFile(str(path), Opened())
    _, raw = file.read()
    assert raw == before
    file.replace('{"token": "new"}', expect=raw)
    assert path.read_bytes() == b'{"token": "new"}'


@pytest.mark.parametrize(
    "before, between",
    [
        (b'{"token": "t"}', b'{"token": "theirs"}'),  # rewritten in place
        (b'{"token": "t"}', None),  # removed
        (None, b'{"token": "theirs"}'),  # created
    ],
    ids=["rewritten", "removed", "created"],
)
def test_replace_refuses_to_overwrite_a_file_changed_since_it_was_read(
    directory, path, before, between
):
    if before is not None:
        write(path, before)
    file = JsonFile(str(path), Opened())
    _, raw = file.read()
    if between is None:
        path.unlink()
    else:
        with open(path, "wb") as other:  # another program, in place, without the lock
            other.write(between)
    with pytest.raises(Changed) as info:
        file.replace('{"token": "ours"}', expect=raw)
    assert str(info.value) == str(path)
    assert not isinstance(info.value, StorageError)  # the caller reads again; no failure
    assert (path.read_bytes() if path.exists() else None) == between
    assert [n for n in os.listdir(directory) if ".tmp-" in n] == []


def test_replace_without_expect_overwrites_whatever_is_there(path):
    write(path, b"not even JSON")
    JsonFile(str(path), Opened()).replace("{}")
    assert path.read_bytes() == b"{}"


def test_remove_deletes_the_file_and_a_killed_writers_temporary(directory, path):
    file = JsonFile(str(path), Opened())
    assert file.remove() is False
    write(path, b"{")
    (directory / ".config.json.tmp-7").write_text('{"token": "t"}')
    (directory / "config.json.corrupt-20260101T000000").write_text("{")
    assert file.remove() is True
    assert os.listdir(directory) == ["config.json.corrupt-20260101T000000"]


def test_remove_of_a_directory_is_a_storage_error(path):
    path.mkdir()
    with pytest.raises(StorageError, match=f"^cannot remove {path}: "):
        JsonFile(str(path), Opened()).remove()
    assert path.is_dir()


# -- moving a corrupted file aside ------------------------------------------------------------


def test_move_aside_names_the_backup_by_utc_time_and_makes_it_0600(directory, path, away_from_utc):
    write(path, b"{ corrupted")
    path.chmod(0o644)
    with freeze_time(FROZEN):
        backup = JsonFile(str(path), Opened()).move_aside()
    assert backup == f"{path}{BACKUP_MARK}{STAMP}" == f"{path}.corrupt-{STAMP}"
    assert open(backup, "rb").read() == b"{ corrupted" and mode(backup) == 0o600
    assert os.listdir(directory) == [os.path.basename(backup)]


def test_move_aside_in_the_same_second_numbers_the_backups(directory, path):
    file = JsonFile(str(path), Opened())
    os.mkdir(f"{path}{BACKUP_MARK}{STAMP}-2")  # any entry at a name takes it
    backups = []
    with freeze_time(FROZEN):
        for n in range(4):
            write(path, b"{ %d" % n)
            backups.append(file.move_aside())
    suffixes = [b[len(f"{path}{BACKUP_MARK}{STAMP}") :] for b in backups]
    assert suffixes == ["", "-1", "-3", "-4"]
    assert [open(b, "rb").read() for b in backups] == [b"{ 0", b"{ 1", b"{ 2", b"{ 3"]


def test_move_aside_gives_up_after_a_hundred_backups_in_one_second(directory, path):
    write(path, b"{")
    base = f"{path}{BACKUP_MARK}{STAMP}"
    for name in [base] + [f"{base}-{n}" for n in range(1, 100)]:
        open(name, "w").close()
    with freeze_time(FROZEN), pytest.raises(StorageError) as info:
        JsonFile(str(path), Opened()).move_aside()
    assert info.value.message == f"cannot back up {path}: too many backups"
    assert path.read_bytes() == b"{"  # left where it was


def test_move_aside_of_a_missing_file_is_a_storage_error(path):
    with pytest.raises(StorageError, match=f"^cannot back up {path}: No such file"):
        JsonFile(str(path), Opened()).move_aside()


def test_move_aside_of_a_symbolic_link_leaves_its_target_alone(directory, path):
    victim = directory / "victim"
    victim.write_bytes(b"{")
    victim.chmod(0o644)
    os.symlink(victim, path)
    JsonFile(str(path), Opened()).move_aside()
    assert mode(victim) == 0o644


# -- the module's helpers ---------------------------------------------------------------------


def test_parse_gives_an_object_or_none():
    assert jsonfile.parse(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert jsonfile.parse(b" {} \n") == {}
    assert jsonfile.parse(b"[{}]") is None


def test_os_message_names_a_link_and_otherwise_the_systems_words():
    import errno

    loop = OSError(errno.ELOOP, os.strerror(errno.ELOOP))
    assert jsonfile.os_message("cannot read", "/p", loop) == (
        "cannot read /p: it is a symbolic link; remove it, then run 'rexec-login'"
    )
    denied = OSError(errno.EACCES, os.strerror(errno.EACCES))
    assert jsonfile.os_message("cannot write", "/p", denied) == "cannot write /p: Permission denied"
    assert jsonfile.os_message("cannot write", "/p", OSError("odd")) == "cannot write /p: odd"


def test_remove_leftovers_removes_what_starts_with_the_prefix(directory):
    for name in (".a.tmp-1", ".a.tmp-", ".a.tm", "x.a.tmp-1"):
        (directory / name).write_text("")
    os.mkfifo(directory / ".a.tmp-2")
    jsonfile.remove_leftovers(str(directory), ".a.tmp-")
    assert sorted(os.listdir(directory)) == [".a.tm", "x.a.tmp-1"]


def test_fsync_directory_of_what_is_not_a_directory_is_a_no_op(directory, path):
    write(path, b"{}")
    assert jsonfile.fsync_directory(str(path)) is None
    assert jsonfile.fsync_directory(str(directory / "gone")) is None
    assert jsonfile.fsync_directory(str(directory)) is None
