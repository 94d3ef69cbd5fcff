"""Time `rexec-credential get` against the `python -c "import json"` floor and git-credential-store.

Each command answers (or, for the floor, imitates) one credential lookup. `get` runs
with 1, 100 and 10,000 credentials stored (the one asked for is the oldest, so every
other one is looked at first), each in its own HOME. Runs are interleaved (every round
runs each command once, in a rotating order) so that drift in machine load hits all of
them alike. Prints medians and ratios.

    .venv/bin/python bench/credential_get.py [--runs N] [--check]

--check exits 1 when `get` with one credential is slower than TARGET times the floor,
or `get` with 10,000 slower than LARGE_TARGET times `get` with one.

The package's bytecode is compiled first, as `pip install` does: with
PYTHONDONTWRITEBYTECODE set (or a read-only tree) every run would otherwise
recompile each module from source, which is not what an installed helper costs.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = 1.3
LARGE_TARGET = 2.0
SIZES = (1, 100, 10_000)
REQUEST = b"protocol=https\nhost=example.com\nusername=bench-user\n"
STORED = REQUEST + b"password=bench-token\n"
EXPECTED = b"password=bench-token\n"
FLOOR = 'python -c "import json"'


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report; the exit status is 0 unless --check fails."""
    options = _options(argv)
    helper = options.helper or os.path.join(os.path.dirname(sys.executable), "rexec-credential")
    git = shutil.which("git")
    _compile_package()
    with tempfile.TemporaryDirectory(prefix="rexec-bench-") as root:
        env = _environment(os.path.join(root, "home-1"))
        commands = {}
        for size in SIZES:
            home = os.path.join(root, f"home-{size}")
            _run([helper, "store"], STORED, _environment(home))
            _add_others(os.path.join(home, ".rexec"), size - 1)
            commands[_label(size)] = ([helper, "get"], REQUEST, _environment(home))
        commands[FLOOR] = ([sys.executable, "-c", "import json"], b"", env)
        if git:
            store_file = os.path.join(root, "git-credentials")
            _run([git, "credential-store", "--file", store_file, "store"], STORED, env)
            commands["git credential-store get"] = (
                [git, "credential-store", "--file", store_file, "get"],
                REQUEST,
                env,
            )
        for name, (argv_, stdin, env_) in commands.items():
            if stdin and EXPECTED not in _run(argv_, stdin, env_):
                print(f"error: {name} did not answer the stored credential", file=sys.stderr)
                return 1
        timings = _measure(commands, options.runs, options.warmup)
    return _report(timings, options.runs, options.check)


def _label(size: int) -> str:
    return f"rexec-credential get ({size:,} stored)"


def _add_others(directory: str, count: int) -> None:
    """Store `count` more credentials, newer than the one the benchmark asks for."""
    if not count:
        return
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rexec_credential.storage import Storage

    others = [
        {
            "protocol": "https",
            "host": f"host{n}.example.com",
            "username": f"user{n}",
            "password": f"token-{n:06d}-" + "x" * 40,
        }
        for n in range(count)
    ]

    def change(state: object) -> None:
        state.credentials = others + state.credentials  # type: ignore[attr-defined]

    Storage(directory, print).update(change)


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="measured rounds (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured rounds first")
    parser.add_argument("--helper", help="the rexec-credential executable to time")
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 when get takes more than {TARGET}x the floor"
    )
    options = parser.parse_args(argv)
    if options.runs < 1 or options.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    return options


def _compile_package() -> None:
    import rexec_credential

    compileall.compile_dir(os.path.dirname(rexec_credential.__file__), quiet=1)


def _environment(home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REXEC_", "GIT_"))}
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1")
    return env


def _run(argv: list[str], stdin: bytes, env: dict) -> bytes:
    os.makedirs(env["HOME"], exist_ok=True)
    return subprocess.run(argv, input=stdin, capture_output=True, env=env, check=True).stdout


def _measure(commands: dict, runs: int, warmup: int) -> dict:
    names = list(commands)
    timings: dict = {name: [] for name in names}
    for round_ in range(warmup + runs):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:  # rotate who goes first
            argv, stdin, env = commands[name]
            start = time.perf_counter()
            _run(argv, stdin, env)
            elapsed = time.perf_counter() - start
            if round_ >= warmup:
                timings[name].append(elapsed)
    return timings


def _report(timings: dict, runs: int, check: bool) -> int:
    floor = statistics.median(timings[FLOOR])
    print(f"{runs} interleaved runs each; python {sys.version.split()[0]} ({sys.executable})")
    print(f"{'command':<36} {'median':>10} {'min':>10} {'vs floor':>9}")
    for name, samples in timings.items():
        median = statistics.median(samples)
        print(
            f"{name:<36} {median * 1000:>8.1f}ms {min(samples) * 1000:>8.1f}ms "
            f"{median / floor:>8.2f}x"
        )
    one = statistics.median(timings[_label(1)])
    large = statistics.median(timings[_label(SIZES[-1])])
    ratio, growth = one / floor, large / one
    print(
        f"rexec-credential get / import json floor = {ratio:.2f}x "
        f"({'within' if ratio <= TARGET else 'OVER'} target {TARGET}x)"
    )
    print(
        f"get with {SIZES[-1]:,} stored / get with 1 = {growth:.2f}x "
        f"({'within' if growth <= LARGE_TARGET else 'OVER'} target {LARGE_TARGET}x)"
    )
    return 1 if check and (ratio > TARGET or growth > LARGE_TARGET) else 0


if __name__ == "__main__":
    sys.exit(main())
