"""The man pages (one per executable, docs/contract.md §1): they render, lint clean, match
the docopt usage, and `pip install` puts them where man(1) finds them.

The pages are hand-written man(7) roff in man/. The checks run on a copy laid out as
installed (<tree>/man1/<page>.1), so that the `.so man1/rexec-credential.1` page
resolves exactly as it will under <prefix>/share/man.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

import rexec_credential

REPO = Path(__file__).resolve().parent.parent
MAN_DIR = REPO / "man"
# Taken at import, before the autouse fixture empties HOME and the proxy variables:
# pip needs them to reach PyPI.
ORIGINAL_ENV = dict(os.environ)

COMMANDS = {  # page → the module whose docstring is its docopt usage
    "rexec-login": "login",
    "rexec-logout": "logout",
    "rexec-whoami": "whoami",
    "rexec-credential": "credential",
}
ALIASES = {"git-credential-rexec": "rexec-credential"}  # a `.so` page → its target
ALL_PAGES = [*COMMANDS, *ALIASES]
SECTIONS = [
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "OPTIONS",
    "ENVIRONMENT",
    "FILES",
    "EXIT STATUS",
    "EXAMPLES",
    "SECURITY",
    "SEE ALSO",
]
ENVIRONMENT = [
    "REXEC_HOST",
    "REXEC_TOKEN",
    "REXEC_CONFIG_DIR",
    "REXEC_ALLOW_INSECURE_HTTP",
    "REXEC_TRACE",
    "BROWSER",
    "NO_COLOR",
    "REQUESTS_CA_BUNDLE",
]
EXIT_STATUSES = ["0", "1", "2", "3", "4", "130"]
PIPELINE = (
    "printf 'protocol=https\\nhost=rexec.pipeops.io\\n' | rexec-credential get"
    " | sed -n 's/^password=//p'"
)
GIT_SETUP = "rexec-credential configure"
SO_WARNING = "WARNING: .so is fragile, better use ln(1): so man1/rexec-credential.1"
# An option as written in a usage or a page: -h, --help, --host=URL, --token=TOKEN.
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)(=[\w<>-]+)?")


# -- tools ------------------------------------------------------------------------------


def need(tool: str) -> str:
    """The tool's path; a missing tool skips the test, or fails it when CI is set."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (Debian: .ci/system-deps installs it)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so the man-page checks must run")
        pytest.skip(message)
    return path


