"""The commands, one module per executable; what they share is the base of their Options.

Each command module has its usage docstring (the one description of its interface, parsed
by docopt in cli), an `Options` class naming and typing every option of that usage, and
`run(opts, ctx) -> int`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, NoReturn, TypeVar

    OptionsT = TypeVar("OptionsT", bound="Options")

HANDLED_BY_CLI = ("--help", "--version")  # answered by cli before a command runs


class Options:
    """A command's options, read once from docopt's answer into typed, frozen attributes.

    A subclass lists its fields in `__slots__` and types them with class annotations
    (`host: str | None`, `no_browser: bool`), for mypy; their values are docopt's own:
    a string, None when a valued option without a default was not given, a bool for a
    flag. Plain slots rather than a dataclass: `rexec-credential get` builds one on every
    fetch, and dataclasses would import `re` and `inspect`. Frozen, so that what a command
    was asked stays what it was asked.
    """

    __slots__ = ()

    def __init__(self, **fields: Any) -> None:
        if set(fields) != set(self.__slots__):
            raise TypeError(f"{type(self).__name__} takes {self.__slots__}, not {tuple(fields)}")
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_docopt(cls: type[OptionsT], args: Mapping[str, Any]) -> OptionsT:
        """Each field from docopt's key of the same name: `--no-browser` gives `no_browser`,
        `<operation>` gives `operation`; --help and --version are cli's."""
        return cls(
            **{
                key.strip("<>").lstrip("-").replace("-", "_"): value
                for key, value in args.items()
                if key not in HANDLED_BY_CLI
            }
        )

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is frozen: {name} cannot be set")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is frozen: {name} cannot be deleted")
