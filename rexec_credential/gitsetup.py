"""Set git up to ask this helper for one Rexec host, and undo exactly that, byte for byte.

`configure` gives `credential.<host-url>.helper` two values, as `gh auth setup-git` does:
an empty one, which clears the helpers configured for every host (so no other helper is
asked for, or stores, Rexec's tokens), then `rexec`, which git runs as
`git credential-rexec` from PATH (no absolute path, so an upgrade or a moved
installation keeps working) — or, with `--bearer`, `rexec --bearer`, which git runs as
`git credential-rexec --bearer`. `unconfigure` removes those two values (either form),
and the section header when configure wrote it, so every file is as it was before.

Why the config file's text is edited here rather than with `git config --add/--unset`:
git's writer cannot be undone exactly (it adds a missing final newline, and
`--remove-section` takes a person's comments with the section), and it puts the values in
the last section for the host, where a later `[credential] helper = ...` still applies.
So, in the file git itself writes for the scope (for --global: ~/.gitconfig, or the XDG
file $XDG_CONFIG_HOME/git/config when only that exists, or $GIT_CONFIG_GLOBAL; for
--system and --local: the path `git config --edit` is given), configure appends two
lines at the very end of the file: `\thelper =` and `\thelper = rexec`, after a new
`[credential "<url>"]` header unless the file's last section is that one and holds
something. The file's line ends (LF or CRLF) are kept, and a file without a final newline
keeps none: the line end goes before the new lines instead of after them. configure
changes nothing when such a pair, in the form asked for, is the last helper entry (for
any host) git reads in the scope's files: git then asks rexec, and only rexec, for the
host; a pair of the other form is left, and the new pair after it has the last word.
`unconfigure` removes every such pair (two adjacent lines, in a section for the host,
giving "" then `rexec` or `rexec --bearer`) from every file of the scope (both global
files: the person may have created ~/.gitconfig after configure wrote to the XDG file),
the header line just above a pair when no entry follows the pair in its section
(configure wrote it), and the line end that configure put before lines that end the file
without one. A pair the person wrote by hand is indistinguishable from configure's, so it
is taken as configure's.
A file left empty is kept (it may be what makes git write there rather than the XDG file).

Safety: the file is changed the way git changes it (`<file>.lock` created exclusively, so
git and this program never write at once; the mode kept; renamed over the file, through
a symlink to its target), and only when git agrees on what the file says: the entries
parsed here must be those `git config --file <f> --list` gives, before, and after the
change exactly those plus (or minus) the two values, or nothing is written. Included
files are not followed: configure writes and unconfigure looks only where git writes.
"""

from __future__ import annotations

import os
import subprocess
import time

from . import tokens
from .errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping, Optional, Tuple

    Entry = Tuple[bytes, Optional[bytes]]  # (key, value); None: a key with no '='

HELPER = "rexec"
BEARER_HELPER = "rexec --bearer"  # git runs it as `git credential-rexec --bearer <op>`
HELPERS = (HELPER.encode(), BEARER_HELPER.encode())  # what the second of our pair may be
SCOPES = ("--global", "--system", "--local")
LOCK_WAIT = 1.0  # seconds to wait for git to finish a write (git itself does not wait)


