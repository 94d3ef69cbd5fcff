"""A stand-in for the Rexec CLI (written in Go) as it reads and writes ~/.rexec/config.json.

What it does, byte for byte:

- save: `json.MarshalIndent(cfg, "", "  ")` of exactly host, token, username, email, tier
  (in that order, empty strings included), then `os.WriteFile(path, data, 0600)`:
  open with O_WRONLY|O_CREATE|O_TRUNC, one write, no rename, no lock; the mode applies
  only when the open creates the file. The directory is made with MkdirAll(dir, 0700),
  whose mode too applies only when it creates it.
- load: `os.ReadFile`, keys it does not know ignored.
- Any command that saves writes REXEC_TOKEN and REXEC_HOST into the file when they are
  set (its config loader applies them before it saves).
- logout removes config.json only.

Run as a program, it rewrites config.json in a tight loop (for race tests):
`python tests/rexec_cli.py loop DIRECTORY SECONDS` prints how many saves it made.
"""

from __future__ import annotations

import json
import os
import sys
import time

FIELDS = ("host", "token", "username", "email", "tier")


def load(directory: str) -> dict:
    """The five fields as the Rexec CLI reads them (missing ones are empty)."""
    try:
        with open(os.path.join(directory, "config.json"), "rb") as f:
            data = json.loads(f.read() or b"{}")
    except FileNotFoundError:
        data = {}
    return {k: data.get(k, "") if isinstance(data.get(k, ""), str) else "" for k in FIELDS}


def save(directory: str, env: dict | None = None, **fields: str) -> bytes:
    """Write the five fields the way the Rexec CLI does; returns the bytes written."""
    env = env or {}
    cfg = {k: fields.get(k, "") for k in FIELDS}
    if env.get("REXEC_HOST"):
        cfg["host"] = env["REXEC_HOST"]
    if env.get("REXEC_TOKEN"):
        cfg["token"] = env["REXEC_TOKEN"]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    data = json.dumps(cfg, indent=2).encode()
    fd = os.open(
        os.path.join(directory, "config.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
    )
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return data


def set_host(directory: str, host: str, env: dict | None = None) -> bytes:
    """`rexec config set host URL`: load, change one field, save (only the five fields)."""
    cfg = load(directory)
    cfg["host"] = host
    return save(directory, env, **cfg)


def logout(directory: str) -> None:
    """`rexec logout`: remove config.json."""
    try:
        os.remove(os.path.join(directory, "config.json"))
    except FileNotFoundError:
        pass


# The two logins `loop` saves in turn: save number n (from 0) holds LOOP_LOGINS[n % 2].
LOOP_LOGINS = (
    {
        "host": "https://rexec.pipeops.io",
        "token": "rexec_" + "c1" * 32,
        "username": "cli-one",
        "email": "one@example.com",
        "tier": "pro",
    },
    {
        "host": "https://rexec.pipeops.io",
        "token": "rexec_" + "c2" * 32,
        "username": "cli-two",
        "email": "two@example.com",
        "tier": "free",
    },
)


def loop(directory: str, seconds: float) -> int:
    """Save config.json over and over for `seconds`, alternating two logins; the count."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        save(directory, **LOOP_LOGINS[count % 2])
        count += 1
    return count


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "loop":
        print(loop(sys.argv[2], float(sys.argv[3])))
    else:
        sys.exit("usage: rexec_cli.py loop DIRECTORY SECONDS")