def run(
    argv: list, cwd: Path, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of man/ laid out as installed: <tree>/man1/*.1."""
    root = tmp_path_factory.mktemp("man")
    (root / "man1").mkdir()
    for page in MAN_DIR.glob("*.1"):
        shutil.copy(page, root / "man1" / page.name)
    return root


def man_env(**extra: str) -> dict:
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat", LC_ALL="C.UTF-8")
    env.update(extra)
    return env


def render(page: str, tree: Path) -> str:
    """What `man -l` shows for the page (UTF-8 locale: quotes must stay ASCII there too)."""
    need("man")
    result = run(["man", "-l", "--no-hyphenation", "-P", "cat", f"man1/{page}.1"], tree, man_env())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


# -- reading roff source ----------------------------------------------------------------

_GLYPHS = {
    "aq": "'",
    "dq": '"',
    "ti": "~",
    "ha": "^",
    "OK": "\u2713",
    "em": "\u2014",
    "en": "\u2013",
    "bu": "\u2022",
    "ga": "`",
    "rs": "\\",
}
_ESCAPE = re.compile(r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|(.))")
_JOIN = "\x00"  # marks a \c: no space before the next piece


def _unescape(text: str) -> str:
    def one(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name is not None:
            if re.fullmatch(r"u[0-9A-F]{4,5}", name):
                return chr(int(name[1:], 16))
            return _GLYPHS.get(name, "?")
        char = match.group(3)
        if char is None:
            return ""  # a font change
        return {
            "-": "-",
            "e": "\\",
            "&": "",
            " ": " ",
            "~": " ",
            "c": _JOIN,
            "|": "",
            "^": "",
            "%": "",
        }.get(char, char)

    return _ESCAPE.sub(one, text)


def _arguments(line: str) -> list:
    """A macro line's arguments: blank-separated, "double quoted" ones may hold blanks."""
    args, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        if line[i] == '"':
            j, arg = i + 1, ""
            while j < len(line):
                if line.startswith('""', j):
                    arg, j = arg + '"', j + 2
                elif line[j] == '"':
                    break
                else:
                    arg, j = arg + line[j], j + 1
            args.append(arg)
            i = j + 1
        else:
            j = i
            while j < len(line) and line[j] != " ":
                j += 2 if line[j] == "\\" else 1  # an escape, e.g. "\ ", is part of it
            args.append(line[i:j])
            i = j
    return args


_BREAKS = {
    "SY",
    "YS",
    "br",
    "PP",
    "P",
    "LP",
    "TP",
    "IP",
    "SH",
    "SS",
    "EX",
    "EE",
    "nf",
    "fi",
    "sp",
    "RS",
    "RE",
    "TH",
}


def text_lines(source: list) -> list:
    """Roff source lines → text lines, one per output break (fonts dropped, escapes decoded)."""
    lines, pieces = [], []

    def flush() -> None:
        text = ""
        for piece in pieces:
            if text and not text.endswith(_JOIN):
                text += " "
            text += piece
        text = " ".join(text.replace(_JOIN, "").split())
        if text:
            lines.append(text)
        pieces.clear()

    for raw in source:
        if raw.startswith(('.\\"', "'\\\"")):
            continue  # a comment
        if raw.startswith((".", "'")):
            name, _, rest = raw[1:].strip().partition(" ")
            args = [_unescape(a) for a in _arguments(rest)]
            if name in _BREAKS:
                flush()
                if name == "SY":
                    pieces.extend(args)
            elif name in ("B", "I", "SM", "SB"):
                pieces.append(" ".join(args))
            elif name in ("BR", "RB", "BI", "IB", "IR", "RI"):
                pieces.append("".join(args))
        else:
            pieces.append(_unescape(raw))
    flush()
    return lines


def source(page: str) -> list:
    return (MAN_DIR / f"{page}.1").read_text(encoding="utf-8").splitlines()


def sections(page: str) -> dict:
    """Section name → its roff source lines."""
    found: dict = {}
    current = None
    for line in source(page):
        if line.startswith(".SH "):
            current = " ".join(_arguments(line[4:]))
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


def tags(section: list) -> list:
    """The text of each `.TP` item's tag line in a section."""
    return [
        text_lines([section[i + 1]])[0]
        for i, line in enumerate(section[:-1])
        if line.strip() == ".TP"
    ]


# -- reading the docopt usage -----------------------------------------------------------


def usage(page: str) -> tuple:
    """(usage lines, option column of each Options: entry) of the page's command."""
    doc = importlib.import_module(f"rexec_credential.commands.{COMMANDS[page]}").__doc__
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower().startswith("usage:"))
    patterns = [lines[start].split(":", 1)[1].strip()]
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        if patterns and patterns[-1].strip() and not line.strip().startswith(page):
            patterns[-1] += " " + line  # a usage line continued on the next (docopt joins them)
        else:
            patterns.append(line)
    patterns = [" ".join(p.split()) for p in patterns if p.strip()]
    start = next(i for i, line in enumerate(lines) if line.strip().lower().startswith("options:"))
    entries, indent = [], None
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        depth = len(line) - len(line.lstrip())
        if indent is None and line.lstrip().startswith("-"):
            indent = depth
        if depth == indent and line.lstrip().startswith("-"):
            entries.append(re.split(r"\s{2,}", line.strip())[0])
    return patterns, entries


def forms(text: str) -> set:
    """Every option in text, with its =ARGUMENT when written so: {'--host=URL', '-h', ...}."""
    return {name + (arg or "") for name, arg in OPTION.findall(text)}


def names(text: str) -> set:
    return {name for name, _ in OPTION.findall(text)}


def _plain(pattern: str) -> str:
    return pattern.replace("<", "").replace(">", "")  # docopt's <arg> is man's italic arg


# -- the pages exist and are well formed ------------------------------------------------


def test_every_executable_has_a_page():
    executables = sorted(p.name for p in (REPO / "bin").iterdir())
    assert sorted(ALL_PAGES) == executables
    assert sorted(p.stem for p in MAN_DIR.glob("*.1")) == sorted(ALL_PAGES)


@pytest.mark.parametrize("alias", ALIASES)
def test_alias_page_is_a_so_request_for_its_target(alias):
    assert source(alias) == [f".so man1/{ALIASES[alias]}.1"]


@pytest.mark.parametrize("page", COMMANDS)
def test_title_line(page):
    first = source(page)[0]
    match = re.fullmatch(r'\.TH (\S+) 1 "([^"]+)" "rexec-credential (\S+)" "User Commands"', first)
    assert match, first
    title, date, version = match.groups()
    assert title == page.upper()
    assert version == rexec_credential.__version__
    datetime.strptime(date, "%B %d, %Y")  # mandoc's preferred form; raises if not


@pytest.mark.parametrize("page", COMMANDS)
def test_sections_in_order(page):
    assert list(sections(page)) == SECTIONS
    name_line = " ".join(text_lines(sections(page)["NAME"]))
    assert re.match(rf"{page}(, [\w-]+)* - \S", name_line), name_line


@pytest.mark.parametrize("page", COMMANDS)
def test_no_blank_lines_or_trailing_blanks_in_source(page):
    for number, line in enumerate(source(page), 1):
        assert line.strip(), f"{page}.1:{number} is blank"
        assert line == line.rstrip(), f"{page}.1:{number} ends in white space"


# -- renderers and linters --------------------------------------------------------------


@pytest.mark.parametrize("page", ALL_PAGES)
def test_renders_with_man(page, tree):
    shown = render(page, tree)
    target = ALIASES.get(page, page)
    assert shown.startswith(f"{target.upper()}(1)")
    for heading in SECTIONS:
        assert f"\n{heading}\n" in shown
    assert page in shown


@pytest.mark.parametrize("page", ALL_PAGES)
def test_mandoc_lint_is_clean(page, tree):
    need("mandoc")
    result = run(["mandoc", "-Tlint", f"man1/{page}.1"], tree)
    messages = (result.stdout + result.stderr).splitlines()
    if page in ALIASES:
        # mandoc flags every .so page as fragile; the request itself must resolve.
        assert messages == [f"mandoc: man1/{page}.1:1:2: {SO_WARNING}"]
    else:
        assert messages == []
        assert result.returncode == 0


@pytest.mark.parametrize("page", ALL_PAGES)
def test_groff_is_silent(page, tree):
    need("groff")
    result = run(["groff", "-man", "-ww", "-z", f"man1/{page}.1"], tree)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# -- the pages match the docopt usage ---------------------------------------------------


@pytest.mark.parametrize("page", COMMANDS)
def test_synopsis_has_the_usage_lines(page):
    patterns, _ = usage(page)
    synopsis = text_lines(sections(page)["SYNOPSIS"])
    expected = [_plain(p) for p in patterns]
    own = [line for line in synopsis if line.split()[0] == page]
    assert own == expected
    for line in synopsis:  # other lines: the same usage under an alias's name
        name = line.split()[0]
        assert name == page or ALIASES.get(name) == page, line
        assert f"{page}{line[len(name) :]}" in expected, line


@pytest.mark.parametrize("page", COMMANDS)
def test_every_usage_option_is_in_synopsis_and_options(page):
    patterns, entries = usage(page)
    documented = forms(" ".join(entries))
    in_usage = forms(" ".join(patterns))
    assert in_usage <= documented, "the usage names an option its Options: section lacks"
    synopsis = forms(" ".join(text_lines(sections(page)["SYNOPSIS"])))
    items = forms(" ".join(tags(sections(page)["OPTIONS"])))
    assert in_usage <= synopsis
    assert items == documented


@pytest.mark.parametrize("page", COMMANDS)
def test_every_option_in_the_page_is_in_the_usage(page):
    patterns, entries = usage(page)
    known = names(" ".join(patterns + entries))
    page_sections = sections(page)
    for name in ("SYNOPSIS", "OPTIONS"):
        text = " ".join(text_lines(page_sections[name]))
        assert names(text) <= known, f"{name} names options the usage does not have"


# -- what every page must say -----------------------------------------------------------


@pytest.mark.parametrize("page", COMMANDS)
def test_environment_lists_every_variable(page):
    text = " ".join(tags(sections(page)["ENVIRONMENT"]))
    for variable in ENVIRONMENT:
        assert re.search(rf"\b{variable}\b", text), variable


def test_every_variable_the_code_reads_is_in_the_list():
    """Every REXEC_* name in the package's source (not the stand-in's) is one the pages must
    document, so a variable added to the code cannot be left out of ENVIRONMENT."""
    package = REPO / "rexec_credential"
    named = set()
    for path in package.rglob("*.py"):
        if "testing" not in path.relative_to(package).parts:
            named |= set(re.findall(r"\bREXEC_[A-Z_]+\b", path.read_text()))
    assert named <= set(ENVIRONMENT), sorted(named - set(ENVIRONMENT))


@pytest.mark.parametrize("page", COMMANDS)
def test_files_name_both_files_modes_lock_backups_and_completions(page):
    text = " ".join(text_lines(sections(page)["FILES"]))
    for needle in (
        "~/.rexec/config.json",
        "~/.rexec/credentials.json",
        "0600",
        "0700",
        "~/.rexec/config.json.lock",
        ".corrupt-",
        "Rexec CLI",
        "share/bash-completion/completions",
        "share/zsh/site-functions",
        "share/fish/vendor_completions.d",
    ):
        assert needle in text, needle


@pytest.mark.parametrize("page", COMMANDS)
def test_exit_statuses(page):
    assert tags(sections(page)["EXIT STATUS"]) == EXIT_STATUSES


@pytest.mark.parametrize("page", COMMANDS)
def test_examples_copy_paste_as_written(page, tree):
    shown = render(page, tree)
    examples = shown.split("\nEXAMPLES\n", 1)[1].split("\nSECURITY\n", 1)[0]
    lines = [line.strip() for line in examples.splitlines()]
    assert PIPELINE in lines
    assert GIT_SETUP in lines
    assert any("REXEC_TOKEN:" in line for line in lines)  # the CI step


@pytest.mark.parametrize("page", COMMANDS)
def test_security_covers_storage_argv_and_callback(page):
    text = " ".join(text_lines(sections(page)["SECURITY"]))
    for needle in ("plain text", "0600", "--token -", "loopback", "one-time nonce"):
        assert needle in text, needle


@pytest.mark.parametrize("page", COMMANDS)
def test_see_also(page):
    text = " ".join(text_lines(sections(page)["SEE ALSO"]))
    myself = {page} | {alias for alias, target in ALIASES.items() if target == page}
    for other in sorted(set(ALL_PAGES) - myself):
        assert f"{other}(1)" in text
    assert "git-credential(1)" in text
    assert "gitcredentials(7)" in text


# -- installed by pip -------------------------------------------------------------------

_OFFLINE = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "ProxyError",
    "No matching distribution found",
    "Network is unreachable",
)


@pytest.mark.packaging
def test_pip_install_puts_the_pages_where_man_finds_them(tmp_path, standin):
    """`pip install .` into a fresh venv, then `man -M <venv>/share/man -w <page>`; the
    installed executables work."""
    need("man")
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            ".hypothesis",
            "tests",
            "bench",
        ),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    env = dict(ORIGINAL_ENV, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)
    pip = run([str(venv / "bin" / "pip"), "install", "-q", str(src)], tmp_path, env, timeout=240)
    if (
        pip.returncode != 0
        and not os.environ.get("CI")
        and any(word in pip.stdout + pip.stderr for word in _OFFLINE)
    ):
        pytest.skip("PyPI is unreachable: " + pip.stderr.strip().splitlines()[-1])
    assert pip.returncode == 0, pip.stdout + pip.stderr
    manpath = venv / "share" / "man"
    for page in ALL_PAGES:
        assert (manpath / "man1" / f"{page}.1").is_file(), f"{page}.1 is not installed"
        found = run(["man", "-M", str(manpath), "-w", page], tmp_path, man_env())
        assert found.returncode == 0, found.stderr
        target = ALIASES.get(page, page)  # man -w follows a .so to the page it names
        assert Path(found.stdout.strip()) == manpath / "man1" / f"{target}.1"
        shown = run(["man", "-M", str(manpath), "-P", "cat", page], tmp_path, man_env())
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"{target.upper()}(1)")
    for name in ALL_PAGES:  # every executable is on the venv's PATH and names itself
        version = run([str(venv / "bin" / name), "--version"], tmp_path, env)
        assert version.stdout == f"{name} {rexec_credential.__version__}\n", version.stderr
    # ... and works: a token login against the stand-in, then git's question answered.
    token = standin.mint_api_token("johndoe")
    env = dict(env, HOME=str(tmp_path / "home"), NO_PROXY="127.0.0.1")
    login = subprocess.run(
        [str(venv / "bin" / "rexec-login"), "--token", "-", "--host", standin.url],
        input=token,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    get = subprocess.run(
        [str(venv / "bin" / "git-credential-rexec"), "get"],
        input="",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert f"password={token}\n" in get.stdout and get.stderr == ""
