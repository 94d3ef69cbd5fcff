"""rexec-credential: Rexec login and git credential helper. Imports nothing (hot path).

git runs `git-credential-rexec get` on every fetch and push, so its start-up is held close
to what `python -c "import json"` costs (docs/contract.md §7, bench/credential_get.py).
Two idioms of this package exist for that alone:

- `TYPE_CHECKING = False`, then `if TYPE_CHECKING:` around the imports that only
  annotations need, instead of `from typing import TYPE_CHECKING`: importing `typing` costs
  about 2 ms (on Python 3.11), a tenth of that floor. Type checkers take any name
  `TYPE_CHECKING` as true, and annotations are never evaluated (`from __future__ import
  annotations`), so `typing` is never loaded at run time.
- The executables are the three-line files in bin/, installed by `scripts =` in setup.cfg
  rather than as console_scripts entry points: the wrapper pip writes for an entry point
  imports `re` and compiles a pattern on every start, and older setuptools wrappers look
  the entry point up through importlib.metadata or pkg_resources, which load `typing`,
  `email`, `zipfile` and more (about 20 ms: it would double `get`).

tests/test_credential.py names every module `get` must not load, and why.
"""

__version__ = "0.2.0"
