"""Where a known token may show up: only on `rexec-credential get`'s password= line.

Every command runs as a real process with tokens minted by the stand-in: the happy path
(`rexec-login --token -`, whoami, whoami --porcelain, credential get/store/erase under both
executable names, logout, which ends a JWT's session on the server) and the failure paths
(revoked token, malformed token on stdin and in argv, a usage error with the token in argv,
5xx from the service, a corrupted config.json and a corrupted credentials.json, each
holding a token, and REXEC_TOKEN). Then these are searched for each token and for every
16-character slice of it (its prefix, middle and suffix included; a JWT's shared standard
header excepted):
- every command's stdout and stderr, but for the one password= line of a `get`;
- the stand-in's request log, serialised; every request must have gone to the stand-in's
  own loopback address and Host;
- /proc/<pid>/cmdline and /proc/<pid>/environ of every process, sampled while it runs
  (the service delays its answer by 1 s for login and whoami, so they are caught live);
- every file under HOME, but config.json and credentials.json (0600: where logins are
  kept) and their *.corrupt-* backups, which may hold tokens but never REXEC_TOKEN's value;
  after the final logout, credentials.json too (it holds no login then).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import BIN_DIR, Result

WINDOW = 16  # a slice of a token this long is a leak too
LIVE = 1.0  # seconds the service holds a login/whoami request, so its process can be read


def fragments(token: str) -> dict:
    """The token and every 16-character slice of it (prefix, middle, suffix, all between).

    A JWT's first segment is the standard header that every JWT shares, not a secret:
    slices of a JWT start after it.
    """
    start = token.index(".") + 1 if token.count(".") == 2 else 0
    found = {"the whole token": token}
    for i in range(start, len(token) - WINDOW + 1):
        found[f"characters {i}-{i + WINDOW}"] = token[i : i + WINDOW]
    return found


def read_proc(pid: int, name: str) -> bytes | None:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return None


class Watched:
    """A command's result and what its /proc entries showed while it ran."""

    def __init__(self, label, result, cmdlines, environs, samples):
        self.label, self.result = label, result
        self.cmdlines, self.environs = cmdlines, environs  # distinct contents seen
        self.samples = samples  # how many times /proc/<pid>/cmdline was read while it ran


