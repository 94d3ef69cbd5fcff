"""The README's demo: the whole flow against the stand-in service, unattended.

Runs the installed executables in a throw-away HOME and shows each command with
its output. `python -m rexec_credential.testing.demo`
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile

from .scripted_browser import browser_command
from .service import StandIn

BIN = os.path.dirname(sys.executable)


def show(argv: list, env: dict, stdin: str = "", shown: str | None = None) -> int:
    """Print a command as a person would type it, run it, print what it printed."""
    print(f"$ {shown or shlex.join(argv)}", flush=True)
    proc = subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], input=stdin.encode(),
                          env=env, capture_output=True, timeout=120)
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
        browser = browser_command()
        print(f"Stand-in Rexec service at {service.url}; HOME={home}\n")
        print("# 1. CI-style login with an API token read from standard input")
        api_token = service.mint_api_token("johndoe")
        piped = f'printf %s "$API_TOKEN" | rexec-login --token - --host {service.url}'
        codes = [
            show(["rexec-login", "--token", "-", "--host", service.url], env, api_token,
                 shown=piped),
            show(["rexec-whoami"], env),
            show(["rexec-whoami", "--porcelain"], env),
        ]
        print("# 2. git asks for a token: rexec-credential get (the password= line is the token)")
        codes.append(show(["rexec-credential", "get"], env,
                          f"protocol=http\nhost={service.url.split('//')[1]}\n"))
        print("# 3. log out; the next whoami says so")
        codes.append(show(["rexec-logout"], env))
        print("# 4. browser login: a scripted browser signs in at /cli-login and authorizes")
        codes.append(show(["rexec-login", "--host", service.url, "--port", "0"],
                          {**env, "BROWSER": browser},
                          shown=f"BROWSER=<scripted> rexec-login --host {service.url} --port 0"))
        codes.append(show(["rexec-whoami"], env))
        codes.append(show(["rexec-logout"], env))
        expected = [0, 0, 0, 0, 0, 0, 0, 0]
        not_logged_in = show(["rexec-whoami"], env)
        ok = codes == expected and not_logged_in == 1
        print("demo finished: every step did what it should" if ok else
              f"demo FAILED: exit codes {codes + [not_logged_in]}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
