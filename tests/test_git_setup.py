"""`rexec-credential configure` / `unconfigure` with real git: git asks this helper, and no
other, for the Rexec host; a real clone then needs no other setup; unconfigure leaves the
git config exactly as it was."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import run_bin
from githttp import clone
from helpers import record_login

pytestmark = pytest.mark.git

EXISTING = """\
[user]
\tname = Someone
\temail = someone@example.com
[credential]
\thelper = cache --timeout=60
[credential "https://github.com"]
\tusername = octo
[alias]
\tst = status
"""


def helpers_of(url: str, *scope: str, cwd=None) -> list:
    proc = subprocess.run(
        ["git", "config", *(scope or ("--global",)), "--get-all", f"credential.{url}.helper"],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    return proc.stdout.split("\n")[:-1]


def asked(url: str) -> list:
    """The helpers git really runs for url, in order: `git credential fill`, traced (it reads
    every config file, both global ones included, as a clone would)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_ASKPASS", "DISPLAY")}
    proc = subprocess.run(
        ["git", "credential", "fill"],
        input=f"url={url}/repo.git\n\n",
        capture_output=True,
        text=True,
        env=dict(env, GIT_TRACE="1", GIT_TERMINAL_PROMPT="0"),
        timeout=30,
    )
    return re.findall(r"run_command: '?git credential-(\S+)", proc.stderr)


HOST = "https://rexec.pipeops.io"


@pytest.fixture
def gitconfig(home):
    path = home / ".gitconfig"
    path.write_text(EXISTING)
    return path


def test_configure_adds_an_empty_helper_then_rexec_for_the_host_only(gitconfig):
    result = run_bin("rexec-credential", "configure")
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        "✓ git now asks rexec-credential, and no other helper, for "
        "https://rexec.pipeops.io (global git config)\n"
    )
    assert helpers_of("https://rexec.pipeops.io") == ["", "rexec"]
    assert gitconfig.read_text().startswith(EXISTING)  # the rest untouched
    assert helpers_of("https://github.com") == []


def test_configure_is_idempotent_and_unconfigure_restores_the_file_byte_for_byte(gitconfig):
    assert run_bin("rexec-credential", "configure", "--host", "rexec.example.com:8443").code == 0
    configured = gitconfig.read_bytes()
    again = run_bin("rexec-credential", "configure", "--host", "rexec.example.com:8443")
    assert again.code == 0 and "already" in again.out
    assert gitconfig.read_bytes() == configured
    assert helpers_of("https://rexec.example.com:8443") == ["", "rexec"]
    undone = run_bin("rexec-credential", "unconfigure", "--host", "rexec.example.com:8443")
    assert (undone.code, undone.err) == (0, "")
    assert gitconfig.read_text() == EXISTING
    nothing = run_bin("rexec-credential", "unconfigure", "--host", "rexec.example.com:8443")
    assert nothing.code == 0 and "nothing to remove" in nothing.out
    assert gitconfig.read_text() == EXISTING


def test_unconfigure_keeps_the_users_own_entries_for_the_host(gitconfig):
    gitconfig.write_text(
        EXISTING + '[credential "https://rexec.pipeops.io"]\n\tusername = johndoe\n'
    )
    before = gitconfig.read_text()
    assert run_bin("rexec-credential", "configure").code == 0
    assert run_bin("rexec-credential", "unconfigure").code == 0
    assert gitconfig.read_text() == before


def test_the_effective_host_is_configured(gitconfig, monkeypatch):
    monkeypatch.setenv("REXEC_HOST", "https://Staging.Example.com/")
    assert run_bin("rexec-credential", "configure").code == 0
    assert helpers_of("https://staging.example.com") == ["", "rexec"]


def test_local_and_system_scopes(gitconfig, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.chdir(repo)
    assert run_bin("rexec-credential", "configure", "--local").code == 0
    assert helpers_of("https://rexec.pipeops.io", "--local", cwd=repo) == ["", "rexec"]
    assert helpers_of("https://rexec.pipeops.io") == []
    system = tmp_path / "gitconfig-system"
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(system))
    monkeypatch.delenv("GIT_CONFIG_NOSYSTEM")
    assert run_bin("rexec-credential", "configure", "--system").code == 0
    assert helpers_of("https://rexec.pipeops.io", "--system") == ["", "rexec"]
    assert run_bin("rexec-credential", "unconfigure", "--system").code == 0
    assert system.read_text() == ""


