"""Shell completion (completions/), driven through each shell's own machinery: bash's
`complete -F` function with COMP_LINE/COMP_POINT as bash sets them, zsh's compinit and a
real line editor on a pseudo-terminal (zpty), fish's `complete -C`. Stored account names
and hosts are completed without any request to a server and without printing a token."""

from __future__ import annotations

import os
import select
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_bin
from helpers import record_login

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
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")  # Debian: bash-completion
# Usernames a server may send (anyone chooses their own): each must be offered as itself,
# quoted, never expanded or run.
HOSTILE = [
    "x$(touch PWNED)",
    "x`touch PWNED2`",
    "*",
    "{a,b}",
    "~root",
    "$HOME",
    "jane doe",
    "bang!x",
]
# Quote characters and a backslash (one such name made `compgen -W` offer nothing at all).
QUOTED = ["it's", 'q"b\\c']
# Host URLs the parser accepts (hosts.normalise) whose paths a shell would expand.
HOSTILE_HOSTS = [
    "https://evil.example/x$(touch$IFS'PWNED3')",
    "https://evil.example/*",
    "https://evil.example/~root",
    "https://evil.example/$HOME",
    "https://evil.example/a;b&c!d",
]
FILES = ["alpha", "beta"]  # in the directory completion runs in: what `*` would give


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
    record_login(home / ".rexec", "https://rexec.pipeops.io", JOHN, "johndoe")
    jane = standin.mint_jwt("janedoe")
    record_login(home / ".rexec", JANE_HOST, jane, "janedoe")
    standin.clear_log()
    return [JOHN, jane]


@pytest.fixture(params=["alone", "bash-completion"])
def library(request) -> bool:
    """The completion file sourced alone, or after the bash-completion library (missing
    outside CI skips, in CI fails: .ci/system-deps installs the Debian package)."""
    if request.param == "alone":
        return False
    if not BASH_COMPLETION.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{BASH_COMPLETION} is required in CI (Debian package bash-completion)")
        pytest.skip("bash-completion is not installed")
    return True


def bash_candidates(line: str, library: bool = False, cwd: Path | None = None) -> list:
    """What bash offers at the end of line, through the function `complete` registered."""
    script = (
        (f". {BASH_COMPLETION}\n" if library else "") + f". {COMPLETIONS}/bash/{line.split()[0]}\n"
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
        cwd=cwd,
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
        ("git-credential-rexec configure --", ["--bearer", "--host", "--local", "--system"]),
        ("rexec-credential get ", []),
        ("rexec-login --port ", []),
    ],
)
def test_bash_candidates(accounts_here, library, line, expected):
    assert bash_candidates(line, library) == expected


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A directory with files, where completion runs: a `*` expanded there would show."""
    path = tmp_path / "work"
    path.mkdir()
    for name in FILES:
        (path / name).write_text("")
    return path


def store_logins(home: Path, names: list) -> list:
    """A stored login for each username, written the way rexec-login does."""
    for number, name in enumerate(names):
        record_login(home / ".rexec", "https://rexec.pipeops.io", f"rexec_{number:064x}", name)
    return names


@pytest.fixture
def hostile_here(home) -> list:
    return store_logins(home, HOSTILE)


@pytest.fixture
def quoted_here(home) -> list:
    return store_logins(home, [*HOSTILE, *QUOTED])


def read_back(words: list, tmp_path: Path, head: str = "") -> list:
    """What bash reads each of words as, typed after head on a command line: one word each
    (else the list of words), read in a fresh directory holding files, HOME as the test's."""
    safe = tmp_path / "read-back"
    safe.mkdir(exist_ok=True)
    for name in ("decoy1", "decoy2"):
        (safe / name).write_text("")
    proc = subprocess.run(
        [
            shell("bash"),
            "--norc",
            "-c",
            'while IFS= read -r -d "" word; do eval "set -- $HEAD$word"; '
            "if (($# == 1)); then printf '%s\\0' \"$1\"; "
            "else printf '%s\\0' \"$(printf '<%s>' \"$@\")\"; fi; done",
        ],
        input="".join(f"{word}\0" for word in words),
        capture_output=True,
        text=True,
        cwd=safe,
        env=dict(os.environ, HEAD=head),
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.split("\0")[:-1]


def assert_nothing_ran(tmp_path: Path, home: Path) -> None:
    """No file the hostile names would create, in the test's directories or HOME."""
    assert sorted(tmp_path.rglob("PWNED*")) == []
    assert sorted(home.rglob("PWNED*")) == []


def assert_offered_literally(offered: list, names: list, tmp_path, home, head: str = ""):
    """offered: one quoted word for each name, nothing expanded; read back, the names."""
    assert_nothing_ran(tmp_path, home)
    assert len(offered) == len(names), offered
    for word in offered:
        assert word not in FILES and "/root" not in word and str(home) not in word, word
    assert sorted(read_back(offered, tmp_path, head)) == sorted(head + n for n in names)
    assert_nothing_ran(tmp_path, home)


@pytest.mark.parametrize(
    "line",
    [
        "rexec-login --switch --user ",
        "rexec-logout --user ",
        "rexec-login --switch --user=",
        "rexec-logout --user=",
    ],
)
def test_bash_offers_hostile_usernames_literally(
    hostile_here, library, workdir, tmp_path, home, line
):
    """$(...), `...`, globs, braces, ~user and $VAR in a stored username are neither run nor
    expanded: each name is offered once, quoted so that bash reads it back as itself."""
    offered = bash_candidates(line, library, cwd=workdir)
    assert_offered_literally(offered, HOSTILE, tmp_path, home)


@pytest.mark.parametrize("line", ["rexec-login --switch --user ", "rexec-logout --user="])
def test_bash_offers_usernames_with_quotes_literally(
    quoted_here, library, workdir, tmp_path, home, line
):
    """A ' or " in one stored name neither hides the others nor breaks the quoting."""
    offered = bash_candidates(line, library, cwd=workdir)
    assert_offered_literally(offered, quoted_here, tmp_path, home)


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("x", ["x$(touch PWNED)", "x`touch PWNED2`"]),
        ("jane", ["jane doe"]),
        ("*", ["*"]),  # what is typed is not a pattern either
        ("$", ["$HOME"]),
        ("~", ["~root"]),
        ("{a", ["{a,b}"]),
        ("a", []),  # not the expansion of `*` (alpha) or of `{a,b}` (a)
    ],
)
def test_bash_filters_hostile_usernames_by_a_plain_prefix(
    hostile_here, library, workdir, tmp_path, home, typed, expected
):
    offered = bash_candidates(f"rexec-logout --user {typed}", library, cwd=workdir)
    assert_offered_literally(offered, expected, tmp_path, home)


