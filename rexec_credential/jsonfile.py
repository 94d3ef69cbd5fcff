"""One JSON file of ours: read it without ever blocking, replace it atomically. Filesystem only.

Reading opens with O_NOFOLLOW|O_NONBLOCK and refuses anything but a regular file, so a
symbolic link is never followed and a FIFO never waited on. Writing creates a sibling
temporary file 0600 (O_EXCL|O_NOFOLLOW), fsyncs it and renames it over the file, as git
writes its lockfiles: a reader sees the old file or the new one, never half of one. The
caller holds the directory's lock (storage.py) while it writes.

A file that another program rewrites in place (the Rexec CLI truncates config.json, then
writes it) can be seen empty or cut short for an instant. With a `settle` (storage gives
config.json 0.1 s, credentials.json none), such a read is tried again every RETRY_PAUSE
for up to `settle` seconds, or up to RECENT (1 s) when the file changed within the last
second: on a busy disk the truncation is visible before the data. Then a file that is
still empty holds nothing, and one still not a JSON object is Corrupted. Without a
`settle`, the first read decides.
"""

from __future__ import annotations

import json
import os
import stat
import time

from .errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict

    JsonObject = Dict[str, Any]

BACKUP_MARK = ".corrupt-"  # <file>.corrupt-<UTC time>: a corrupted file moved aside
RETRY_PAUSE = 0.005  # seconds between reads of a file that is being rewritten
RECENT = 1.0  # seconds: a file changed this recently may be mid-write; read it up to this long


class Corrupted(StorageError):
    """The file is not a JSON object."""


class Changed(Exception):
    """The file changed under us (another program wrote it) between reading and replacing."""


class JsonFile:
    """A JSON object in a file; `inspect(path, stat)` sees each opened file (for warnings)."""

    def __init__(
        self, path: str, inspect: Callable[[str, os.stat_result], None], settle: float = 0.0
    ) -> None:
        self.path = path
        self.directory = os.path.dirname(path)
        self.tmp_prefix = f".{os.path.basename(path)}.tmp-"  # + the writer's pid
        self._inspect = inspect
        self._settle = settle

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> tuple[JsonObject, bytes | None]:
        """(the object, the bytes it came from): ({}, None) when there is no file."""
        deadline = None
        while True:
            raw, modified = self._read()
            if raw is None:
                return {}, None
            data = parse(raw)
            if data is not None:
                return data, raw
            if deadline is None:
                recent = self._settle and time.time() - modified < RECENT
                deadline = time.monotonic() + (
                    max(self._settle, RECENT) if recent else self._settle
                )
            if time.monotonic() >= deadline:
                if not raw.strip():
                    return {}, raw  # empty, and it stays so: nothing stored
                raise Corrupted(
                    f"configuration file {self.path} is corrupted; "
                    "run 'rexec-logout' to remove it, then 'rexec-login'"
                )
            time.sleep(RETRY_PAUSE)

    def read_bytes(self) -> bytes | None:
        """The file's bytes, None when there is none; never follows a link, never blocks."""
        return self._read()[0]

    def _read(self) -> tuple[bytes | None, float]:
        """(the bytes, when the file last changed); (None, 0) when there is no file."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None, 0.0
        except OSError as exc:
            raise StorageError(os_message("cannot read", self.path, exc)) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StorageError(f"configuration file {self.path} is not a regular file")
            self._inspect(self.path, info)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks), info.st_mtime

    # -- writing (the caller holds the lock) -----------------------------------------------

    def replace(self, text: str, expect: bytes | None | bool = False) -> None:
        """Write text to a 0600 temporary file, fsync it, rename it over the file.

        With `expect` (the bytes read earlier, None for no file), raise Changed instead
        when the file no longer holds them just before the rename: another program wrote
        it meanwhile, and the caller reads again rather than lose that write.
        """
        tmp = os.path.join(self.directory, self.tmp_prefix + str(os.getpid()))
        try:
            remove_leftovers(self.directory, self.tmp_prefix)  # a killed writer's
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                view = memoryview(text.encode("utf-8"))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if expect is not False and self.read_bytes() != expect:
                raise Changed(self.path)
            os.rename(tmp, self.path)
        except OSError as exc:
            _unlink(tmp)
            raise StorageError(os_message("cannot write", self.path, exc)) from None
        except Changed:
            _unlink(tmp)
            raise
        fsync_directory(self.directory)

    def remove(self) -> bool:
        """Delete the file (corrupted or not) and a killed writer's temporary; True if there
        was a file."""
        remove_leftovers(self.directory, self.tmp_prefix)  # it may hold a token too
        try:
            os.unlink(self.path)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(os_message("cannot remove", self.path, exc)) from None

    def move_aside(self) -> str:
        """Rename a corrupted file to `<name>.corrupt-<UTC time>` (0600); the new name."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for attempt in range(100):
            backup = f"{self.path}{BACKUP_MARK}{stamp}" + (f"-{attempt}" if attempt else "")
            if os.path.lexists(backup):
                continue
            try:
                os.rename(self.path, backup)  # rename never follows a link at the target
                _owner_only(backup)
            except OSError as exc:
                raise StorageError(os_message("cannot back up", self.path, exc)) from None
            return backup
        raise StorageError(f"cannot back up {self.path}: too many backups")


def parse(raw: bytes) -> JsonObject | None:
    """The JSON object in raw, or None when it is not one."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return None
    return data if isinstance(data, dict) else None


def os_message(what: str, path: str, exc: OSError) -> str:
    """One line for an OSError on one of our paths."""
    import errno  # only for a failure: not on the `get` path

    if getattr(exc, "errno", None) == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
        return f"{what} {path}: it is a symbolic link; remove it, then run 'rexec-login'"
    return f"{what} {path}: {exc.strerror or exc}"


def _owner_only(path: str) -> None:
    """Mode 0600 on path itself, never on what a symbolic link there points to (a link
    has no mode of its own: it is left as it is)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        import errno  # only here: not on the `get` path

        if exc.errno == errno.ELOOP:
            return
        raise
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def remove_leftovers(directory: str, prefix: str) -> None:
    """Delete the temporary files of killed writers; only with the lock held."""
    for name in os.listdir(directory):
        if name.startswith(prefix):
            _unlink(os.path.join(directory, name))


def fsync_directory(path: str) -> None:
    """Make a rename in the directory durable."""
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


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