def test_local_outside_a_repository_is_one_line_exit_4(gitconfig, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_bin("rexec-credential", "configure", "--local")
    assert result.code == 4 and result.err.count("\n") == 1
    assert result.err.startswith("git config --local failed: ")


def test_without_git_on_path_is_one_line_exit_4(gitconfig, tmp_path):
    result = run_bin("rexec-credential", "configure", env=dict(os.environ, PATH=str(tmp_path)))
    assert (result.code, result.err) == (
        4,
        "git is not installed (no git on PATH); install it, then run this again\n",
    )


def test_after_configure_a_real_clone_needs_nothing_else(
    git_server, standin, tmp_path, git_world, home, config_path
):
    """git's own configuration only: configure for the git server's host, log in, clone."""
    (home / ".git-credentials").write_text(
        f"{git_server.url.replace('://', '://stale:stale-password@')}\n"
    )
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")  # for every host
    plant = (home / ".git-credentials").read_text()
    assert run_bin("rexec-credential", "configure", "--host", git_server.url).code == 0
    record_login(home / ".rexec", git_server.url, standin.mint_api_token("johndoe"))
    clone(git_server, tmp_path, git_world, helper=False)
    assert (tmp_path / "clone" / "README").read_text() == "hello\n"
    statuses = git_server.statuses()
    assert ("johndoe", 200) in statuses
    assert all(user != "stale" for user, _ in statuses)  # the store helper was not asked
    assert (home / ".git-credentials").read_text() == plant  # ...nor told to store


def test_without_configure_the_helper_for_every_host_would_answer(
    git_server, standin, tmp_path, git_world, home
):
    """The control for the test above: the planted store entry really is what git uses
    when rexec is not configured for the host."""
    (home / ".git-credentials").write_text(
        f"{git_server.url.replace('://', '://stale:stale-password@')}\n"
    )
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    clone(git_server, tmp_path, git_world, helper=False, check=False)
    assert ("stale", 401) in git_server.statuses()


def round_trip(path, *options: str) -> None:
    """configure then unconfigure: both succeed, and path is byte for byte as it was."""
    before = path.read_bytes()
    configured = run_bin("rexec-credential", "configure", *options)
    assert (configured.code, configured.err) == (0, ""), configured
    assert path.read_bytes() != before
    undone = run_bin("rexec-credential", "unconfigure", *options)
    assert (undone.code, undone.err) == (0, ""), undone
    assert "no longer" in undone.out
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "text",
    [
        EXISTING.rstrip("\n"),
        EXISTING + f'[credential "{HOST}"]\n\tusername = johndoe',
        EXISTING + "# the end, no newline",
        "",
    ],
    ids=["other-sections", "own-section-last", "comment-last", "empty"],
)
def test_a_file_without_a_final_newline_is_restored_without_one(gitconfig, text):
    gitconfig.write_bytes(text.encode())
    before = gitconfig.read_bytes()
    assert run_bin("rexec-credential", "configure").code == 0
    assert helpers_of(HOST) == ["", "rexec"]
    assert asked(HOST) == ["rexec"]
    assert run_bin("rexec-credential", "unconfigure").code == 0
    assert gitconfig.read_bytes() == before


def test_crlf_line_ends_are_kept(gitconfig):
    gitconfig.write_bytes(EXISTING.replace("\n", "\r\n").encode())
    before = gitconfig.read_bytes()
    assert run_bin("rexec-credential", "configure").code == 0
    assert b"\n" not in gitconfig.read_bytes().replace(b"\r\n", b"")  # no bare LF added
    assert helpers_of(HOST) == ["", "rexec"]
    assert run_bin("rexec-credential", "unconfigure").code == 0
    assert gitconfig.read_bytes() == before


