"""`rexec-credential configure` / `unconfigure` with real git: git asks this helper, and no
other, for the Rexec host; a real clone then needs no other setup; unconfigure leaves the
git config exactly as it was."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import run_bin
from githttp import clone
from helpers import log_in

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
    log_in(home / ".rexec", git_server.url, standin.mint_api_token("johndoe"))
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
