"""The config file ~/.rexec/config.json: locate, read, lock, atomic write, 0600 (SPEC §3).

Filesystem only; it knows nothing of what the keys mean. Writers take an advisory
lock on a sibling lock file (the kernel drops it if the process dies, so a lock is
never stale), write a sibling temporary file created 0600, fsync it and rename it
over the config, as git writes its lockfiles. Readers never wait and never see half
a file.
"""

from __future__ import annotations

import json
import os
import stat
import time

from .errors import StorageError

FILE_NAME = "config.json"
TMP_PREFIX = f".{FILE_NAME}.tmp-"  # + the writer's pid
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping


def directory_for(env: Mapping[str, str]) -> str:
    """REXEC_CONFIG_DIR, else $HOME/.rexec."""
    override = env.get("REXEC_CONFIG_DIR")
    if override:
        return override
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".rexec")


class ConfigFile:
    """One config file; `warn` receives one-line warnings meant for stderr."""

    def __init__(self, directory: str, warn: Callable[[str], None]) -> None:
        self.directory = directory
        self.path = os.path.join(directory, FILE_NAME)
        self.lock_path = self.path + ".lock"
        self._warn = warn
        self._warned = False  # the ownership or loose-mode warning, once per command

    # -- reading -----------------------------------------------------------------

    def load(self) -> dict:
        """The file's object ({} when there is none); StorageError when corrupted."""
        raw = self._read()
        if raw is None:
            return {}
        data = _parse(raw)
        if data is None:
            raise StorageError(
                f"configuration file {self.path} is corrupted; "
                "run 'rexec-logout' to remove it, then 'rexec-login'"
            )
        return data

    def _read(self) -> bytes | None:
        try:
            # O_NONBLOCK: a FIFO planted here must not block the open (refused just below)
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(self._os_message("cannot read", self.path, exc)) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StorageError(f"configuration file {self.path} is not a regular file")
            if info.st_uid != os.geteuid() and not self._warned:
                self._warned = True
                self._warn(
                    f"warning: {self.path} belongs to another user (uid {info.st_uid}); "
                    "the credentials in it may not be yours"
                )
            if info.st_mode & 0o077 and not self._warned:
                self._warned = True
                self._warn(
                    f"warning: {self.path} is accessible by others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}); it holds your token. "
                    "It will be set to 0600 on the next write"
                )
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks)

    def _os_message(self, what: str, path: str, exc: OSError) -> str:
        if getattr(exc, "errno", None) == 40:  # ELOOP: O_NOFOLLOW met a symbolic link
            return f"{what} {path}: it is a symbolic link; remove it, then run 'rexec-login'"
        return f"{what} {path}: {exc.strerror or exc}"

    # -- writing -----------------------------------------------------------------

    def update(self, change: Callable[[dict], bool]) -> dict:
        """Lock, re-read, let `change` edit the object in place, write it if it says so.

        A corrupted file is moved aside to a 0600 backup first (and the path told).
        """
        self._prepare_directory()
        lock_fd = self._lock()
        try:
            try:
                data = self.load()
            except StorageError:
                if not os.path.lexists(self.path) or os.path.islink(self.path):
                    raise
                backup = self._move_aside()
                self._warn(f"warning: configuration file was corrupted; moved it to {backup}")
                data = {}
            if change(data):
                self._write(data)
            return data
        finally:
            os.close(lock_fd)  # closing the descriptor releases the flock

    def remove(self) -> bool:
        """Delete the config file (corrupted or not); True if there was one.

        A temporary file left by a killed writer may hold a token too: it goes as well.
        """
        if not os.path.isdir(self.directory):
            return False
        self._check_owner()
        lock_fd = self._lock()
        try:
            self._remove_leftovers()
            os.unlink(self.path)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(self._os_message("cannot remove", self.path, exc)) from None
        finally:
            os.close(lock_fd)

    def _prepare_directory(self) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError as exc:
            raise StorageError(self._os_message("cannot create", self.directory, exc)) from None
        if stat.S_ISLNK(info.st_mode):
            info = os.stat(self.directory)  # a linked ~/.rexec is the user's choice
        if not stat.S_ISDIR(info.st_mode):
            raise StorageError(f"{self.directory} is not a directory")
        self._check_owner(info)
        if stat.S_IMODE(info.st_mode) != 0o700:
            try:
                os.chmod(self.directory, 0o700)
            except OSError as exc:
                raise StorageError(self._os_message("cannot chmod", self.directory, exc)) from None

    def _check_owner(self, info: os.stat_result | None = None) -> None:
        info = info or os.stat(self.directory)
        if info.st_uid != os.geteuid():
            raise StorageError(
                f"configuration directory {self.directory} belongs to another user "
                f"(uid {info.st_uid}); refusing to write credentials there"
            )

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
            raise StorageError(self._os_message("cannot lock", self.lock_path, exc)) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StorageError(f"cannot lock {self.lock_path}: it is not a regular file; "
                                   "remove it, then try again")
            if stat.S_IMODE(info.st_mode) != 0o600:
                try:
                    os.fchmod(fd, 0o600)  # whatever the umask made of it
                except OSError:
                    pass  # not ours to fix; the lock works all the same
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _remove_leftovers(self) -> None:
        """Delete the temporary files of killed writers; only with the lock held."""
        for name in os.listdir(self.directory):
            if name.startswith(TMP_PREFIX):
                try:
                    os.unlink(os.path.join(self.directory, name))
                except FileNotFoundError:
                    pass

    def _move_aside(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for attempt in range(100):
            backup = f"{self.path}.corrupt-{stamp}" + (f"-{attempt}" if attempt else "")
            if os.path.lexists(backup):
                continue
            try:
                os.rename(self.path, backup)  # rename never follows a link at the target
                os.chmod(backup, 0o600)
            except OSError as exc:
                raise StorageError(self._os_message("cannot back up", self.path, exc)) from None
            return backup
        raise StorageError(f"cannot back up {self.path}: too many backups")

    def _write(self, data: dict) -> None:
        text = json.dumps(data, indent=2) + "\n"
        tmp = os.path.join(self.directory, TMP_PREFIX + str(os.getpid()))
        try:
            self._remove_leftovers()  # left by a killed writer; we hold the lock
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(text.encode("utf-8"))
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise StorageError(self._os_message("cannot write", self.path, exc)) from None
        _fsync_directory(self.directory)


def _parse(raw: bytes) -> dict | None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return None
    return data if isinstance(data, dict) else None


def _fsync_directory(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