@pytest.mark.parametrize(
    "own",
    [["", "store"], ["rexec"], ["store", ""]],
    ids=["reset-then-store", "rexec-alone", "store-then-reset"],
)
def test_configure_keeps_the_persons_own_helpers_and_unconfigure_removes_only_its_two(
    gitconfig, own
):
    values = "".join(f"\thelper = {value}\n" if value else "\thelper =\n" for value in own)
    gitconfig.write_text(EXISTING + f'[credential "{HOST}"]\n{values}')
    before = gitconfig.read_bytes()
    assert run_bin("rexec-credential", "configure").code == 0
    assert helpers_of(HOST) == [*own, "", "rexec"]
    assert asked(HOST) == ["rexec"]  # the reset after the person's helpers: only rexec
    assert run_bin("rexec-credential", "unconfigure").code == 0
    assert gitconfig.read_bytes() == before
    assert helpers_of(HOST) == own


def test_the_persons_own_reset_is_still_there_after_unconfigure(gitconfig):
    gitconfig.write_text(EXISTING + f'[credential "{HOST}"]\n\thelper =\n\thelper = store\n')
    assert asked(HOST) == ["store"]
    round_trip(gitconfig)
    assert helpers_of(HOST) == ["", "store"]
    assert asked(HOST) == ["store"]  # not cache: the person's reset still applies


def test_unconfigure_undoes_every_configure_and_keeps_what_came_between(gitconfig, tmp_path):
    """configure, then the person adds a helper for the host with git (after rexec, so
    configure adds its two values again): unconfigure removes both pairs, nothing else."""
    assert run_bin("rexec-credential", "configure").code == 0
    subprocess.run(["git", "config", "--global", "--add", f"credential.{HOST}.helper", "store"])
    assert asked(HOST) == ["rexec", "store"]
    assert run_bin("rexec-credential", "configure").code == 0
    assert asked(HOST) == ["rexec"]
    assert run_bin("rexec-credential", "unconfigure").code == 0
    assert helpers_of(HOST) == ["store"]
    assert asked(HOST) == ["cache", "store"]
    expected = tmp_path / "expected"  # what git alone would have made of the file
    expected.write_text(EXISTING)
    subprocess.run(["git", "config", "--file", str(expected), f"credential.{HOST}.helper", "store"])
    assert gitconfig.read_text() == expected.read_text()


@pytest.mark.parametrize(
    "text",
    [
        EXISTING + f'[credential "{HOST}"]\n\t# my note\n',
        f'[credential "{HOST}"]\n\t# my note\n' + EXISTING,
        EXISTING + f'[credential "{HOST}"]\n',
        EXISTING + f'[credential "{HOST}"]\n\n; a note\n\n',
        EXISTING + f'[credential "{HOST}"] # a note\n',
    ],
    ids=["comment-last", "comment-first", "bare-header", "blank-lines", "comment-on-header"],
)
def test_a_section_holding_only_a_comment_or_nothing_keeps_it(gitconfig, text):
    gitconfig.write_text(text)
    configured = run_bin("rexec-credential", "configure")
    assert configured.code == 0
    assert helpers_of(HOST) == ["", "rexec"]
    assert asked(HOST) == ["rexec"]
    assert run_bin("rexec-credential", "unconfigure").code == 0
    assert gitconfig.read_text() == text


@pytest.fixture(params=["default", "XDG_CONFIG_HOME"])
def xdg_config(request, home, tmp_path, monkeypatch):
    """The XDG global git config file ($XDG_CONFIG_HOME/git/config, else
    ~/.config/git/config), holding EXISTING; no ~/.gitconfig."""
    if request.param == "default":
        path = home / ".config" / "git" / "config"
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        path = tmp_path / "xdg" / "git" / "config"
    path.parent.mkdir(parents=True)
    path.write_text(EXISTING)
    return path


def test_configure_writes_where_git_does_and_unconfigure_finds_it_there(xdg_config, home):
    """git writes the global config to the XDG file when there is no ~/.gitconfig; the person
    then creates ~/.gitconfig, which git reads after it: unconfigure still undoes configure."""
    assert asked(HOST) == ["cache"]
    assert run_bin("rexec-credential", "configure").code == 0
    assert not (home / ".gitconfig").exists()
    assert helpers_of(HOST) == ["", "rexec"]
    assert asked(HOST) == ["rexec"]
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Someone Else\n")
    assert asked(HOST) == ["rexec"]  # git reads both files
    undone = run_bin("rexec-credential", "unconfigure")
    assert (undone.code, undone.err) == (0, "")
    assert "no longer" in undone.out
    assert xdg_config.read_text() == EXISTING
    assert gitconfig.read_text() == "[user]\n\tname = Someone Else\n"
    assert asked(HOST) == ["cache"]
    nothing = run_bin("rexec-credential", "unconfigure")
    assert nothing.code == 0 and "nothing to remove" in nothing.out


