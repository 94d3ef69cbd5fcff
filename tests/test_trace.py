"""REXEC_TRACE (rexec_credential.trace, docs/contract.md §5): every executable says what it
decided and why, on standard error or appended to a file; what it prints otherwise does not
change; no token, nor any piece of one, ever reaches the trace; the file is 0600 and never
reached through a link or a FIFO; a value it cannot use is refused in one line."""

from __future__ import annotations

import os
import re
import stat
import subprocess

import pytest
from conftest import BIN_DIR, call, run_bin
from helpers import NOW, record_login

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


# -- the whole session, traced and not ------------------------------------------------------


def session(standin, home, extra: dict, api: str, jwt: str, git: bool = False) -> list:
    """Every executable in turn, as a person and git would run them, in its own HOME:
    [(argv, stdout, stderr, exit status)]."""
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "REXEC_TRACE"}
    env.update(HOME=str(home), **extra)
    host = standin.url.split("//")[1]
    request = lines("protocol=http", f"host={host}")
    steps = [
        (["rexec-login", "--token", "-", "--host", standin.url], api),
        (["rexec-whoami"], ""),
        (["rexec-whoami", "--porcelain"], ""),
        (["rexec-credential", "get"], request),
        (["git-credential-rexec", "--bearer", "get"], "capability[]=authtype\n" + request),
        (["git-credential-rexec", "get"], ""),
        (
            ["rexec-credential", "store"],
            lines("protocol=https", "host=h.tld", "username=u") + f"password={PASSWORD}\n",
        ),
        (["rexec-credential", "get"], lines("protocol=https", "host=h.tld")),
        (["rexec-credential", "get"], lines("protocol=https", "host=nothing.tld")),
        (["rexec-credential", "erase"], lines("protocol=https", "host=h.tld")),
        (
            ["rexec-credential", "--bearer", "store"],
            "capability[]=authtype\nauthtype=Bearer\n" + f"credential={api}\n" + request,
        ),
        (["rexec-login", "--token", "-", "--host", standin.url], jwt),
        (["rexec-login", "--renew", "--expires-in", "0"], ""),  # the JWT login: a device token
        (["rexec-whoami", "--all"], ""),
        (["rexec-whoami", "--all", "--offline", "--json"], ""),
        (["rexec-login", "--switch"], ""),
        (["rexec-logout", "--end-session"], ""),
        (["rexec-logout", "--all"], ""),
        (["rexec-whoami"], ""),
    ]
    if git:
        steps = [
            (["rexec-credential", "configure", "--host", standin.url], ""),
            (["rexec-credential", "configure", "--bearer", "--host", standin.url], ""),
            (["rexec-credential", "configure", "--bearer", "--host", standin.url], ""),
            (["rexec-credential", "unconfigure", "--host", standin.url], ""),
            (["rexec-credential", "unconfigure"], ""),
        ]
    done = []
    for argv, stdin in steps:
        result = run_bin(argv[0], *argv[1:], stdin=stdin, env=env)
        done.append((argv, result.out, result.err, result.code))
    return done


@pytest.fixture
def tokens_(standin):
    """An API token, and one JWT per session (logout ends a JWT's session)."""
    return standin.mint_api_token("johndoe"), [
        standin.mint_jwt("johndoe", exp=4102444800) for _ in range(3)
    ]


