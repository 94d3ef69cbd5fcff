"""Real `git clone` and `git push` over smart HTTP (tests/githttp.py, on 127.0.0.1) with
`credential.helper=rexec` as the only credential source and GIT_TERMINAL_PROMPT=0. The server
takes a Basic password only if the stand-in Rexec service validates it as a token."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import run_bin
from githttp import clone, git
from helpers import credentials, record_login

pytestmark = pytest.mark.git


def set_login(config_path, host: str, token: str) -> None:
    """The active login, recorded as rexec-login records it."""
    record_login(config_path.parent, host, token, "johndoe", "johndoe@example.com")


def both(config_path) -> tuple:
    """What both files hold, and which inodes they are (a rewrite makes a new one)."""
    files = [config_path, config_path.parent / "credentials.json"]
    return tuple((f.read_text(), f.stat().st_ino) for f in files)


def push_a_commit(tmp_path, env) -> None:
    work = tmp_path / "clone"
    (work / "new.txt").write_text("pushed\n")
    subprocess.run(["git", "add", "new.txt"], cwd=work, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "second"], cwd=work, check=True, env=env)
    git("push", "-q", "origin", "main", env=env, cwd=work)


def served_log(git_server, tmp_path) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(tmp_path / "srv" / "repo.git"), "log", "--format=%s", "main"],
        capture_output=True,
        text=True,
    ).stdout


def test_clone_and_push_with_the_active_login(
    git_server, standin, tmp_path, git_world, config_path
):
    token = standin.mint_api_token("johndoe")
    set_login(config_path, git_server.url, token)
    before = both(config_path)
    clone(git_server, tmp_path, git_world)
    assert (tmp_path / "clone" / "README").read_text() == "hello\n"
    push_a_commit(tmp_path, git_world)
    assert served_log(git_server, tmp_path) == "second\nfirst\n"
    assert ("johndoe", 200) in git_server.statuses()  # Basic user from the stored login
    assert both(config_path) == before  # git's store after success: no rewrite


def test_clone_with_use_http_path(git_server, standin, tmp_path, git_world, config_path):
    """The active login answers for every repository of its host."""
    set_login(config_path, git_server.url, standin.mint_api_token("johndoe"))
    before = both(config_path)
    clone(git_server, tmp_path, git_world, "-c", "credential.useHttpPath=true")
    assert both(config_path) == before  # no per-repository copy of the token


def test_clone_and_push_with_a_stored_jwt(git_server, standin, tmp_path, git_world, config_path):
    token = standin.mint_jwt("janedoe")
    host = git_server.url.split("://")[1]
    stored = run_bin(
        "rexec-credential",
        "store",
        stdin=(f"protocol=http\nhost={host}\nusername=janedoe\npassword={token}\n"),
    )
    assert (stored.code, stored.out, stored.err) == (0, "", "")
    clone(git_server, tmp_path, git_world)
    push_a_commit(tmp_path, git_world)
    assert ("janedoe", 200) in git_server.statuses()
    assert credentials(config_path.parent)[0]["password"] == token


def helper_calls(trace) -> list:
    """The credential-helper operations git ran, from its GIT_TRACE file."""
    marker = "run_command: 'git credential-rexec "
    return [
        line.split(marker)[1].rstrip("'")
        for line in trace.read_text().splitlines()
        if marker in line
    ]


def test_clone_with_rexec_token_never_persists_it(git_server, standin, tmp_path, git_world, home):
    token = standin.mint_api_token("johndoe")
    trace = tmp_path / "trace"
    env = dict(git_world, REXEC_TOKEN=token, REXEC_HOST=git_server.url, GIT_TRACE=str(trace))
    clone(git_server, tmp_path, env)
    push_a_commit(tmp_path, env)
    assert ("x-rexec-token", 200) in git_server.statuses()
    assert "store" in helper_calls(trace)  # git asked to store REXEC_TOKEN...
    assert not (home / ".rexec").exists()  # ...and nothing was written


def test_revoked_token_fails_and_is_erased(git_server, standin, tmp_path, git_world, config_path):
    token = standin.mint_api_token("johndoe")
    set_login(config_path, git_server.url, token)
    standin.revoke(token)
    trace = tmp_path / "trace"
    proc = clone(git_server, tmp_path, dict(git_world, GIT_TRACE=str(trace)), check=False)
    assert proc.returncode != 0
    assert helper_calls(trace) == ["get", "erase"]
    assert "Authentication failed" in proc.stderr
    assert git_server.statuses()[-1] == ("johndoe", 401)  # the stored token was tried
    data = json.loads(config_path.read_text())
    assert "token" not in data and token not in config_path.read_text()  # git called erase
    assert token not in (config_path.parent / "credentials.json").read_text()
    assert data["host"] == git_server.url
    got = run_bin("rexec-credential", "get", stdin="")
    assert (got.code, got.out, got.err) == (0, "", "")


def test_without_a_credential_git_fails_without_prompting(git_server, tmp_path, git_world):
    proc = clone(git_server, tmp_path, git_world, check=False)
    assert proc.returncode != 0
    assert "terminal prompts disabled" in proc.stderr or "could not read" in proc.stderr
    assert git_server.statuses() == [(None, 401)]


def test_the_git_server_asks_the_standin_again_once_and_says_so(git_server, standin):
    # The test git server's own behaviour, which every test above relies on: one broken
    # connection to the service is asked again (with a warning in pytest's summary), two
    # are an error, and a refusal is never asked again.
    token = standin.mint_api_token("johndoe")
    standin.drop_next(1, path="/api/tokens/validate")
    with pytest.warns(UserWarning, match="githttp: asking the stand-in again"):
        assert git_server.user_for(token) == "johndoe"
    standin.drop_next(2, path="/api/tokens/validate")
    with pytest.warns(UserWarning), pytest.raises(ConnectionError):
        git_server.user_for(token)
    before = len(standin.requests_to("/api/tokens/validate"))
    assert git_server.user_for("rexec_" + "0" * 64) is None
    assert len(standin.requests_to("/api/tokens/validate")) == before + 1
