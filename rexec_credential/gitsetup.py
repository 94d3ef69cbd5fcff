"""Set git up to ask this helper for one Rexec host, and undo exactly that: `git config`.

`configure` gives `credential.<host-url>.helper` two values, as `gh auth setup-git` does:
an empty one, which clears the helpers configured for every host (so no other helper is
asked for, or stores, Rexec's tokens), then `rexec`, which git runs as
`git credential-rexec` from PATH (no absolute path, so an upgrade or a moved
installation keeps working). `unconfigure` removes those two values and, when nothing
else is left in the section, the section itself, so the file is as it was before.
"""

from __future__ import annotations

import subprocess

from . import tokens
from .errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

HELPER = "rexec"
OURS = ("", HELPER)  # the values configure adds, in order
SCOPES = ("--global", "--system", "--local")


class GitConfig:
    """`git config` in one scope (--global, --system or --local)."""

    def __init__(self, scope: str, env: Mapping[str, str]) -> None:
        self.scope = scope
        self._env = dict(env)

    def helpers(self, url: str) -> list[str]:
        """The values of credential.<url>.helper in this scope, in order."""
        result = self._git("--get-all", key(url), ok=(0, 1))  # 1: no such key
        return result.split("\n")[:-1] if result else []

    def add(self, url: str, value: str) -> None:
        """Append a value to credential.<url>.helper."""
        self._git("--add", key(url), value)

    def remove(self, url: str, value: str) -> None:
        """Remove every credential.<url>.helper entry equal to value."""
        self._git("--unset-all", "--fixed-value", key(url), value, ok=(0, 5))  # 5: none

    def section_is_empty(self, url: str) -> bool:
        """True when the scope holds no other key of credential.<url>."""
        names = self._git("--name-only", "--list", "-z", ok=(0, 1)).split("\0")
        prefix = f"credential.{url}."
        return not any(name.startswith(prefix) for name in names)

    def remove_section(self, url: str) -> None:
        """Remove the (empty) [credential "<url>"] section header."""
        self._git("--remove-section", f"credential.{url}", ok=(0, 128))  # 128: none there

    def _git(self, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        argv = ["git", "config", self.scope, *args]
        try:
            proc = subprocess.run(
                argv, env=self._env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise StorageError(
                "git is not installed (no git on PATH); install it, then run this again"
            ) from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StorageError(f"cannot run git config: {exc}") from None
        if proc.returncode not in ok:
            said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            reason = tokens.clean(said[0] if said else f"exit status {proc.returncode}")
            raise StorageError(f"git config {self.scope} failed: {reason}")
        return proc.stdout.decode("utf-8", "replace")


def key(url: str) -> str:
    """The git config key that names this host's helpers."""
    return f"credential.{url}.helper"


def configure(git: GitConfig, url: str) -> bool:
    """Make git ask only this helper for url; False when it already does."""
    current = git.helpers(url)
    if tuple(current[-2:]) == OURS:
        return False
    for value in OURS:  # a half-done earlier attempt: start again
        if value in current:
            git.remove(url, value)
    for value in OURS:
        git.add(url, value)
    return True


def unconfigure(git: GitConfig, url: str) -> bool:
    """Remove what configure added for url; False when there was nothing to remove."""
    current = git.helpers(url)
    if not any(value in current for value in OURS):
        return False
    for value in OURS:
        git.remove(url, value)
    if git.section_is_empty(url):
        git.remove_section(url)
    return True