def test_configure_reads_both_global_files_to_say_already(xdg_config, home):
    assert run_bin("rexec-credential", "configure").code == 0
    configured = xdg_config.read_bytes()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Someone Else\n")
    again = run_bin("rexec-credential", "configure")
    assert again.code == 0 and "already" in again.out
    assert gitconfig.read_text() == "[user]\n\tname = Someone Else\n"
    assert xdg_config.read_bytes() == configured


def test_unconfigure_undoes_configure_in_both_global_files(xdg_config, home):
    """configure once per file (before and after ~/.gitconfig overrode an earlier
    setting): unconfigure undoes both."""
    assert run_bin("rexec-credential", "configure").code == 0
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[credential]\n\thelper = store\n")  # read after the XDG file
    assert asked(HOST) == ["rexec", "store"]
    assert run_bin("rexec-credential", "configure").code == 0
    assert asked(HOST) == ["rexec"]
    assert run_bin("rexec-credential", "unconfigure").code == 0
    assert xdg_config.read_text() == EXISTING
    assert gitconfig.read_text() == "[credential]\n\thelper = store\n"


def test_what_the_earlier_release_wrote_with_git_config_is_recognised(gitconfig):
    """It ran `git config --global --add` twice (git writes `helper = ` with a blank)."""
    for value in ("", "rexec"):
        subprocess.run(["git", "config", "--global", "--add", f"credential.{HOST}.helper", value])
    again = run_bin("rexec-credential", "configure")
    assert again.code == 0 and "already" in again.out
    undone = run_bin("rexec-credential", "unconfigure")
    assert undone.code == 0 and "no longer" in undone.out
    assert gitconfig.read_text() == EXISTING


def test_a_host_url_with_a_path(gitconfig):
    url = "https://git.example.com/rexec/api"
    round_trip(gitconfig, "--host", url)
    assert run_bin("rexec-credential", "configure", "--host", url + "/").code == 0
    assert helpers_of(url) == ["", "rexec"]
    assert helpers_of("https://git.example.com") == []
    assert asked(url) == ["rexec"]


def test_a_symlinked_gitconfig_stays_a_symlink(home, tmp_path):
    """Dotfile managers link ~/.gitconfig into a repository: the target is edited, as git
    does, and the link kept."""
    target = tmp_path / "dotfiles" / "gitconfig"
    target.parent.mkdir()
    target.write_text(EXISTING)
    (home / ".gitconfig").symlink_to(target)
    round_trip(target)
    assert (home / ".gitconfig").is_symlink()


def test_includes_and_continuation_lines_are_left_alone(gitconfig, tmp_path):
    included = tmp_path / "included"
    included.write_text(f'[credential "{HOST}"]\n\thelper = store\n')
    gitconfig.write_text(
        f"[include]\n\tpath = {included}\n"
        + EXISTING
        + '[alias]\n\tlg = "log --graph \\\n\t\t--oneline" ; see git-log(1)\n'
    )
    round_trip(gitconfig)
    assert included.read_text() == f'[credential "{HOST}"]\n\thelper = store\n'


def test_a_config_locked_by_git_is_left_alone_exit_4(gitconfig):
    lock = gitconfig.with_name(".gitconfig.lock")
    lock.write_text("")
    result = run_bin("rexec-credential", "configure")
    assert result.code == 4 and result.err.count("\n") == 1
    assert gitconfig.read_text() == EXISTING
    assert lock.read_text() == ""


def test_system_scope_restores_a_missing_final_newline(tmp_path, monkeypatch):
    system = tmp_path / "gitconfig-system"
    system.write_bytes(b"[core]\n\tautocrlf = input")
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(system))
    monkeypatch.delenv("GIT_CONFIG_NOSYSTEM")
    round_trip(system, "--system")


