"""cli: docopt's answer read into each command's frozen Options, --help/--version, usage
errors that name an unknown option (never a value), and the trace's list of arguments."""

from __future__ import annotations

import os

import pytest
from conftest import call, run_bin
from docopt import docopt

import rexec_credential
from rexec_credential import cli
from rexec_credential.commands import credential, login, logout, whoami

COMMANDS = {"login": login, "logout": logout, "whoami": whoami, "credential": credential}
TYPES = {"str": str, "bool": bool, "None": type(None)}

# Command lines that, between them, give every option of each usage and leave out each
# one that may be left out.
SAMPLES = {
    "login": [
        [],
        [
            "--host=https://h.example",
            "--port=0",
            "--timeout=5",
            "--no-browser",
            "--expires-in=0",
            "--token-name=laptop",
            "--session-token",
        ],
        ["--token=-", "--host", "https://h.example"],
        ["--renew", "--user=u", "--expires-in", "7"],
        ["--switch", "--user", "u"],
    ],
    "logout": [
        [],
        ["--host=https://h.example", "--user=u", "--local", "--end-session"],
        ["--all", "--local", "--end-session"],
    ],
    "whoami": [
        [],
        ["--host=https://h.example", "--porcelain"],
        ["--json"],
        ["--all", "--offline", "--json"],
    ],
    "credential": [
        ["get"],
        ["--bearer", "store"],
        ["erase"],
        ["configure", "--bearer", "--host=https://h.example", "--system"],
        ["unconfigure", "--local"],
        ["--bearer", "future"],
    ],
}


def fields(opts) -> dict:
    return {name: getattr(opts, name) for name in type(opts).__slots__}


def allowed(cls, name: str) -> set:
    """The types a field's annotation ("str | None", "bool") names."""
    return {TYPES[part] for part in cls.__annotations__[name].split(" | ")}


def parsed(command: str, argv: list):
    module = COMMANDS[command]
    return module.Options.from_docopt(docopt(module.__doc__, argv, default_help=False))


# -- each command's Options -------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_of_the_usage_is_a_typed_field(command):
    """One field per option (--no-browser: no_browser), each annotated; the usage's command
    words and <operation> are credential's `operation`."""
    module = COMMANDS[command]
    keys = set(docopt(module.__doc__, SAMPLES[command][0], default_help=False))
    options = {key[2:].replace("-", "_") for key in keys if key.startswith("--")}
    words = keys - {key for key in keys if key.startswith("--")}
    expected = options - {"help", "version"} | ({"operation"} if words else set())
    assert set(module.Options.__slots__) == expected
    assert set(module.Options.__annotations__) == expected


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_field_gets_the_types_its_annotation_names_and_no_other(command):
    cls = COMMANDS[command].Options
    seen: dict = {name: set() for name in cls.__slots__}
    flags: dict = {name: set() for name in cls.__slots__ if allowed(cls, name) == {bool}}
    for argv in SAMPLES[command]:
        opts = parsed(command, argv)
        assert type(opts) is cls
        for name, value in fields(opts).items():
            assert type(value) in allowed(cls, name), (argv, name, value)
            seen[name].add(type(value))
            if name in flags:
                flags[name].add(value)
    assert seen == {name: allowed(cls, name) for name in cls.__slots__}  # each type given
    assert all(values == {True, False} for values in flags.values()), flags


def test_login_options_are_docopts_values():
    opts = parsed("login", ["--no-browser", "--port", "0", "--token-name=laptop"])
    assert fields(opts) == {
        "host": None,
        "port": "0",
        "timeout": "300",  # the usage's default, checked where it is used
        "no_browser": True,
        "expires_in": "90",
        "token_name": "laptop",
        "session_token": False,
        "token": None,
        "renew": False,
        "switch": False,
        "user": None,
    }


@pytest.mark.parametrize(
    "argv, operation",
    [
        (["get"], "get"),
        (["store"], "store"),
        (["erase"], "erase"),
        (["configure"], "configure"),
        (["unconfigure", "--local"], "unconfigure"),
        (["future"], "future"),
        (["--bearer", "get"], "get"),
    ],
)
def test_credential_operation_is_the_command_word_or_any_other(argv, operation):
    assert parsed("credential", argv).operation == operation


@pytest.mark.parametrize("argv", [["get"], ["--bearer", "get"], ["--bearer", "future"]])
def test_quick_parse_gives_the_options_docopt_gives(argv):
    """git's forms skip docopt; the command cannot tell."""
    quick = credential.Options.from_docopt(credential.quick_parse(argv))
    assert fields(quick) == fields(parsed("credential", argv))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_options_cannot_be_changed(command):
    opts = parsed(command, SAMPLES[command][-1])
    before = fields(opts)
    for name in type(opts).__slots__:
        with pytest.raises(AttributeError, match="frozen"):
            setattr(opts, name, "changed")
        with pytest.raises(AttributeError, match="frozen"):
            delattr(opts, name)
    with pytest.raises(AttributeError):
        opts.something_else = True
    assert not hasattr(opts, "__dict__")
    assert fields(opts) == before


