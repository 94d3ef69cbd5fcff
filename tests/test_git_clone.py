"""Real `git clone` and `git push` over smart HTTP (tests/githttp.py, on 127.0.0.1) with
`credential.helper=rexec` as the only credential source and GIT_TERMINAL_PROMPT=0. The server
takes a Basic password only if the stand-in Rexec service validates it as a token."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import run_bin
from githttp import GitHTTPServer

from rexec_credential import store
from rexec_credential.config import ConfigFile

PROFILE = {"username": "johndoe", "email": "johndoe@example.com", "tier": "pro"}


def git(*args: str, env: dict, cwd=None, check: bool = True) -> subprocess.CompletedProcess:
    """git with rexec as the only helper (the empty value resets the list)."""
    proc = subprocess.run(
        ["git", "-c", "credential.helper=", "-c", "credential.helper=rexec", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )
    if check:
        assert proc.returncode == 0, f"git {args} failed: {proc.stderr}"
    return proc


@pytest.fixture
def git_world(tmp_path, home) -> dict:
    """No prompt, no askpass, an identity for commits: the helper is all git has."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_ASKPASS", "DISPLAY")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@example.com",
               GIT_CEILING_DIRECTORIES=str(tmp_path))
    return env


@pytest.fixture
def server(tmp_path, standin, git_world):
    """A served bare repository `repo.git` holding one commit."""
    root = tmp_path / "srv"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(root / "repo.git")],
                   check=True, env=git_world)
    seed = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True, env=git_world)
    (seed / "README").write_text("hello\n")
    for args in (["add", "README"], ["commit", "-q", "-m", "first"],
                 ["push", "-q", str(root / "repo.git"), "main"]):
        subprocess.run(["git", *args], cwd=seed, check=True, env=git_world, capture_output=True)
    with GitHTTPServer(str(root), standin.url) as srv:
        yield srv


def set_login(config_path, host: str, token: str) -> None:
    """The active login, written as rexec-login writes it (store.set_active)."""
    ConfigFile(str(config_path.parent), print).update(
        lambda data: store.set_active(data, host, token, PROFILE) or True)


def clone(server, tmp_path, env, *options: str, check: bool = True):
    return git(*options, "clone", "-q", f"{server.url}/repo.git", str(tmp_path / "clone"),
               env=env, check=check)


def push_a_commit(tmp_path, env) -> None:
    work = tmp_path / "clone"
    (work / "new.txt").write_text("pushed\n")
    subprocess.run(["git", "add", "new.txt"], cwd=work, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "second"], cwd=work, check=True, env=env)
    git("push", "-q", "origin", "main", env=env, cwd=work)


def served_log(server, tmp_path) -> str:
    return subprocess.run(["git", "--git-dir", str(tmp_path / "srv" / "repo.git"), "log",
                           "--format=%s", "main"], capture_output=True, text=True).stdout


def test_clone_and_push_with_the_active_login(server, standin, tmp_path, git_world, config_path):
    token = standin.mint_api_token("johndoe")
    set_login(config_path, server.url, token)
    before = config_path.read_text(), config_path.stat().st_ino
    clone(server, tmp_path, git_world)
    assert (tmp_path / "clone" / "README").read_text() == "hello\n"
    push_a_commit(tmp_path, git_world)
    assert served_log(server, tmp_path) == "second\nfirst\n"
    assert ("johndoe", 200) in server.statuses()  # Basic user from the stored login
    assert (config_path.read_text(), config_path.stat().st_ino) == before  # store: no rewrite


def test_clone_with_use_http_path(server, standin, tmp_path, git_world, config_path):
    """The active login answers for every repository of its host."""
    set_login(config_path, server.url, standin.mint_api_token("johndoe"))
    before = config_path.read_text()
    clone(server, tmp_path, git_world, "-c", "credential.useHttpPath=true")
    assert config_path.read_text() == before  # no per-repository copy of the token


def test_clone_and_push_with_a_stored_jwt(server, standin, tmp_path, git_world, config_path):
    token = standin.mint_jwt("janedoe")
    host = server.url.split("://")[1]
    stored = run_bin("rexec-credential", "store", stdin=(
        f"protocol=http\nhost={host}\nusername=janedoe\npassword={token}\n"))
    assert (stored.code, stored.out, stored.err) == (0, "", "")
    clone(server, tmp_path, git_world)
    push_a_commit(tmp_path, git_world)
    assert ("janedoe", 200) in server.statuses()
    assert json.loads(config_path.read_text())["credentials"][0]["password"] == token


def helper_calls(trace) -> list:
    """The credential-helper operations git ran, from its GIT_TRACE file."""
    marker = "run_command: 'git credential-rexec "
    return [line.split(marker)[1].rstrip("'") for line in trace.read_text().splitlines()
            if marker in line]


def test_clone_with_rexec_token_never_persists_it(server, standin, tmp_path, git_world, home):
    token = standin.mint_api_token("johndoe")
    trace = tmp_path / "trace"
    env = dict(git_world, REXEC_TOKEN=token, REXEC_HOST=server.url, GIT_TRACE=str(trace))
    clone(server, tmp_path, env)
    push_a_commit(tmp_path, env)
    assert ("x-rexec-token", 200) in server.statuses()
    assert "store" in helper_calls(trace)  # git asked to store REXEC_TOKEN...
    assert not (home / ".rexec").exists()  # ...and nothing was written


def test_revoked_token_fails_and_is_erased(server, standin, tmp_path, git_world, config_path):
    token = standin.mint_api_token("johndoe")
    set_login(config_path, server.url, token)
    standin.revoke(token)
    trace = tmp_path / "trace"
    proc = clone(server, tmp_path, dict(git_world, GIT_TRACE=str(trace)), check=False)
    assert proc.returncode != 0
    assert helper_calls(trace) == ["get", "erase"]
    assert "Authentication failed" in proc.stderr
    assert server.statuses()[-1] == ("johndoe", 401)  # the stored token was tried
    data = json.loads(config_path.read_text())
    assert "token" not in data and token not in config_path.read_text()  # git called erase
    assert data["host"] == server.url
    got = run_bin("rexec-credential", "get", stdin="")
    assert (got.code, got.out, got.err) == (0, "", "")


def test_without_a_credential_git_fails_without_prompting(server, tmp_path, git_world):
    proc = clone(server, tmp_path, git_world, check=False)
    assert proc.returncode != 0
    assert "terminal prompts disabled" in proc.stderr or "could not read" in proc.stderr
    assert server.statuses() == [(None, 401)]
