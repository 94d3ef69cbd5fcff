"""REXEC_TRACE (rexec_credential.trace, docs/contract.md §5): where the trace goes — standard
error, or appended to a file that is 0600 and never reached through a link or a FIFO — what
a value it cannot use does (one line, no trace), and that no token reaches a line."""

from __future__ import annotations

import os
import re
import stat
import subprocess

import pytest
from conftest import BIN_DIR, call, run_bin
from helpers import NOW

from rexec_credential import trace

LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{6} [\w-]+\[\d+\]: ")
API = "rexec_" + "a1" * 32
PASSWORD = "s3cr3t-git-password-42"  # a stored credential's secret: never traced either


def lines(*items: str) -> str:
    return "".join(f"{item}\n" for item in items)


def split(stderr: str) -> tuple[list[str], list[str]]:
    """(trace lines, the other lines) of a stderr."""
    traced, other = [], []
    for line in stderr.splitlines():
        (traced if LINE.match(line) else other).append(line)
    return traced, other


def pieces(token: str) -> list[str]:
    """Every 12-character piece of a token's secret part (after `rexec_`; a JWT's payload
    and signature: its header is the same for every JWT)."""
    secret = token[len("rexec_") :] if token.startswith("rexec_") else token.split(".", 1)[1]
    return [secret[i : i + 12] for i in range(len(secret) - 11)]


def assert_no_token(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        for piece in pieces(secret) if secret.startswith(("rexec_", "eyJ")) else [secret]:
            assert piece not in text, f"a piece of a token is in the trace: {piece}"


def test_the_scan_finds_a_piece_of_a_token():
    jwt = "eyJhbGciOi.eyJzdWIiOiIxIn0.sig"
    for text, token in ((API, API), ("…" + API[6:18] + "…", API), ("x eyJzdWIiOiIx x", jwt)):
        with pytest.raises(AssertionError):
            assert_no_token(text, token)
    assert_no_token("rexec_… " + API[:12] + "… eyJ…(jwt)", API, jwt)  # a 12-character prefix


# -- the file ----------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
def test_the_trace_file_is_created_0600_whatever_the_umask(tmp_path, umask):
    path = tmp_path / "trace.log"
    for _ in range(2):  # appended to, not replaced
        proc = subprocess.run(
            [BIN_DIR / "rexec-whoami", "--all", "--offline"],
            env=dict(os.environ, REXEC_TRACE=str(path)),
            capture_output=True,
            umask=umask,
            timeout=60,
        )
        assert proc.returncode == 1 and proc.stderr == b"Not logged in. Run 'rexec-login' first.\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().count(": exit 1 after ") == 2


def test_an_existing_file_is_appended_to_and_keeps_its_mode(tmp_path):
    path = tmp_path / "trace.log"
    path.write_text("earlier line\n")
    path.chmod(0o640)
    result = run_bin("rexec-credential", "get", env=dict(os.environ, REXEC_TRACE=str(path)))
    assert (result.code, result.out, result.err) == (0, "", "")
    text = path.read_text()
    assert text.startswith("earlier line\n") and "rexec-credential[" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "fifo", "directory"])
def test_a_link_fifo_or_directory_is_refused_in_one_line_never_followed_or_waited_on(
    tmp_path, kind
):
    path = tmp_path / "trace.log"
    target = tmp_path / "target"
    if kind == "symlink":
        target.write_text("")
        path.symlink_to(target)
    elif kind == "dangling-symlink":
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    result = run_bin(
        "rexec-credential", "get", env=dict(os.environ, REXEC_TRACE=str(path)), timeout=20
    )
    assert (result.code, result.out) == (0, "")
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith("warning: cannot append to the file REXEC_TRACE names (")
    assert result.err.endswith("); not tracing\n")
    assert str(path) not in result.err  # an environment value is never repeated
    if kind == "symlink":
        assert target.read_text() == ""
    if kind == "dangling-symlink":
        assert not target.exists()


# -- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["trace.log", "./trace.log", "yes", "debug", "3", "~/trace"])
def test_any_other_value_is_refused_in_one_line_and_nothing_is_traced(tmp_path, value):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run(
        [BIN_DIR / "rexec-credential", "get"],
        env=dict(os.environ, REXEC_TRACE=value),
        cwd=cwd,
        input=b"",
        capture_output=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, b"")
    assert proc.stderr.decode() == trace.REFUSED + "\n"
    assert value not in proc.stderr.decode().replace("2 for standard error", "")
    assert os.listdir(cwd) == []


@pytest.mark.parametrize("value", ["", "0", "false", "FALSE"])
def test_off_values_trace_nothing_and_say_nothing(value):
    result = call("whoami", ["--all", "--offline"], env=dict(os.environ, REXEC_TRACE=value))
    assert result.err == "Not logged in. Run 'rexec-login' first.\n"


@pytest.mark.parametrize("value", ["1", "2", "true", "TRUE", " True "])
def test_stderr_values(value):
    result = call("credential", ["get"], env=dict(os.environ, REXEC_TRACE=value))
    traced, other = split(result.err)
    assert other == [] and result.out == ""
    assert "rexec-credential[" in traced[0] and ": exit 0 after " in traced[-1]


def test_the_trace_masks_what_it_is_told_is_secret_and_anything_token_shaped():
    written = []
    tracer = trace.Trace(written.append, secrets=["plain-secret"], clock=lambda: NOW)
    tracer(f"a plain-secret, {API} and eyJhbGciOi.eyJzdWIiOiIxIn0.sig\nforged")
    assert written[0].endswith(": a …, rexec_… and eyJ…(jwt) forged\n")
