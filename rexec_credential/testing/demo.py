"""The README's demo: the whole flow against the stand-in service, unattended.

Runs the installed executables in a throw-away HOME and shows each command with its
output: a CI-style token login, git asking for the token, a browser login as a second
account that keeps a device token, every account at once, a renew, a switch, and a
logout that revokes the device token (proved by it being refused) while the browser stays
signed in (its session token still works). `python -m rexec_credential.testing.demo`
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

from .scripted_browser import browser_command
from .service import StandIn

BIN = os.path.dirname(sys.executable)


def run(
    argv: List[str], env: Dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[bytes]:
    """Run an installed executable."""
    return subprocess.run(
        [os.path.join(BIN, argv[0]), *argv[1:]],
        input=stdin.encode(),
        env=env,
        capture_output=True,
        timeout=120,
    )


def show(argv: List[str], env: Dict[str, str], stdin: str = "", shown: Optional[str] = None) -> int:
    """Print a command as a person would type it, run it, print what it printed."""
    print(f"$ {shown or shlex.join(argv)}", flush=True)
    proc = run(argv, env, stdin)
    text = proc.stdout.decode() + proc.stderr.decode()
    for line in text.splitlines():
        print(f"  {line}", flush=True)
    print(f"  (exit {proc.returncode})\n", flush=True)
    return proc.returncode


def main() -> int:
    """Run the demo; exit 1 if any step did not do what it should."""
    with tempfile.TemporaryDirectory() as home, StandIn() as service:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REXEC_")}
        env.update(HOME=home, NO_PROXY="127.0.0.1,localhost", PATH=BIN + os.pathsep + env["PATH"])
        hostport = service.url.split("//")[1]
        print(f"Stand-in Rexec service at {service.url}; HOME={home}\n")
        steps = []

        def step(expected: int, *args: object, **kwargs: object) -> None:
            steps.append((expected, show(*args, **kwargs)))  # type: ignore[arg-type]

        print("# 1. CI-style login with an API token read from standard input")
        piped = f'printf %s "$API_TOKEN" | rexec-login --token - --host {service.url}'
        step(
            0,
            ["rexec-login", "--token", "-", "--host", service.url],
            env,
            service.mint_api_token("johndoe"),
            shown=piped,
        )
        step(0, ["rexec-whoami"], env)
        step(0, ["rexec-whoami", "--porcelain"], env)

        print("# 2. git asks for a token: rexec-credential get (the password= line is the token)")
        step(0, ["rexec-credential", "get"], env, f"protocol=http\nhost={hostport}\n")

        print("# 3. a second account: browser login as janedoe (a scripted browser signs in);")
        print("#    the browser hands over its own session, rexec-login keeps a device token")
        jar = os.path.join(home, "browser-cookies")
        browser = browser_command("janedoe", "correct-horse", cookie_jar=jar)
        step(
            0,
            ["rexec-login", "--host", service.url, "--port", "0"],
            {**env, "BROWSER": browser},
            shown=f"BROWSER=<scripted> rexec-login --host {service.url} --port 0",
        )

        print("# 4. every account at once, each checked with the service")
        step(0, ["rexec-whoami", "--all"], env)

        print("# 5. renew janedoe's device token without a browser (the old one is revoked)")
        step(0, ["rexec-login", "--renew", "--user", "janedoe"], env)

        print("# 6. switch back to johndoe without signing in again (no network)")
        step(0, ["rexec-login", "--switch"], env)
        step(0, ["rexec-whoami", "--porcelain"], env)

        print("# 7. log janedoe out: her device token is revoked on the server")
        jane_device = _password(
            run(
                ["rexec-credential", "get"],
                env,
                f"protocol=http\nhost={hostport}\nusername=janedoe\n",
            )
        )
        step(0, ["rexec-logout", "--user", "janedoe"], env)
        print("# ...so the device token is refused everywhere:")
        on_host = {**env, "REXEC_HOST": service.url}
        step(
            1,
            ["rexec-whoami"],
            {**on_host, "REXEC_TOKEN": jane_device},
            shown="REXEC_TOKEN=<janedoe's device token> rexec-whoami",
        )
        print("# ...while her browser stays signed in (its own session was never touched):")
        step(
            0,
            ["rexec-whoami"],
            {**on_host, "REXEC_TOKEN": service.web_session_jwts("janedoe")[0]},
            shown="REXEC_TOKEN=<the browser's session token> rexec-whoami",
        )

        print("# 8. log johndoe out (an API token: it stays valid until revoked in the web app)")
        step(0, ["rexec-logout"], env)
        step(1, ["rexec-whoami"], env)
        failed = [n for n, (expected, got) in enumerate(steps, 1) if expected != got]
        print(
            "demo finished: every step did what it should"
            if not failed
            else f"demo FAILED at step(s) {failed}"
        )
        return 1 if failed else 0


def _password(proc: subprocess.CompletedProcess[bytes]) -> str:
    text: str = proc.stdout.decode()
    for line in text.splitlines():
        if line.startswith("password="):
            return line.split("=", 1)[1]
    return ""


if __name__ == "__main__":
    sys.exit(main())
