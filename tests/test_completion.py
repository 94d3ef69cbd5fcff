"""Shell completion (completions/), driven through each shell's own machinery: bash's
`complete -F` function with COMP_LINE/COMP_POINT as bash sets them, zsh's compinit and a
real line editor on a pseudo-terminal (zpty), fish's `complete -C`. Stored account names
and hosts are completed without any request to a server and without printing a token."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import log_in

pytestmark = pytest.mark.shells

COMPLETIONS = Path(__file__).resolve().parent.parent / "completions"
COMMANDS = [
    "rexec-login",
    "rexec-logout",
    "rexec-whoami",
    "rexec-credential",
    "git-credential-rexec",
]
JOHN = "rexec_" + "a" * 64
JANE_HOST = "http://127.0.0.1:8080"


def shell(name: str) -> str:
    """The shell's path; missing outside CI skips, in CI fails (CI installs them)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (.ci/system-deps installs it)")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture
def accounts_here(home, standin):
    """Two stored logins, one a JWT with a session; the stand-in sees every request."""
    log_in(home / ".rexec", "https://rexec.pipeops.io", JOHN, "johndoe")
    jane = standin.mint_jwt("janedoe")
    log_in(home / ".rexec", JANE_HOST, jane, "janedoe")
    standin.clear_log()
    return [JOHN, jane]


def bash_candidates(line: str) -> list:
    """What bash offers at the end of line, through the function `complete` registered."""
    script = (
        f". {COMPLETIONS}/bash/{line.split()[0]}\n"
        'spec=$(complete -p "${LINE%% *}")\n'
        "function=${spec#*-F }; function=${function%% *}\n"
        "COMP_LINE=$LINE; COMP_POINT=${#LINE}\n"
        'read -r -a COMP_WORDS <<<"$LINE"; COMP_CWORD=${#COMP_WORDS[@]}\n'
        '"$function" "${LINE%% *}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        [shell("bash"), "--norc", "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ, LINE=line),
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return sorted(filter(None, proc.stdout.split("\n")))


@pytest.mark.parametrize("command", COMMANDS)
def test_bash_registers_a_completion_for_every_executable(command):
    proc = subprocess.run(
        [shell("bash"), "--norc", "-c", f". {COMPLETIONS}/bash/{command}; complete -p {command}"],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip() == f"complete -F _rexec_complete {command}"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("rexec-login --sw", ["--switch"]),
        ("rexec-login --t", ["--timeout", "--token"]),
        ("rexec-login --switch --user ", ["janedoe", "johndoe"]),
        ("rexec-login --switch --user=ja", ["janedoe"]),
        ("rexec-logout --a", ["--all"]),
        ("rexec-logout --host http://127.0.0.1:8", ["8080"]),  # bash replaces what follows ':'
        (
            "rexec-whoami --",
            ["--all", "--help", "--host", "--json", "--offline", "--porcelain", "--version"],
        ),
        (
            "rexec-credential ",
            ["--help", "--version", "configure", "erase", "get", "store", "unconfigure"],
        ),
        ("git-credential-rexec configure --", ["--host", "--local", "--system"]),
        ("rexec-credential get ", []),
        ("rexec-login --port ", []),
    ],
)
def test_bash_candidates(accounts_here, line, expected):
    assert bash_candidates(line) == expected


