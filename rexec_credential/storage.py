"""The ~/.rexec directory: config.json and credentials.json under one lock. Filesystem only.

`load()` reads both files (never taking the lock, never writing). `update(change)` takes the
advisory lock — flock on `config.json.lock`, which the kernel releases if the process
dies, so a lock is never stale — reads both files, lets `change` edit the State, and
writes each file whose content the change made different from what was read (comparing
objects, not flags: a change that changes nothing writes nothing; a config.json left with
no key is removed): credentials.json first (so a login is recorded as an account before
config.json names it), then config.json. All of this project's writers serialise on that
lock; the Rexec CLI does not take it and rewrites config.json in place, so config.json is
replaced only if it still holds what was read (else everything is read and changed
again), which leaves that program's write in place rather than lose it.

A corrupted file is left where it is unless the change must write it (or the caller asks,
as rexec-logout does): then it is moved aside to a 0600 backup first and the backup named.
Only files dropped on purpose (`remove_everything`, for rexec-logout --all) are deleted
whatever they hold, backups included.
Directory mode 0700 and file modes 0600 whatever the umask; a directory owned by another
user is refused for writing.
"""

from __future__ import annotations

import json
import os
import stat

from .errors import StorageError
from .jsonfile import BACKUP_MARK, Changed, Corrupted, JsonFile, os_message
from .state import State, config_content

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Collection, Mapping

    from .jsonfile import JsonObject

CONFIG_NAME = "config.json"
CREDENTIALS_NAME = "credentials.json"
LOCK_NAME = CONFIG_NAME + ".lock"  # the name earlier versions lock, so they serialise with us
# Seconds an empty or cut-short config.json is read again before it counts as empty or
# corrupted (the Rexec CLI rewrites it in place); jsonfile.RECENT (1 s) instead when the file
# changed within the last second. credentials.json, written only by us, is not read again.
SETTLE = 0.1
LOCK_WAIT = 10.0  # seconds a writer waits for the lock, as git waits for its config lock
LOCK_POLL = 0.05  # seconds between tries of a held lock
ATTEMPTS = 20  # read-change-write rounds when config.json keeps changing under us