def bash_readline(lines: list, cwd: Path, library: bool) -> list:
    """An interactive bash on a pseudo-terminal: each line typed, then TAB, then ^X, bound
    to a function that records the line readline made and what bash reads it as (history
    expansion included, evaluated in a fresh directory holding files) and clears it."""
    dump = cwd.parent / "readline-line"
    safe = cwd.parent / "read-back"
    safe.mkdir(exist_ok=True)
    for name in ("decoy1", "decoy2"):
        (safe / name).write_text("")
    q = shlex.quote
    setup = (f". {q(str(BASH_COMPLETION))}; " if library else "") + (
        f". {q(str(COMPLETIONS / 'bash' / 'rexec-credential'))}; "
        'dump() { local line; line=$(history -p -- "$READLINE_LINE") || line=; '
        f'( cd {q(str(safe))}; eval "set -- $line" 2>/dev/null; '
        f'printf "%s\\0" "$READLINE_LINE" "$@" ) > {q(str(dump))}.new; '
        f"mv {q(str(dump))}.new {q(str(dump))}; READLINE_LINE=; READLINE_POINT=0; }}; "
        "bind -x '\"\\C-x\": dump'; dump\n"
    )
    master, terminal = os.openpty()
    proc = subprocess.Popen(
        [shell("bash"), "--norc", "--noprofile", "-i"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=cwd,
        env=dict(os.environ, INPUTRC="/dev/null", TERM="dumb", PS1="$ ", HISTFILE="/dev/null"),
        start_new_session=True,
    )
    os.close(terminal)
    screen = bytearray()

    def recorded() -> list:
        deadline = time.monotonic() + 30
        while not dump.exists():
            assert time.monotonic() < deadline, screen.decode(errors="replace")
            if select.select([master], [], [], 0.05)[0]:
                try:
                    screen.extend(os.read(master, 65536))
                except OSError:  # the shell has gone
                    pytest.fail(screen.decode(errors="replace"))
        fields = dump.read_text().split("\0")[:-1]
        dump.unlink()
        return fields

    try:
        os.write(master, setup.encode())
        recorded()
        result = []
        for line in lines:
            os.write(master, line.encode() + b"\t\x18")
            result.append(recorded())
        os.write(master, b"exit\n")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return result


# What is typed after `rexec-logout --user `, and the stored name one TAB completes it to.
TYPED_NAMES = [
    ("x\\$", "x$(touch PWNED)"),
    ("x\\`", "x`touch PWNED2`"),
    ("'x$", "x$(touch PWNED)"),
    ("*", "*"),
    ("\\*", "*"),
    ("{", "{a,b}"),
    ("~", "~root"),
    ("\\~", "~root"),
    ("$H", "$HOME"),
    ('"\\$H', "$HOME"),
    ("jane", "jane doe"),
    ("jane\\ d", "jane doe"),
    ("'jane d", "jane doe"),
    ('"jane d', "jane doe"),
    ("'jane d'", "jane doe"),
    ("ja'ne d", "jane doe"),
    ("ba", "bang!x"),
    ("'ba", "bang!x"),
    ('"ba', "bang!x"),
]
TYPED_QUOTED = [
    ("it", "it's"),
    ("'it", "it's"),
    ('"it', "it's"),
    ("q", 'q"b\\c'),
    ("'q", 'q"b\\c'),
    ('"q', 'q"b\\c'),
]


def assert_readline_completes(typed_names: list, workdir, library, tmp_path, home) -> None:
    """Each line typed then TAB: the line bash reads back holds the stored name as one word,
    and ends with the space of a complete word; nothing run, nothing expanded."""
    lines = [f"rexec-logout --user {typed}" for typed, _ in typed_names]
    lines += ["rexec-logout --user=x\\$", "rexec-logout --user='jane d", "rexec-logout --lo"]
    expected = [["rexec-logout", "--user", name] for _, name in typed_names]
    expected += [
        ["rexec-logout", "--user=x$(touch PWNED)"],
        ["rexec-logout", "--user=jane doe"],
        ["rexec-logout", "--local"],
    ]
    seen = bash_readline(lines, workdir, library)
    assert_nothing_ran(tmp_path, home)
    assert [words for _, *words in seen] == expected, [line for line, *_ in seen]
    assert all(line.endswith(" ") for line, *_ in seen), [line for line, *_ in seen]


def test_bash_readline_inserts_hostile_usernames_quoted(
    hostile_here, library, workdir, tmp_path, home
):
    """The real line editor: plain, backslash-escaped and quoted prefixes (an open quote is
    closed); the read-back applies history expansion too."""
    assert_readline_completes(TYPED_NAMES, workdir, library, tmp_path, home)


def test_bash_readline_inserts_usernames_with_quotes(quoted_here, library, workdir, tmp_path, home):
    """A quote of either kind in the name, after a plain prefix or inside an open quote."""
    assert_readline_completes(TYPED_QUOTED, workdir, library, tmp_path, home)


def test_bash_offers_hostile_usernames_a_server_sent(standin, library, workdir, tmp_path, home):
    """The names reach the disk through the product: the stand-in has users with them and
    `rexec-login --token -` logs each in. Completing then asks no server."""
    for name in HOSTILE:
        standin.add_user(name, "someone@example.com")
        login = run_bin(
            "rexec-login", "--token", "-", "--host", standin.url, stdin=standin.mint_jwt(name)
        )
        assert login.code == 0, login
    standin.clear_log()
    assert_nothing_ran(tmp_path, home)
    for line in ("rexec-login --switch --user ", "rexec-logout --user="):
        offered = bash_candidates(line, library, cwd=workdir)
        assert_offered_literally(offered, HOSTILE, tmp_path, home)
    assert standin.log == []


def test_bash_offers_hosts_literally(home, library, workdir, tmp_path):
    """Stored hosts too: offered quoted after --host and --host=, and after a ':' that bash
    leaves in place (only what follows it is replaced)."""
    for number, host in enumerate([JANE_HOST, *HOSTILE_HOSTS]):
        record_login(home / ".rexec", host, f"rexec_{number:064x}", f"user{number}")
    for line in (
        "rexec-logout --host ",
        "rexec-whoami --host=",
        "rexec-credential configure --host ",
    ):
        offered = bash_candidates(line, library, cwd=workdir)
        assert_offered_literally(offered, [JANE_HOST, *HOSTILE_HOSTS], tmp_path, home)
    # Bash replaces what follows the last ':' of the word: the candidates go on from there.
    offered = bash_candidates("rexec-logout --host https://evil", library, cwd=workdir)
    rests = [host.partition(":")[2] for host in HOSTILE_HOSTS]
    assert_offered_literally(offered, rests, tmp_path, home, head="https:")
    seen = bash_readline(
        [
            "rexec-logout --host https://evil.example/x",
            "rexec-whoami --host=https://evil.example/\\~",
        ],
        workdir,
        library,
    )
    assert_nothing_ran(tmp_path, home)
    assert [words for _, *words in seen] == [
        ["rexec-logout", "--host", HOSTILE_HOSTS[0]],
        ["rexec-whoami", f"--host={HOSTILE_HOSTS[2]}"],
    ]


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
        (["rexec-credential", "unconfigure", ""], ["--bearer", "--host", "--local", "--system"]),
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
        ("git-credential-rexec configure --", ["--bearer", "--host", "--local", "--system"]),
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