def zsh_run(script: str) -> str:
    proc = subprocess.run(
        [shell("zsh"), "-f", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_zsh_compinit_picks_the_function_for_every_executable():
    out = zsh_run(
        f"fpath=({COMPLETIONS}/zsh $fpath); autoload -Uz compinit; compinit -u -D; "
        f"for c in {' '.join(COMMANDS)}; do print -- $c=$_comps[$c]; done"
    )
    assert out.split() == [f"{c}=_rexec" for c in COMMANDS]


@pytest.mark.parametrize(
    "words, expected",
    [
        (["rexec-login", "--switch", "--user", ""], ["janedoe", "johndoe"]),
        (["rexec-login", "--user=j"], ["--user=janedoe", "--user=johndoe"]),
        (
            ["rexec-credential", ""],
            ["--help", "--version", "configure", "erase", "get", "store", "unconfigure"],
        ),
        (["rexec-credential", "unconfigure", ""], ["--host", "--local", "--system"]),
        (["rexec-logout", "--host", ""], [JANE_HOST, "https://rexec.pipeops.io"]),
    ],
)
def test_zsh_candidates(accounts_here, words, expected):
    """The function as compsys calls it (words, CURRENT, service), its compadd recorded."""
    quoted = " ".join(f"'{w}'" for w in words)
    out = zsh_run(
        f"fpath=({COMPLETIONS}/zsh $fpath); autoload -Uz compinit; compinit -u -D\n"
        "compadd() { local p=; if [[ $1 == -P ]]; then p=$2; shift 2; fi; shift; "
        "print -rl -- ${@/#/$p} }\n"
        f"words=({quoted}); CURRENT=${{#words}}; service={words[0]}; _rexec; true"
    )
    assert sorted(out.split()) == sorted(expected)


def test_zsh_completes_on_a_real_line_editor(accounts_here, tmp_path):
    """zpty: an interactive zsh, TAB pressed after each line; the buffer it ends with."""
    dump = tmp_path / "buffer"
    lines = [
        "rexec-login --sw",
        "rexec-logout --user ja",
        "git-credential-rexec unc",
        "rexec-whoami --off",
    ]
    steps = "\n".join(
        f"zpty -w -n t $'{line}\\t\\x18'\n"
        f"for i in {{1..100}}; do [[ -s {dump} ]] && break; sleep 0.1; done\n"
        f"cat {dump}; print; rm -f {dump}"
        for line in lines
    )
    out = zsh_run(
        "zmodload zsh/zpty\nzpty -b t zsh -f -i\n"
        f"zpty -w t \"PROMPT='> '; fpath=({COMPLETIONS}/zsh \\$fpath); "
        'autoload -Uz compinit; compinit -u -D"\n'
        f'zpty -w t \'dump() {{ print -rn -- "$BUFFER" > {dump}; BUFFER=; }}; zle -N dump; '
        'bindkey "^X" dump\'\n' + steps + "\nzpty -d t"
    )
    assert out.splitlines() == [
        "rexec-login --switch ",
        "rexec-logout --user janedoe ",
        "git-credential-rexec unconfigure ",
        "rexec-whoami --offline ",
    ]


def fish_candidates(line: str) -> list:
    proc = subprocess.run(
        [
            shell("fish"),
            "--no-config",
            "-c",
            f"set fish_complete_path {COMPLETIONS}/fish $fish_complete_path; complete -C'{line}'",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return sorted(c.split("\t")[0] for c in proc.stdout.splitlines())


@pytest.mark.parametrize(
    "line, expected",
    [
        ("rexec-login --sw", ["--switch"]),
        ("rexec-login --switch --user ", ["janedoe", "johndoe"]),
        ("rexec-logout --host ", [JANE_HOST, "https://rexec.pipeops.io"]),
        ("rexec-whoami --a", ["--all"]),
        ("rexec-credential con", ["configure"]),
        ("git-credential-rexec configure --", ["--host", "--local", "--system"]),
        ("rexec-login --port ", []),
    ],
)
def test_fish_candidates(accounts_here, line, expected):
    assert fish_candidates(line) == expected


def test_completion_asks_no_server_and_prints_no_token(accounts_here, standin, monkeypatch):
    env_token = standin.mint_api_token("johndoe")
    monkeypatch.setenv("REXEC_TOKEN", env_token)
    monkeypatch.setenv("REXEC_HOST", standin.url)
    seen = bash_candidates("rexec-login --switch --user ")
    seen += bash_candidates("rexec-logout --host ")
    for name in ("zsh", "fish"):
        if shutil.which(name) or os.environ.get("CI"):
            seen += (
                fish_candidates("rexec-logout --host ")
                if name == "fish"
                else zsh_run(
                    f"fpath=({COMPLETIONS}/zsh $fpath); autoload -Uz compinit; compinit -u -D\n"
                    "compadd() { shift; print -rl -- $@ }\n"
                    "words=(rexec-login --user ''); CURRENT=3; service=rexec-login; _rexec; true"
                ).split()
            )
    assert "janedoe" in seen and standin.url in seen
    text = "\n".join(seen)
    for token in [*accounts_here, env_token]:
        assert token not in text
    assert standin.log == []