def test_every_executable_traces_and_prints_what_it_prints_untraced(standin, tmp_path, tokens_):
    api, jwts = tokens_
    plain = session(standin, tmp_path / "plain", {}, api, jwts[0])
    on_stderr = session(standin, tmp_path / "stderr", {"REXEC_TRACE": "2"}, api, jwts[1])
    trace_file = tmp_path / "trace.log"
    in_file = session(standin, tmp_path / "file", {"REXEC_TRACE": str(trace_file)}, api, jwts[2])
    assert [code for *_, code in plain] == [0] * 18 + [1]
    traced_text = []
    for (argv, out, err, code), (_, out2, err2, code2), (_, out3, err3, code3) in zip(
        plain, on_stderr, in_file
    ):
        assert (out2, code2) == (out, code), argv
        assert (out3, err3, code3) == (out, err, code), argv  # the trace went to the file
        traced, other = split(err2)
        assert other == err.splitlines(), argv
        assert traced, f"{argv} wrote no trace"
        assert re.search(rf": exit {code} after \d+ ms$", traced[-1]), argv
        traced_text += traced
    file_text = trace_file.read_text()
    assert all(LINE.match(line) for line in file_text.splitlines())
    for name in (
        "rexec-login",
        "rexec-logout",
        "rexec-whoami",
        "rexec-credential",
        "git-credential-rexec",
    ):
        assert f" {name}[" in file_text, name
    assert_no_token("\n".join(traced_text) + file_text, api, *jwts, PASSWORD)
    everything = "\n".join(traced_text)
    for needle in (  # what was decided and why
        f"host {standin.url} (from --host)",
        "HTTP GET " + standin.url + "/api/tokens/validate: 200 in ",
        "HTTP GET " + standin.url + "/api/profile: 200 in ",
        "HTTP POST " + standin.url + "/api/tokens: 201 in ",
        "HTTP DELETE " + standin.url + "/api/tokens/<token id>: 200 in ",
        "token of the active login, johndoe (johndoe@example.com) on " + standin.url,
        "answered with the login johndoe (johndoe@example.com) on "
        + standin.url
        + ", as authtype Bearer",
        "as username and password",
        "nothing answers protocol=https host=nothing.tld:",
        "read " + str(tmp_path / "stderr" / ".rexec" / "config.json"),
        "wrote " + str(tmp_path / "stderr" / ".rexec" / "credentials.json"),
        "nothing stored: already stored, or REXEC_TOKEN's value (never written)",
        "validating rexec_… with",
        "validating eyJ…(jwt) with",
    ):
        assert needle in everything, needle


@pytest.mark.git
def test_configure_and_unconfigure_trace_and_print_what_they_print_untraced(
    standin, tmp_path, tokens_
):
    api, jwts = tokens_
    plain = session(standin, tmp_path / "plain", {}, api, jwts[0], git=True)
    traced = session(standin, tmp_path / "traced", {"REXEC_TRACE": "true"}, api, jwts[1], git=True)
    for (argv, out, err, code), (_, out2, err2, code2) in zip(plain, traced):
        assert (out2, code2, split(err2)[1]) == (out, code, err.splitlines()), argv
    text = "\n".join(line for *_, err, _ in traced for line in split(err)[0])
    gitconfig = tmp_path / "traced" / ".gitconfig"
    for needle in (
        f"host {standin.url} (from --host)",
        f"configure writes to {gitconfig}",
        f"appended helper = and helper = rexec --bearer for {standin.url} to {gitconfig}",
        f"{gitconfig} ends with configure's pair (rexec --bearer): nothing to do",
        f"{gitconfig}: 2 of configure's pairs for {standin.url}",
        "host https://rexec.pipeops.io (from the default)",
        f"git config --file {gitconfig} --list: ",
    ):
        assert needle in text, needle
    assert (tmp_path / "plain" / ".gitconfig").read_bytes() == gitconfig.read_bytes() == b""


def test_rexec_token_is_never_traced(standin, home, config_path):
    token = standin.mint_api_token("janedoe")
    env = dict(os.environ, REXEC_TOKEN=f" {token}\n", REXEC_HOST=standin.url, REXEC_TRACE="2")
    host = standin.url.split("//")[1]
    err = ""
    for argv, stdin in (
        (["rexec-credential", "get"], ""),
        (
            ["git-credential-rexec", "--bearer", "get"],
            f"capability[]=authtype\nprotocol=http\nhost={host}\n",
        ),
        (
            ["rexec-credential", "store"],
            f"protocol=http\nhost={host}\nusername=u\npassword={token}\n",
        ),
        (["rexec-whoami"], ""),
        (["rexec-whoami", "--all"], ""),
        (["rexec-login", "--token", "-"], token),
        (["rexec-logout"], ""),
    ):
        result = run_bin(argv[0], *argv[1:], stdin=stdin, env=env)
        assert result.code == 0, (argv, result)
        err += result.err
    assert "token from REXEC_TOKEN: rexec_…" in err
    assert "REXEC_TOKEN: answers" in err
    assert_no_token(err, token)
    assert not config_path.exists()


