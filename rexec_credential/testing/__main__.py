"""Run the stand-in: ``python -m rexec_credential.testing [--port N] [--jwt-lifetime S] [...]``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import List, Optional

from .accounts import DEMO_USERS
from .service import StandIn

DEMO_USER = "johndoe"


def users_epilog() -> str:
    """The demo accounts, with passwords, for --help."""
    lines = ["demo users (sign in with these on /cli-login):"]
    for user in DEMO_USERS:
        role = f"tier {user.tier}" + (", admin" if user.is_admin else "")
        lines.append(f"  {user.username:<8}  password {user.password:<14}  {role}")
    lines.append("A browser stays signed in: every CLI login from it gets that sign-in's JWT.")
    lines.append(f"It prints url=, user=, api_token=, jwt= and password= lines for {DEMO_USER}.")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Start the service, print url/user/api_token/jwt/password lines, serve until a signal."""
    parser = argparse.ArgumentParser(
        prog="python -m rexec_credential.testing",
        description="Run a stand-in of the Rexec service on a loopback port (127.0.0.1).",
        epilog=users_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: 0, any free port)"
    )
    parser.add_argument(
        "--jwt-lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime of the JWTs it issues (default: 3600)",
    )
    parser.add_argument(
        "--no-token-api",
        action="store_true",
        help="behave like an older service without the token API: /api/tokens and "
        "/api/tokens/<id>... answer 404 (/api/tokens/validate stays)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")

    stopping: List[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    svc = StandIn(port=args.port, jwt_lifetime=args.jwt_lifetime)
    svc.token_api = not args.no_token_api
    try:
        svc.start()
    except OSError as exc:
        print(f"cannot start the stand-in: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(
            f"url={svc.url}\n"
            f"user={DEMO_USER}\n"
            f"api_token={svc.mint_api_token(DEMO_USER)}\n"
            f"jwt={svc.mint_jwt(DEMO_USER)}\n"
            f"password={svc.users[DEMO_USER].password}\n"
        )
        sys.stdout.flush()
        while not stopping:
            time.sleep(0.1)
    except BrokenPipeError:
        pass
    finally:
        svc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