class Storage:
    """Both files of one directory; `warn` receives one-line warnings meant for stderr.

    Tokens in `keep_out` (REXEC_TOKEN's value) are never written (see state.State).
    """

    def __init__(
        self,
        directory: str,
        warn: Callable[[str], None],
        keep_out: Collection[str] = (),
        lock_wait: float = LOCK_WAIT,
        trace: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.directory = directory
        self.config = JsonFile(os.path.join(directory, CONFIG_NAME), self._inspect, SETTLE)
        self.credentials = JsonFile(os.path.join(directory, CREDENTIALS_NAME), self._inspect)
        self.lock_path = os.path.join(directory, LOCK_NAME)
        self._warn = warn
        self._warned = False  # the ownership or loose-mode warning: once per command
        self._keep_out = tuple(keep_out)
        self._lock_wait = lock_wait
        self._trace = trace  # files read and written (REXEC_TRACE)

    # -- reading ---------------------------------------------------------------------------

    def load(self) -> State:
        """What both files hold; StorageError when one is corrupted or unreadable."""
        config, credentials = self._read(self.config), self._read(self.credentials)
        return State(config, credentials, self._keep_out)

    def _read(self, file: JsonFile) -> JsonObject:
        data, raw = file.read()
        self._trace(_read_line(file.path, raw))
        return data

    def load_lenient(self) -> tuple[State, list[str]]:
        """What both files hold, a corrupted one counting as empty; and the corrupted paths."""
        parts, bad = [], []
        for file in (self.config, self.credentials):
            read = self._read_for_update(file)
            parts.append(read.data)
            if read.bad:
                bad.append(file.path)
                self._trace(f"read {file.path}: corrupted, counted as empty")
            else:
                self._trace(_read_line(file.path, read.raw))
        return State(parts[0], parts[1], self._keep_out), bad

    def exists(self) -> bool:
        """True when either file (even a broken one) is there."""
        return any(os.path.lexists(f.path) for f in (self.config, self.credentials))

    def _inspect(self, path: str, info: os.stat_result) -> None:
        if self._warned:
            return
        if info.st_uid != os.geteuid():
            self._warned = True
            self._warn(
                f"warning: {path} belongs to another user (uid {info.st_uid}); "
                "the credentials in it may not be yours"
            )
        elif info.st_mode & 0o077:
            self._warned = True
            self._warn(
                f"warning: {path} is accessible by others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); it holds your token. "
                "It will be set to 0600 on the next write"
            )

    # -- writing ---------------------------------------------------------------------------

    def update(self, change: Callable[[State], object], set_aside_corrupted: bool = False) -> bool:
        """Lock, read both files, let `change` edit the State, write what now differs;
        True when a file was written or removed.

        `change` may run more than once (when the Rexec CLI rewrites config.json meanwhile,
        the round starts again from a fresh read), so it must only edit the State it is
        given. `set_aside_corrupted` (rexec-logout): a corrupted file is moved to its
        backup even when the change leaves it unwritten. With no directory yet, a change
        that leaves both files empty creates nothing.
        """
        if not os.path.lexists(self.directory):
            state = State(keep_out=self._keep_out)
            change(state)
            nothing = State().stored_content()
            if state.config_content() is None and state.stored_content() == nothing:
                self._trace(f"no {self.directory}, and nothing to write: left uncreated")
                return False
        self._prepare_directory()
        lock = self._lock()
        try:
            for _ in range(ATTEMPTS - 1):
                try:
                    return self._round(change, set_aside_corrupted, check=True)
                except Changed:
                    continue  # the Rexec CLI wrote config.json meanwhile: read it again
            return self._round(change, set_aside_corrupted, check=False)
        finally:
            os.close(lock)  # closing the descriptor releases the flock

    def _round(
        self, change: Callable[[State], object], set_aside_corrupted: bool, check: bool
    ) -> bool:
        config = self._read_for_update(self.config)
        stored = self._read_for_update(self.credentials)
        self._trace(f"locked {self.lock_path}; {_read_line(self.config.path, config.raw)}")
        self._trace(_read_line(self.credentials.path, stored.raw))
        state = State(config.data, stored.data, self._keep_out)
        change(state)
        wrote = self._save(self.credentials, stored, state.stored_content(), set_aside_corrupted)
        expect = (None if config.bad else config.raw) if check else False
        wrote_config = self._save(
            self.config, config, state.config_content(), set_aside_corrupted, expect
        )
        return wrote_config or wrote

    def _save(
        self,
        file: JsonFile,
        read: _Read,
        wanted: JsonObject | None,
        set_aside_corrupted: bool,
        expect: bytes | None | bool = False,
    ) -> bool:
        """Bring one file to `wanted` (None: no file) when it differs from what it held;
        a corrupted one is moved aside first (never lost: it may hold other logins).
        True when the file was written, removed or moved aside."""
        was = self._content(file, read.data)  # a corrupted file was read as {}: no file
        if read.bad and (wanted != was or set_aside_corrupted):
            self._warn(
                f"warning: configuration file was corrupted; moved it to {file.move_aside()}"
            )
            if wanted == was:
                return True  # nothing to put in its place
        elif wanted == was:
            return False  # unchanged; a corrupted file is left for the person to look at
        if wanted is None:
            if file.remove():
                self._trace(f"removed {file.path}")
        else:
            text = config_text if file is self.config else credentials_text
            file.replace(text(wanted), expect)
            self._trace(f"wrote {file.path}")
        return True

    def _content(self, file: JsonFile, data: JsonObject) -> JsonObject | None:
        """What a file that holds `data` holds, in the form it would be written: an account
        entry this version cannot read, or a missing "version", is not a reason to write;
        nor is a credentials.json that would hold nothing and is not there."""
        if file is self.config:
            return config_content(data)
        return State(stored=data).stored_content()

    def remove_everything(self) -> int:
        """Delete both files and every backup of a corrupted one (they may hold tokens),
        whatever they hold: rexec-logout --all. How many backups there were."""
        if not os.path.isdir(self.directory):
            return 0
        lock = self._lock()
        try:
            for file in (self.credentials, self.config):
                if file.remove():
                    self._trace(f"removed {file.path}")
            removed = 0
            for name in os.listdir(self.directory):
                if not name.startswith((CONFIG_NAME + BACKUP_MARK, CREDENTIALS_NAME + BACKUP_MARK)):
                    continue
                path = os.path.join(self.directory, name)
                try:
                    os.unlink(path)  # never follows a link
                    removed += 1
                except IsADirectoryError:
                    continue  # not a backup we made
                except OSError as exc:
                    raise StorageError(os_message("cannot remove", path, exc)) from None
            return removed
        finally:
            os.close(lock)

    def _read_for_update(self, file: JsonFile) -> _Read:
        try:
            data, raw = file.read()
        except Corrupted:
            if os.path.islink(file.path):
                raise
            return _Read({}, None, True)
        return _Read(data, raw, False)

    def _prepare_directory(self) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError as exc:
            raise StorageError(os_message("cannot create", self.directory, exc)) from None
        if stat.S_ISLNK(info.st_mode):
            info = os.stat(self.directory)  # a linked ~/.rexec is the user's choice
        if not stat.S_ISDIR(info.st_mode):
            raise StorageError(f"{self.directory} is not a directory")
        if info.st_uid != os.geteuid():
            raise StorageError(
                f"configuration directory {self.directory} belongs to another user "
                f"(uid {info.st_uid}); refusing to write credentials there"
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            try:
                os.chmod(self.directory, 0o700)
            except OSError as exc:
                raise StorageError(os_message("cannot chmod", self.directory, exc)) from None

    def _lock(self) -> int:
        import fcntl

        try:
            fd = os.open(  # read-only: flock needs no write access, so a 0400 lock still works
                self.lock_path,
                # O_NONBLOCK: a FIFO planted here must not block the open (refused just below)
                os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                0o600,
            )
        except OSError as exc:
            raise StorageError(os_message("cannot lock", self.lock_path, exc)) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StorageError(
                    f"cannot lock {self.lock_path}: it is not a regular file; "
                    "remove it, then try again"
                )
            if stat.S_IMODE(info.st_mode) != 0o600:
                try:
                    os.fchmod(fd, 0o600)  # whatever the umask made of it
                except OSError:
                    pass  # not ours to fix; the lock works all the same
            self._wait_for_lock(fd, fcntl)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _wait_for_lock(self, fd: int, fcntl: Any) -> None:
        """flock, waiting at most `lock_wait` seconds: a stopped process (Ctrl+Z on a
        `store`) must not hang every later writer, and git with them."""
        import time

        deadline = time.monotonic() + self._lock_wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"another process holds {self.lock_path} (a stopped or hung "
                        "rexec command?); try again when it has finished"
                    ) from None
                time.sleep(LOCK_POLL)


class _Read:
    """One file as an update read it: its object, its bytes (None: no file), corrupted."""

    __slots__ = ("data", "raw", "bad")

    def __init__(self, data: JsonObject, raw: bytes | None, bad: bool) -> None:
        self.data, self.raw, self.bad = data, raw, bad


def _read_line(path: str, raw: bytes | None) -> str:
    """A trace line for a file read: its size, or that there is none."""
    return f"no {path}" if raw is None else f"read {path} ({len(raw)} bytes)"


def config_text(config: Mapping[str, Any]) -> str:
    """config.json as the Rexec CLI writes it: two-space indent, no final newline."""
    return json.dumps(config, indent=2, ensure_ascii=False)


def credentials_text(stored: Mapping[str, Any]) -> str:
    """credentials.json: one account or credential per line, so it reads and diffs well."""
    lists = ("accounts", "credentials")
    parts = [
        f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
        for k, v in stored.items()
        if k not in lists
    ]
    for key in lists:
        items = [
            json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            for item in stored.get(key) or []
        ]
        body = "[\n" + ",\n".join(f"    {item}" for item in items) + "\n  ]" if items else "[]"
        parts.append(f"  {json.dumps(key)}: {body}")
    return "{\n" + ",\n".join(parts) + "\n}\n"