# -- what a get that answers nothing says -----------------------------------------------------


def test_a_get_that_answers_nothing_names_the_host_and_why(config_path, monkeypatch):
    record_login(config_path.parent, "https://rexec.pipeops.io", API)
    env = dict(os.environ, REXEC_TRACE="2")
    stored = lines("protocol=https", "host=example.com", "username=u", f"password={PASSWORD}")
    assert call("credential", ["store"], stdin=stored.encode(), env=env).code == 0
    result = call(
        "credential",
        ["get"],
        stdin=lines("protocol=https", "host=example.com", "username=x").encode(),
        env=env,
        clock=lambda: NOW,
    )
    assert (result.code, result.out) == (0, "")
    traced, other = split(result.err)
    assert other == []
    text = "\n".join(traced)
    assert "get: request protocol=https host=example.com username=x" in text
    assert "REXEC_TOKEN: not set" in text
    assert "nothing answers protocol=https host=example.com username=x:" in text
    assert (
        "login johndoe (john@example.com) on https://rexec.pipeops.io (active): host differs"
        in (text)
    )
    assert "1 stored credential: 1 username differs" in text
    assert_no_token(text, API, PASSWORD)


def test_an_empty_get_names_the_effective_host_and_where_it_came_from(monkeypatch):
    monkeypatch.setenv("REXEC_HOST", "https://staging.example.com")
    result = call("credential", ["get"], env=dict(os.environ, REXEC_TRACE="2"))
    assert (result.code, result.out) == (0, "")
    assert (
        "nothing answers protocol=https host=staging.example.com (the request named none: "
        "https://staging.example.com, from REXEC_HOST):"
    ) in result.err
    assert "no login is stored" in result.err and "no credential is stored" in result.err


def test_rexec_token_for_another_host_says_so(monkeypatch):
    monkeypatch.setenv("REXEC_TOKEN", API)
    result = call(
        "credential",
        ["get"],
        stdin=lines("protocol=https", "host=github.com").encode(),
        env=dict(os.environ, REXEC_TRACE="2"),
    )
    assert result.out == ""
    assert (
        "REXEC_TOKEN: it is for https://rexec.pipeops.io (host from the default): host differs"
        in result.err
    )
    assert_no_token(result.err, API)


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


def test_a_line_cannot_be_forged_by_what_a_file_holds(config_path):
    """A username read from a file, with a line break and a token in it, stays one line and
    masked."""
    record_login(
        config_path.parent,
        "https://rexec.pipeops.io",
        API,
        username="x\n00:00:00.000000 f[1]: " + API,
    )
    result = call(
        "credential",
        ["get"],
        stdin=lines("protocol=https", "host=other.tld").encode(),
        env=dict(os.environ, REXEC_TRACE="2"),
    )
    traced, other = split(result.err)
    assert other == []
    assert not any(line.startswith("00:00:00.000000 f[1]") for line in result.err.splitlines())
    assert_no_token(result.err, API)


def test_the_trace_masks_what_it_is_told_is_secret_and_anything_token_shaped():
    written = []
    tracer = trace.Trace(written.append, secrets=["plain-secret"], clock=lambda: NOW)
    tracer(f"a plain-secret, {API} and eyJhbGciOi.eyJzdWIiOiIxIn0.sig\nforged")
    assert written[0].endswith(": a …, rexec_… and eyJ…(jwt) forged\n")