def test_local_scope_from_a_subdirectory(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    config = repo / ".git" / "config"
    round_trip(config, "--local")


# -- configure --bearer ----------------------------------------------------------------------


def runs(url: str) -> list:
    """The helper commands git really runs for url, arguments included."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_ASKPASS", "DISPLAY")}
    proc = subprocess.run(
        ["git", "credential", "fill"],
        input=f"url={url}/repo.git\n\n",
        capture_output=True,
        text=True,
        env=dict(env, GIT_TRACE="1", GIT_TERMINAL_PROMPT="0"),
        timeout=30,
    )
    return re.findall(r"run_command: 'git credential-([^']*) get'", proc.stderr)


def test_configure_bearer_sets_rexec_bearer_and_unconfigure_restores_the_file(gitconfig):
    before = gitconfig.read_bytes()
    result = run_bin("rexec-credential", "configure", "--bearer")
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        "✓ git now asks rexec-credential --bearer, and no other helper, for "
        "https://rexec.pipeops.io (global git config)\n"
    )
    assert helpers_of(HOST) == ["", "rexec --bearer"]
    assert runs(HOST) == ["rexec --bearer"]
    assert gitconfig.read_bytes() == before + (
        f'[credential "{HOST}"]\n\thelper =\n\thelper = rexec --bearer\n'.encode()
    )
    again = run_bin("rexec-credential", "configure", "--bearer")
    assert again.out == (
        f"✓ git already asks rexec-credential --bearer for {HOST} (global git config)\n"
    )
    assert gitconfig.read_bytes() != before
    undone = run_bin("rexec-credential", "unconfigure")
    assert (undone.code, undone.err) == (0, "") and "no longer" in undone.out
    assert gitconfig.read_bytes() == before


@pytest.mark.parametrize("first, then", [([], ["--bearer"]), (["--bearer"], [])])
def test_switching_forms_appends_a_pair_and_unconfigure_removes_both(gitconfig, first, then):
    before = gitconfig.read_bytes()
    assert run_bin("rexec-credential", "configure", *first).code == 0
    switched = run_bin("rexec-credential", "configure", *then)
    assert switched.code == 0 and "now asks" in switched.out
    forms = ["rexec --bearer" if form else "rexec" for form in (first, then)]
    assert helpers_of(HOST) == ["", forms[0], "", forms[1]]
    assert runs(HOST) == [forms[1]]
    undone = run_bin("rexec-credential", "unconfigure", "--bearer")  # either form: both go
    assert (undone.code, undone.err) == (0, "")
    assert gitconfig.read_bytes() == before
    assert helpers_of(HOST) == []


@pytest.mark.parametrize(
    "text",
    [
        EXISTING.rstrip("\n"),
        EXISTING.replace("\n", "\r\n"),
        "",
        EXISTING + f'[credential "{HOST}"]\n',
    ],
    ids=["no-final-newline", "crlf", "empty", "bare-header"],
)
def test_configure_bearer_round_trips_byte_for_byte(gitconfig, text):
    gitconfig.write_bytes(text.encode())
    round_trip(gitconfig, "--bearer")
    round_trip(gitconfig, "--bearer", "--host", "rexec.example.com:8443")


def test_what_an_earlier_git_config_add_wrote_for_bearer_is_recognised(gitconfig):
    for value in ("", "rexec --bearer"):
        subprocess.run(["git", "config", "--global", "--add", f"credential.{HOST}.helper", value])
    again = run_bin("rexec-credential", "configure", "--bearer")
    assert again.code == 0 and "already" in again.out
    undone = run_bin("rexec-credential", "unconfigure")
    assert undone.code == 0 and "no longer" in undone.out
    assert gitconfig.read_text() == EXISTING


def test_after_configure_bearer_an_older_git_clones_with_username_and_password(
    git_server, standin, tmp_path, git_world, home
):
    """git before 2.46 announces no capability: `rexec --bearer` answers it as `rexec` does."""
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    assert run_bin("rexec-credential", "configure", "--bearer", "--host", git_server.url).code == 0
    record_login(home / ".rexec", git_server.url, standin.mint_api_token("johndoe"))
    clone(git_server, tmp_path, git_world, helper=False)
    assert (tmp_path / "clone" / "README").read_text() == "hello\n"
    assert ("johndoe", 200) in git_server.statuses()
    assert not (home / ".git-credentials").exists()  # the store helper was never asked