class GitConfig:
    """The git config files of one scope (--global, --system or --local)."""

    def __init__(
        self,
        scope: str,
        env: Mapping[str, str],
        trace: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.scope = scope
        self._env = dict(env)
        self._files: list[str] | None = None
        self.trace = trace  # files read, git config runs, what was decided (REXEC_TRACE)

    def files(self) -> list[str]:
        """The scope's files in the order git reads them; configure writes to target()."""
        if self._files is None:
            self._files = self._find_files()
            self.trace(f"git config {self.scope}: the files {', '.join(self._files)}")
        return self._files

    def target(self) -> str:
        """The file `git config` writes for this scope: git's own choice."""
        files = self.files()
        if len(files) == 2:  # --global: ~/.gitconfig unless only the XDG file is there
            xdg, user = files
            if not os.access(user, os.R_OK) and os.access(xdg, os.R_OK):
                return xdg
            return user
        return files[0]

    def entries(self, path: str) -> list[Entry]:
        """What git reads in one file, in order: (key, value) as `--list` shows them."""
        out = self._run(["--file", path, "--list", "-z"], self._env)
        result: list[Entry] = []
        for record in out.split(b"\0")[:-1]:
            name, newline, value = record.partition(b"\n")
            result.append((name, value if newline else None))
        self.trace(f"git config --file {path} --list: {len(result)} entries")
        return result

    def _find_files(self) -> list[str]:
        env = self._env
        if self.scope == "--global":
            # git's rules (config.c, git_global_config): no other program's idea of them
            if env.get("GIT_CONFIG_GLOBAL"):
                return [os.path.abspath(env["GIT_CONFIG_GLOBAL"])]
            home = env.get("HOME")
            if not home:
                raise StorageError("git config --global failed: $HOME not set")
            xdg_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
            xdg = os.path.join(xdg_home, "git", "config")
            return [os.path.abspath(xdg), os.path.abspath(os.path.join(home, ".gitconfig"))]
        # The system file is compiled into git, the repository's is git's to find (a
        # subdirectory, GIT_DIR, a worktree): let git name the file it would edit.
        editor = dict(env, GIT_EDITOR="printf %s")
        path = self._run([self.scope, "--edit"], editor).decode("utf-8", "surrogateescape")
        if not path:
            raise StorageError(f"git config {self.scope} failed: it names no file")
        return [os.path.abspath(path)]

    def _run(self, args: list[str], env: dict[str, str]) -> bytes:
        argv = ["git", "config", *args]
        env = {k: v for k, v in env.items() if k != "GIT_CONFIG"}  # it would override --file
        try:
            proc = subprocess.run(
                argv, env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise StorageError(
                "git is not installed (no git on PATH); install it, then run this again"
            ) from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StorageError(f"cannot run git config: {exc}") from None
        if proc.returncode != 0:
            said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            reason = tokens.clean(said[0] if said else f"exit status {proc.returncode}")
            raise StorageError(f"git config {self.scope} failed: {reason}")
        return proc.stdout


def key(url: str) -> str:
    """The git config key that names this host's helpers."""
    return f"credential.{url}.helper"


def configure(git: GitConfig, url: str, helper: str = HELPER) -> bool:
    """Make git ask only this helper (`helper`: rexec, or rexec --bearer) for url; False
    when it already does."""
    stem = _stem(url)
    target = git.target()
    git.trace(f"configure writes to {target}")
    with _Lock(target) as lock:
        text = lock.read() or b""
        items = _understood(git, target, text)
        for path in reversed(git.files()):  # the file git reads last has the last word
            other = text if path == target else _read(path)
            found = items if path == target else _understood(git, path, other or b"")
            helpers = [i for i, item in enumerate(found) if _is_helper(item)]
            if helpers:
                last = helpers[-1]
                if last - 1 in _pairs(other or b"", found, stem) and (
                    found[last].value == helper.encode()
                ):
                    git.trace(f"{path} ends with configure's pair ({helper}): nothing to do")
                    return False  # our pair comes after every other helper
                git.trace(f"the last helper entry git reads is in {path}, not ours ({helper})")
                break
        before: list[Entry] = [(item.key, item.value) for item in items if item.kind == _ENTRY]
        added: list[Entry] = [(stem + b".helper", value) for value in (b"", helper.encode())]
        lock.commit(_appended(text, items, stem, url, helper), git, before + added)
        git.trace(f"appended helper = and helper = {helper} for {url} to {target}")
    return True


def unconfigure(git: GitConfig, url: str) -> bool:
    """Remove what configure added for url; False when there was nothing to remove."""
    stem = _stem(url)
    removed = False
    for path in git.files():
        if not os.path.exists(path):
            continue  # nor its directory, maybe: no lock file there
        with _Lock(path) as lock:
            text = lock.read()
            if not text:
                continue
            items = _understood(git, path, text)
            starts = _pairs(text, items, stem)
            git.trace(f"{path}: {len(starts)} of configure's pairs for {url}")
            if not starts:
                continue
            gone = {i + k for i in starts for k in (0, 1)}
            kept: list[Entry] = [
                (item.key, item.value)
                for i, item in enumerate(items)
                if item.kind == _ENTRY and i not in gone
            ]
            lock.commit(_without(text, items, starts, gone), git, kept)
            removed = True
    return removed


# --- the text: what configure appends and unconfigure takes out ---


def _stem(url: str) -> bytes:
    if any(c in url for c in "\n\r\0"):  # git could not read it back (hosts refuses them)
        raise StorageError("a host URL with a line break cannot go into a git config file")
    return b"credential." + url.encode()


def _is_helper(item: _Item) -> bool:
    """An entry that adds to (or clears) the helpers of some hosts, maybe this one's."""
    stem = item.stem
    return (
        item.kind == _ENTRY
        and item.name == b"helper"
        and (stem == b"credential" or stem.startswith(b"credential."))
    )


def _pairs(text: bytes, items: list[_Item], stem: bytes) -> list[int]:
    """Where configure's two lines are: indexes of the "" entry of each pair."""
    found: list[int] = []
    i = 0
    while i + 1 < len(items):
        first, second = items[i], items[i + 1]
        if (
            first.kind == second.kind == _ENTRY
            and first.key == second.key == stem + b".helper"
            and first.value == b""
            and second.value in HELPERS
            and _owns_line(text, first)
            and _owns_line(text, second)
            and _line_start(text, second.start) == first.end  # adjacent lines
        ):
            found.append(i)
            i += 2
        else:
            i += 1
    return found


def _appended(text: bytes, items: list[_Item], stem: bytes, url: str, helper: str) -> bytes:
    """text with configure's lines at its end (a header first unless the last section is
    the host's and holds something: a bare header may be the person's own)."""
    lines = [b"\thelper =", b"\thelper = " + helper.encode()]
    sections = [i for i, item in enumerate(items) if item.kind == _SECTION]
    if not (sections and items[sections[-1]].key == stem and sections[-1] < len(items) - 1):
        quoted = url.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        lines.insert(0, b'[credential "' + quoted + b'"]')
    first_end = text.find(b"\n")
    eol = b"\r\n" if first_end > 0 and text[first_end - 1] == 13 else b"\n"  # CR
    if text and not text.endswith(b"\n"):  # no final newline: keep it that way
        return text + eol + eol.join(lines)
    return text + eol.join(lines) + eol


def _without(text: bytes, items: list[_Item], starts: list[int], gone: set[int]) -> bytes:
    """text without the pairs at starts (their entries: gone), nor the headers and line
    ends configure added."""
    for i in reversed(starts):
        first, second = items[i], items[i + 1]
        start, end = _line_start(text, first.start), second.end
        header = items[i - 1] if i else None
        if (
            header is not None
            and header.kind == _SECTION
            and _owns_line(text, header)
            and _line_end(text, header.end) == start
            and not _entry_follows(items, i + 2, gone)
        ):
            start = _line_start(text, header.start)
        if end == len(text) and not text.endswith(b"\n"):
            eol = b"\r\n" if text[first.end - 2 : first.end] == b"\r\n" else b"\n"
            if start and text[:start].endswith(eol):  # the line end configure put first
                start -= len(eol)
        text = text[:start] + text[end:]
    return text


def _entry_follows(items: list[_Item], index: int, gone: set[int]) -> bool:
    """True when an entry that stays comes from index on, before the next section header."""
    for i in range(index, len(items)):
        if items[i].kind == _SECTION:
            return False
        if items[i].kind == _ENTRY and i not in gone:
            return True
    return False


def _line_start(text: bytes, pos: int) -> int:
    return text.rfind(b"\n", 0, pos) + 1


def _line_end(text: bytes, pos: int) -> int:
    """Just after the newline that ends the line at pos, when only blanks come before it."""
    newline = text.find(b"\n", pos)
    if newline < 0 or text[pos:newline].strip(b" \t\r"):
        return -1
    return newline + 1


def _owns_line(text: bytes, item: _Item) -> bool:
    """True when nothing but blanks comes before item on its line (it can go with it)."""
    return not text[_line_start(text, item.start) : item.start].strip(b" \t\r")


# --- reading and writing a file ---


def _read(path: str) -> bytes | None:
    """A config file's bytes; None when there is none."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _understood(git: GitConfig, path: str, text: bytes) -> list[_Item]:
    """The parsed text, when it says what git reads in the file (git has the last word)."""
    if not text:
        return []  # nothing to ask git about (and the file may not exist)
    try:
        items = _parse(text)
    except ValueError:
        items = None
    entries = git.entries(path)  # raises with git's own words when the file is broken
    if items is None or [(i.key, i.value) for i in items if i.kind == _ENTRY] != entries:
        raise StorageError(f"cannot safely edit {path}; edit it by hand (see git-config(1))")
    return items


class _Lock:
    """`<file>.lock`, created exclusively as git does: no two writers at once."""

    def __init__(self, path: str) -> None:
        self.path = os.path.realpath(path)  # through a symlink, like git
        self.lock = self.path + ".lock"
        self._fd = -1

    def __enter__(self) -> _Lock:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                self._fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                return self
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"cannot change {self.path}: {self.lock} exists (git is writing it,"
                        " or crashed: if no git is running, remove it)"
                    ) from None
                time.sleep(0.05)
            except OSError as exc:
                raise StorageError(f"cannot change {self.path}: {exc.strerror or exc}") from None

    def __exit__(self, *exc_info: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            try:
                os.unlink(self.lock)
            except OSError:
                pass

    def read(self) -> bytes | None:
        """The file's bytes now that no one else writes it; None when there is none."""
        return _read(self.path)

    def commit(self, text: bytes, git: GitConfig, expected: list[Entry]) -> None:
        """Replace the file with text, if git reads in it exactly the expected entries."""
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
            try:
                os.fchmod(self._fd, os.stat(self.path).st_mode & 0o7777)  # the lock we opened
            except FileNotFoundError:
                pass  # a new file: the mode the umask gives, as git does
        except OSError as exc:
            raise StorageError(f"cannot write {self.lock}: {exc.strerror or exc}") from None
        if git.entries(self.lock) != expected:
            raise StorageError(f"cannot safely edit {self.path}; edit it by hand")
        os.close(self._fd)
        self._fd = -1
        try:
            os.replace(self.lock, self.path)
        except OSError as exc:
            os.unlink(self.lock)
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from None


# --- git's config syntax (config.c, git_parse_source), with where each thing is ---

_SECTION, _ENTRY, _COMMENT = "section", "entry", "comment"
_SPACE = frozenset(b" \t\n\r")  # git's isspace
_ALPHA = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_KEYCHAR = _ALPHA | frozenset(b"0123456789-")
_ESCAPES = {ord("t"): ord("\t"), ord("b"): ord("\b"), ord("n"): ord("\n")}
_NL = ord("\n")


class _Item:
    """A section header, an entry or a comment: where it starts and ends in the text."""

    __slots__ = ("kind", "start", "end", "stem", "name", "value")

    def __init__(
        self,
        kind: str,
        start: int,
        end: int,
        stem: bytes = b"",
        name: bytes = b"",
        value: bytes | None = None,
    ) -> None:
        self.kind, self.start, self.end = kind, start, end
        self.stem, self.name, self.value = stem, name, value

    @property
    def key(self) -> bytes:
        """An entry's full key as git lists it; a header's section (and subsection)."""
        if self.kind == _SECTION:
            return self.stem
        return self.stem + b"." + self.name if self.stem else self.name


class _Scanner:
    """git's get_next_char: CRLF reads as LF, the end of the text as a final LF."""

    def __init__(self, text: bytes) -> None:
        self.text = text
        self.pos = 3 if text.startswith(b"\xef\xbb\xbf") else 0  # a BOM, as git skips it
        self.eof = False

    def next(self) -> int:
        text, pos = self.text, self.pos
        if pos >= len(text):
            self.eof = True
            return _NL
        c = text[pos]
        self.pos = pos + 1
        if c == 13 and text[pos + 1 : pos + 2] == b"\n":
            self.pos = pos + 2
            return _NL
        return c


def _parse(text: bytes) -> list[_Item]:
    """Every header, entry and comment of a config file, in order; ValueError when git
    would refuse the file."""
    items: list[_Item] = []
    scan = _Scanner(text)
    stem = b""
    comment = False
    while True:
        start = scan.pos
        c = scan.next()
        if c == _NL:
            if scan.eof:
                return items
            comment = False
        elif comment or c in _SPACE:
            continue
        elif c in b"#;":
            items.append(_Item(_COMMENT, start, start + 1))
            comment = True
        elif c == ord("["):
            stem = _header(scan)
            items.append(_Item(_SECTION, start, scan.pos, stem))
        elif c in _ALPHA:
            name, value = _entry(scan, c)
            items.append(_Item(_ENTRY, start, scan.pos, stem, name, value))
        else:
            raise ValueError(start)


def _header(scan: _Scanner) -> bytes:
    """After '[': the section, lower-cased, and '.' and the subsection if there is one."""
    name = bytearray()
    while True:
        c = scan.next()
        if scan.eof:
            raise ValueError(scan.pos)
        if c == ord("]"):
            break
        if c in _SPACE:  # [section "subsection"]
            while c in _SPACE:
                if c == _NL:
                    raise ValueError(scan.pos)
                c = scan.next()
            if c != ord('"'):
                raise ValueError(scan.pos)
            name.append(ord("."))
            while True:
                c = scan.next()
                if c == _NL:
                    raise ValueError(scan.pos)
                if c == ord('"'):
                    break
                if c == ord("\\"):
                    c = scan.next()
                    if c == _NL:
                        raise ValueError(scan.pos)
                name.append(c)
            if scan.next() != ord("]"):
                raise ValueError(scan.pos)
            break
        if c not in _KEYCHAR and c != ord("."):
            raise ValueError(scan.pos)
        name.append(c | 0x20 if c in _ALPHA else c)
    if not name:
        raise ValueError(scan.pos)
    return bytes(name)


def _entry(scan: _Scanner, c: int) -> tuple[bytes, bytes | None]:
    """From a key's first letter through the end of its value (continuations included)."""
    name = bytearray([c | 0x20])
    while True:
        c = scan.next()
        if scan.eof or c not in _KEYCHAR:
            break
        name.append(c | 0x20 if c in _ALPHA else c)
    while c in b" \t":
        c = scan.next()
    if c == _NL:
        return bytes(name), None  # `key` alone: true
    if c != ord("="):
        raise ValueError(scan.pos)
    return bytes(name), _value(scan)


def _value(scan: _Scanner) -> bytes:
    """git's parse_value: quotes, escapes, comments, continuation lines, blanks trimmed."""
    value = bytearray()
    quote = comment = False
    space = 0
    while True:
        c = scan.next()
        if c == _NL:
            if quote:
                raise ValueError(scan.pos)
            return bytes(value)
        if comment:
            continue
        if c in _SPACE and not quote:
            if value:
                space += 1
            continue
        if not quote and c in b"#;":
            comment = True
            continue
        value += b" " * space
        space = 0
        if c == ord("\\"):
            c = scan.next()
            if c == _NL:
                continue  # a continuation line
            if c in _ESCAPES:
                c = _ESCAPES[c]
            elif c not in b'\\"':
                raise ValueError(scan.pos)
            value.append(c)
        elif c == ord('"'):
            quote = not quote
        else:
            value.append(c)