def run_watched(
    label: str, argv: list, stdin: bytes = b"", env: dict | None = None, timeout: float = 30
) -> Watched:
    """Run a command, reading its /proc cmdline and environ until it exits."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            env=dict(os.environ if env is None else env),
        )
        proc.stdin.write(stdin)
        proc.stdin.close()
        cmdlines, environs, samples = set(), set(), 0
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise AssertionError(f"{label}: still running after {timeout} s")
            for name, seen in (("cmdline", cmdlines), ("environ", environs)):
                data = read_proc(proc.pid, name)
                if data:  # empty once the process is a zombie
                    seen.add(data)
                    samples += name == "cmdline"
            time.sleep(0.002)
        out.seek(0)
        err.seek(0)
        result = Result(
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            proc.returncode,
        )
    return Watched(label, result, cmdlines, environs, samples)


class Session:
    """Runs the commands of one scenario and remembers everything they showed."""

    def __init__(self, standin, home):
        self.svc, self.home = standin, home
        self.secrets: dict = {}  # token -> label
        self.runs: list = []
        self.argv_exempt: set = set()  # labels whose argv holds a token on purpose
        self.env_exempt: set = set()  # labels run with REXEC_TOKEN set on purpose
        self.allowed_password: dict = {}  # label -> the token its get may print
        self._cache: dict = {}

    def token(self, label: str, user: str, kind: str) -> str:
        token = self.svc.mint_jwt(user) if kind == "jwt" else self.svc.mint_api_token(user)
        self.secrets[token] = label
        return token

    def run(
        self,
        label: str,
        name: str,
        *args: str,
        stdin: bytes | str = b"",
        code: int = 0,
        live: bool = False,
        env_token: str | None = None,
        argv_secret: bool = False,
        prints_password: str | None = None,
    ) -> Result:
        if live:
            self.svc.delay_next(1, LIVE)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        if env_token:
            env["REXEC_TOKEN"] = env_token
            self.env_exempt.add(label)
        if argv_secret:
            self.argv_exempt.add(label)
        if prints_password:
            self.allowed_password[label] = prints_password
        data = stdin.encode() if isinstance(stdin, str) else stdin
        watched = run_watched(label, [str(BIN_DIR / name), *args], data, env)
        self.runs.append(watched)
        result = watched.result
        assert result.code == code, (label, result)
        assert "Traceback" not in result.err and "Traceback" not in result.out, (label, result)
        if live:
            assert watched.samples >= 100, f"{label}: not caught while running"
        return result

    def leaks_in(self, blob: bytes | str) -> list:
        if isinstance(blob, str):
            blob = blob.encode("utf-8", "replace")
        found = []
        for token, name in self.secrets.items():
            part = next(
                (label for label, text in self._fragments(token).items() if text.encode() in blob),
                None,
            )
            if part is not None:
                found.append(f"{part} of {name}")
        return found

    def _fragments(self, token: str) -> dict:
        if token not in self._cache:
            self._cache[token] = fragments(token)
        return self._cache[token]

    def scan_outputs(self) -> list:
        found = []
        for w in self.runs:
            out = w.result.out
            allowed = self.allowed_password.get(w.label)
            if allowed is not None:
                line = f"password={allowed}\n"
                if out.count(line) != 1:
                    found.append(f"{w.label}: printed no password= line for the token")
                out = out.replace(line, "")
            found += [f"{w.label} stdout: {x}" for x in self.leaks_in(out)]
            found += [f"{w.label} stderr: {x}" for x in self.leaks_in(w.result.err)]
        return found

    def scan_processes(self) -> list:
        found = []
        for w in self.runs:
            if w.label not in self.argv_exempt:
                found += [f"{w.label} argv: {x}" for c in w.cmdlines for x in self.leaks_in(c)]
            if w.label not in self.env_exempt:
                found += [f"{w.label} environ: {x}" for e in w.environs for x in self.leaks_in(e)]
        return found

    def scan_service_log(self) -> list:
        found = [
            f"service log: {x}"
            for x in self.leaks_in(json.dumps(self.svc.log, default=str) + repr(self.svc.log))
        ]
        expected_host = f"127.0.0.1:{self.svc.port}"
        assert self.svc.address[0] == "127.0.0.1"
        found += [
            f"request to {e['host_header']!r}, not the stand-in: {e['path']}"
            for e in self.svc.log
            if e["host_header"] != expected_host
        ]
        return found

    def scan_home(
        self, never_on_disk: set, may_hold: tuple = ("config.json", "credentials.json")
    ) -> list:
        """Files under HOME; the files of `may_hold` must be 0600 and may hold tokens, as
        the backups of both files may; none may hold a token of `never_on_disk`."""
        found = []
        for root, _, files in os.walk(self.home):
            for name in files:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    data = f.read()
                rel = os.path.relpath(path, self.home)
                if rel in (os.path.join(".rexec", n) for n in ("config.json", "credentials.json")):
                    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, rel
                kept = rel in (os.path.join(".rexec", n) for n in may_hold)
                if kept or name.startswith(("config.json.corrupt-", "credentials.json.corrupt-")):
                    found += [
                        f"{rel}: {self.secrets[t]} (never to be written)"
                        for t in never_on_disk
                        if t.encode() in data
                    ]
                    continue
                found += [f"{rel}: {x}" for x in self.leaks_in(data)]
        return found


def credential_query(svc, **extra: str) -> str:
    protocol, host = svc.url.split("://")
    lines = [f"protocol={protocol}", f"host={host}"] + [f"{k}={v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n\n"


@pytest.mark.parametrize("kind", ["api", "jwt"])
def test_tokens_show_only_on_the_password_line_of_get(
    standin, home, config_path, kind, record_property
):
    """Figure (per token kind, API token and JWT): 35 command runs, 4 of them held 1 s by
    the service and read live through /proc (over 4,000 samples) — 0 leaks of 6 tokens (5
    minted, 1 malformed; whole or any 16-character slice) in stdout/stderr outside get's
    password= line, the service log, argv, the environment or any file beside config.json,
    credentials.json and their corrupt-* backups; 0 requests to another host; 0 tracebacks;
    REXEC_TOKEN's value written to disk 0 times."""
    s = Session(standin, home)
    url = standin.url
    main = s.token("the login token", "johndoe", kind)
    login = ("rexec-login", "--token", "-", "--host", url)

    # Happy path.
    out = s.run("login --token -", *login, stdin=main, live=True).out
    assert out == "✓ Logged in as johndoe (johndoe@example.com)\n"
    assert "Username: johndoe" in s.run("whoami", "rexec-whoami", live=True).out
    assert "token_source=config" in s.run("whoami --porcelain", "rexec-whoami", "--porcelain").out
    s.run(
        "credential get",
        "rexec-credential",
        "get",
        stdin=credential_query(standin),
        prints_password=main,
    )
    s.run(
        "git-credential-rexec get (empty query)",
        "git-credential-rexec",
        "get",
        prints_password=main,
    )
    s.run(
        "credential store (what git stores back)",
        "rexec-credential",
        "store",
        stdin=credential_query(standin, username="johndoe", password=main),
    )
    assert json.loads(config_path.read_text())["token"] == main
    s.run(
        "credential erase (git after a rejection)",
        "rexec-credential",
        "erase",
        stdin=credential_query(standin, username="johndoe", password=main),
    )
    assert "token" not in json.loads(config_path.read_text())
    assert (
        s.run(
            "credential get after erase", "rexec-credential", "get", stdin=credential_query(standin)
        ).out
        == ""
    )
    s.run("whoami after erase", "rexec-whoami", code=1)
    s.run("login --token - again", *login, stdin=main)
    s.run("logout", "rexec-logout", "--end-session")
    assert not config_path.exists()

    # Revoked: stored, then revoked at the service; whoami and a new login are refused.
    # (A token of its own: the logout above ended the session of a JWT `main`.)
    revoked = s.token("the revoked token", "johndoe", kind)
    s.run("login before revocation", *login, stdin=revoked)
    standin.revoke(revoked)
    assert (
        "Invalid token"
        in s.run("whoami with a revoked token", "rexec-whoami", code=1, live=True).err
    )
    assert "Invalid token" in s.run("login with a revoked token", *login, stdin=revoked, code=1).err

    # Malformed: on stdin, in --token=, and a usage error that carries the token.
    second = s.token("the second token", "johndoe", kind)
    malformed = second[:-4] + "!#%&"
    s.secrets[malformed] = "the malformed token"
    assert "malformed" in s.run("login --token - malformed", *login, stdin=malformed, code=1).err
    assert (
        "malformed"
        in s.run(
            "login --token=MALFORMED",
            "rexec-login",
            f"--token={malformed}",
            "--host",
            url,
            code=1,
            argv_secret=True,
        ).err
    )
    s.run(
        "login --token=TOKEN with a usage error",
        "rexec-login",
        f"--token={second}",
        "--host",
        url,
        "--bogus",
        code=2,
        argv_secret=True,
    )

    # 5xx: login and whoami give up with exit 3 (3 tries each).
    standin.fail_next(10)
    s.run("login --token - under 5xx", *login, stdin=second, code=3)
    s.run("whoami under 5xx", "rexec-whoami", code=3)
    standin.clear_faults()

    # A corrupted config that holds a token: readers refuse, a login moves it aside.
    config_path.write_text(f'{{"host": "{url}", "token": "{second}", "username": "joh')
    assert "is corrupted" in s.run("whoami, corrupted config", "rexec-whoami", code=4).err
    s.run("whoami --porcelain, corrupted config", "rexec-whoami", "--porcelain", code=4)
    s.run(
        "credential get, corrupted config",
        "rexec-credential",
        "get",
        stdin=credential_query(standin),
        code=4,
    )
    assert "moved it to" in s.run("login, corrupted config", *login, stdin=second).err
    assert [p.name for p in config_path.parent.glob("config.json.corrupt-*")]
    s.run(
        "credential get, after the move",
        "rexec-credential",
        "get",
        stdin=credential_query(standin),
        prints_password=second,
    )

    # A corrupted credentials.json that holds a token: readers refuse, a store moves it aside.
    accounts_path = config_path.parent / "credentials.json"
    assert second in accounts_path.read_text()  # the login's account
    accounts_path.write_text(f'{{"version": 1, "accounts": [{{"token": "{second}", "host')
    assert "is corrupted" in s.run("whoami, corrupted credentials", "rexec-whoami", code=4).err
    s.run(
        "credential get, corrupted credentials",
        "rexec-credential",
        "get",
        stdin=credential_query(standin),
        code=4,
    )
    assert (
        "moved it to"
        in s.run(
            "credential store, corrupted credentials",
            "rexec-credential",
            "store",
            stdin="protocol=https\nhost=elsewhere.example\nusername=u\npassword=not-a-token\n\n",
        ).err
    )
    assert [p.name for p in config_path.parent.glob("credentials.json.corrupt-*")]
    s.run(
        "credential get, after that move",
        "rexec-credential",
        "get",
        stdin=credential_query(standin),
        prints_password=second,
    )

    # REXEC_TOKEN: used, answered by get, never written.
    env_token = s.token("REXEC_TOKEN's value", "janedoe", kind)
    assert (
        "token_source=env"
        in s.run(
            "whoami with REXEC_TOKEN", "rexec-whoami", "--porcelain", env_token=env_token, live=True
        ).out
    )
    s.run(
        "credential get with REXEC_TOKEN",
        "rexec-credential",
        "get",
        stdin=credential_query(standin),
        env_token=env_token,
        prints_password=env_token,
    )
    s.run(
        "credential store of REXEC_TOKEN",
        "rexec-credential",
        "store",
        stdin=credential_query(standin, username="janedoe", password=env_token),
        env_token=env_token,
    )
    assert (
        "not stored"
        in s.run(
            "login --token - with REXEC_TOKEN's value", *login, stdin=env_token, env_token=env_token
        ).err
    )
    s.run("logout with REXEC_TOKEN", "rexec-logout", "--end-session", env_token=env_token)
    last = s.token("the last token", "johndoe", kind)  # the logout ended `second`'s session
    s.run("login after all that", *login, stdin=last)

    leaks = s.scan_outputs() + s.scan_processes() + s.scan_service_log() + s.scan_home({env_token})
    assert not leaks, "\n".join(leaks)
    s.run("final logout", "rexec-logout", "--end-session")
    assert not config_path.exists()
    leaks = s.scan_home({env_token}, may_hold=())  # now only the corrupt-* backups may
    assert not leaks, "\n".join(leaks)

    api_requests = [e for e in standin.log if e["path"].startswith("/api/")]
    assert {e["auth"] for e in api_requests} == {kind}  # the token went as a Bearer header
    # Each of the three logouts of a JWT login (with --end-session) ended its session; an
    # API token is kept.
    ended = [
        e
        for e in api_requests
        if e["method"] == "DELETE" and e["path"].startswith("/api/sessions/") and e["status"] == 200
    ]
    assert len(ended) == (3 if kind == "jwt" else 0), ended
    summary = (
        f"leakage ({kind}): {len(s.runs)} command runs, "
        f"{sum(w.samples for w in s.runs)} /proc samples, "
        f"{len(api_requests)} service requests, {len(s.secrets)} tokens: "
        "0 leaked, 0 requests elsewhere, 0 tracebacks"
    )
    record_property("figures", summary)
    print(summary)


def test_the_process_scanner_sees_a_token_put_in_argv(standin):
    """Figure: the /proc scanner flags 1 of 1 process that does carry a token in argv and
    environment (a control: the zero above is not from a blind scanner)."""
    token = standin.mint_api_token("johndoe")
    s = Session(standin, None)
    s.secrets[token] = "control"
    env = dict(os.environ, CONTROL=token)
    w = run_watched(
        "control", [sys.executable, "-c", "import time; time.sleep(0.3)", token], env=env
    )
    s.runs.append(w)
    found = s.scan_processes()
    assert any("argv: the whole token of control" in x for x in found), found
    assert any("environ: the whole token of control" in x for x in found), found