def test_a_field_missing_or_unknown_is_refused():
    """Should a usage gain or lose an option, its Options says so on the first run."""
    args = dict(docopt(whoami.__doc__, [], default_help=False))
    with pytest.raises(TypeError):
        whoami.Options.from_docopt({**args, "--verbose": True})
    del args["--offline"]
    with pytest.raises(TypeError):
        whoami.Options.from_docopt(args)


# -- --help and --version ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["rexec-login", "rexec-logout", "rexec-whoami", "rexec-credential", "git-credential-rexec"],
)
def test_every_executable_has_help_and_version(name):
    helped = run_bin(name, "--help")
    assert helped.code == 0 and "Usage:" in helped.out and helped.err == ""
    version = run_bin(name, "--version")
    assert version.code == 0 and version.out.strip().endswith(rexec_credential.__version__)


def test_git_credential_rexec_help_names_itself():
    result = run_bin("git-credential-rexec", "--help")
    assert result.code == 0
    usage = result.out.split("Options:")[0]
    assert "  git-credential-rexec [--bearer] (get | store | erase)" in usage
    assert "rexec-credential" not in usage.split("Usage:")[1]


# -- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rexec-login", "rexec-logout", "rexec-whoami"])
def test_usage_errors_exit_2_with_one_line_and_no_argv_echo(name):
    result = run_bin(name, "--bogus=rexec_SECRETSECRETSECRETSECRETSECRET12")
    assert result.code == 2
    assert result.err == f"{name}: unknown option --bogus; see '{name} --help'\n"
    assert "SECRET" not in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(
    "argv, named",
    [
        (["-x"], "-x"),
        (["--host=https://h", "--bogus"], "--bogus"),
        (["--Host", "x"], "--Host"),
    ],
    ids=["short", "after-a-good-one", "case"],
)
def test_usage_error_names_the_unknown_option(argv, named):
    result = run_bin("rexec-whoami", *argv)
    assert (result.code, result.err) == (
        2,
        f"rexec-whoami: unknown option {named}; see 'rexec-whoami --help'\n",
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_in_process_usage_errors_name_the_program_from_the_usage(command):
    prog = "rexec-" + command if command != "credential" else "rexec-credential"
    unknown = call(command, ["--bogus=rexec_" + "S" * 40])
    assert (unknown.code, unknown.out) == (2, "")
    assert unknown.err == f"{prog}: unknown option --bogus; see '{prog} --help'\n"
    invalid = call(command, ["--help", "stray"])
    assert (invalid.code, invalid.out) == (2, "")
    assert invalid.err == f"{prog}: invalid arguments; see '{prog} --help'\n"


@pytest.mark.parametrize(
    "command, argv, named",
    [
        ("whoami", ["--bogus=rexec_SECRET"], "--bogus"),  # the name, never the value
        ("whoami", ["-hx"], "-x"),  # bundled short options, one by one
        ("whoami", ["--Host", "x"], "--Host"),  # names are case-sensitive
        ("login", ["--s"], "--s"),  # a prefix of --session-token and of --switch
        ("login", ["--no"], None),  # a unique prefix: --no-browser
        ("login", ["--host", "--bogus"], None),  # --host's value
        ("login", ["--bogus", "--host"], "--bogus"),  # before an option missing its value
        ("whoami", ["--all=x", "--bogus"], "--bogus"),  # after one given a value it takes not
        ("whoami", ["--", "--bogus"], None),  # after --: an argument
        ("whoami", ["-1"], None),  # docopt reads a negative number as an argument
        ("logout", ["--session-token"], "--session-token"),  # login's, named in logout's prose
        ("credential", ["--b", "get"], None),  # --bearer
        ("whoami", ["--" + "a" * 50], None),  # too long to show
        ("whoami", ["--bögus"], None),  # not ASCII: not shown
    ],
)
def test_unknown_option_is_the_first_option_docopt_does_not_know(command, argv, named):
    assert cli.unknown_option(COMMANDS[command].__doc__, argv) == named


# -- the trace --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, argv, named",
    [
        ("whoami", ["--host", "https://h.example", "--json"], "--host --json"),
        ("credential", ["get"], "none"),  # git's form, without docopt
        ("credential", ["--bearer", "get"], "--bearer"),
        ("credential", ["store", "--bearer"], "--bearer store"),  # through docopt
    ],
)
def test_the_trace_names_the_arguments_given_never_their_values(command, argv, named):
    result = call(command, argv, env=dict(os.environ, REXEC_TRACE="2"))
    lines = [line for line in result.err.splitlines() if ": arguments: " in line]
    assert len(lines) == 1 and lines[0].endswith(f": arguments: {named}"), result
    assert "h.example" not in lines[0]
