"""Hostile command lines and environment to every executable, run for real as subprocesses.

4,000 runs with --full, 300 otherwise, from a seeded random.Random (the seed is printed;
REXEC_HOSTILE_ARGS_SEED replays another, REXEC_HOSTILE_ARGS_CASES=3,17 only those runs).
Each run is one of rexec-login, rexec-logout, rexec-whoami, rexec-credential and
git-credential-rexec with an argument list built from the command's documented options
(its usage forms filled in, or a shuffled mixture of its options, unique prefixes,
`--opt VALUE` and `--opt=VALUE` spellings, stray words), the values hostile: real-looking
API tokens and JWTs (random, and genuine ones minted by the stand-in), tokens inside URLs
(`https://x/?T`, `T?`, `https://T`, `T` as a host, userinfo, path, fragment), a final
newline or CR, ANSI escapes, OSC titles, bidi overrides, C1 controls, bytes that are not
UTF-8, non-ASCII digits in ports (`https://h:²`, `https://h:٤٤٣`), empty labels, labels
over 63 characters, unbalanced brackets, spaces, 10,000-character strings; and
REXEC_HOST / REXEC_TOKEN unset, genuine, or hostile the same way. Each run has a HOME of
its own, empty or seeded with stored logins on the stand-in (and one on another host),
empty standard input, BROWSER=true, and every non-loopback request goes to a proxy
address that refuses connections, so nothing leaves the machine; rexec-login's browser
flow always gets a --timeout of at most 2 seconds, and a run gets 30 s in all.

After every run: it ended within the time (a timeout is a failure); exit status 0 to 4;
no `Traceback`; no token that went in (argv, environment or the stored logins) in stdout
or stderr, neither whole nor any 12-character piece of its secret part (an API token's
part after `rexec_`, a JWT's payload or signature; compared case-insensitively, since a
host is lower-cased), except in the `password=` line of a credential `get` (its answer);
no ESC, CR, other C0 or C1 control (only \\n), bidi override or isolate in either stream,
that line included.

That the runs reach the commands' real logic is checked too: every run ran, at most 40%
were refused by the argument parser, and some succeeded (exit 0, among them logins with
genuine tokens and whoami answers) and some were usage errors (exit 2). Failures are
grouped by kind, each group shown with its count and two reproducing command lines, the
shortest first, shrunk (arguments and variables dropped while the failure stays).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from random import Random

import pytest
from conftest import BIN_DIR
from helpers import record_login, segment

from . import rounds

N = rounds(full=4000, ci=300)
SEED = int(os.environ.get("REXEC_HOSTILE_ARGS_SEED", "20250101"))
ONLY = [int(i) for i in os.environ.get("REXEC_HOSTILE_ARGS_CASES", "").split(",") if i]
WORKERS = 6  # many runs sleep (browser timeout, retries to the refusing proxy): 2 cores stay busy
RUN_TIMEOUT = 30.0
SHRINK_BUDGET = 24  # extra runs per failure group to drop arguments that do not matter

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
B64URL = ALNUM + "-_"
JWT_HEADER = segment({"alg": "HS256", "typ": "JWT"})

# Placeholders (NUL never reaches argv or the environment), filled in for each run.
STANDIN, PORT, ARABIC_PORT = "\0standin\0", "\0port\0", "\0arabic-port\0"
GOOD_API, GOOD_JWT = "\0api\0", "\0jwt\0"  # genuine: minted by the stand-in for this run
SHOWN = {
    STANDIN: "$STANDIN",
    PORT: "$PORT",
    ARABIC_PORT: "$PORT_IN_ARABIC_DIGITS",
    GOOD_API: "$API_TOKEN",
    GOOD_JWT: "$JWT",
}

CONTROLS = [
    "\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07",
    "\x1b[2J",
    "a\rb",
    "a\nb",
    "\r",
    "\n",
    "\t",
    "\x7f",
    "\x85",
    "\x9b31m",
    "\u202e",
    "abc\u202edef",
    "\u2066x\u2069",
    "\x08\x08\x08",
]
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
CLAIM_NAMES = ["johndoe", "x", "\x1b[31mjohndoe", "\u202ejohndoe", "a\rb", "a b"]
NAMES = ["johndoe", "janedoe", "nobody"]

EXECUTABLES = {  # name → (options taking a value, flags)
    "rexec-login": (
        ["--host", "--port", "--timeout", "--token", "--user"],
        ["--no-browser", "--switch", "-h", "--help", "--version"],
    ),
    "rexec-logout": (["--host", "--user"], ["--all", "--local", "-h", "--help", "--version"]),
    "rexec-whoami": (
        ["--host"],
        ["--porcelain", "--json", "--all", "--offline", "-h", "--help", "--version"],
    ),
    "rexec-credential": (["--host"], ["--system", "--local", "-h", "--help", "--version"]),
    "git-credential-rexec": (["--host"], ["--system", "--local", "-h", "--help", "--version"]),
}
WEIGHTS = {
    "rexec-login": 3,
    "rexec-logout": 2,
    "rexec-whoami": 3,
    "rexec-credential": 3,
    "git-credential-rexec": 1,
}
SEEDS = ["none", "none", "one", "one", "one", "two", "two", "other"]
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
PARSE_REFUSED = re.compile(r"(unknown option|invalid arguments)\b.*; see '")


# -- hostile values ------------------------------------------------------------------------
# Each generator returns (text, tokens): the value, and the tokens in it (never to be shown).


def api_token(rng: Random) -> str:
    return "rexec_" + "".join(rng.choice(ALNUM) for _ in range(rng.randint(32, 64)))


def jwt_token(rng: Random) -> str:
    claims: dict = {"jti": rng.randbytes(8).hex()}
    if rng.random() < 0.7:
        claims["username"] = rng.choice(CLAIM_NAMES)
    if rng.random() < 0.5:
        claims["exp"] = rng.choice([1_000_000_000, 4_102_444_800, 10**20])
    signature = "".join(rng.choice(B64URL) for _ in range(43))
    return f"{JWT_HEADER}.{segment(claims)}.{signature}"


def token(rng: Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return api_token(rng)
    if roll < 0.7:
        return jwt_token(rng)
    return GOOD_API if roll < 0.88 else GOOD_JWT


def token_value(rng: Random) -> tuple[str, list]:
    """A token as someone might pass it, whole or damaged or inside something else."""
    if rng.random() < 0.25:  # a genuine one, as pasted: these log in
        t = rng.choice([GOOD_API, GOOD_JWT])
        return t + rng.choice(["", "", "\n", " "]), [t]
    t = token(rng)
    form = rng.choice(
        [
            "{t}",
            "{t}",
            "{t}",
            "{t}\n",
            "{t}\r\n",
            " {t} ",
            "\t{t}",
            "{t}\x1b[31m",
            "\u202e{t}",
            "Bearer {t}",
            "{t}{t}",
            "{t}?",
            "https://x/?{t}",
            "https://{t}",
            "https://rexec.example/cli-callback?token={t}",
            "{t}\udcff",
            "{t}\x85",
        ]
    )
    return form.format(t=t), [t]


def arabic(text: str) -> str:
    return "".join(chr(0x660 + int(c)) if c.isdigit() else c for c in text)


def other_host(rng: Random) -> str:
    """Hostile host values that carry no token."""
    label = "a" * rng.choice([63, 64, 100, 300])
    return rng.choice(
        [
            "https://h:²",
            "https://h:٤٤٣",
            "https://127.0.0.1:" + ARABIC_PORT,
            "http://127.0.0.1:" + ARABIC_PORT,
            "https://h:" + arabic("8443"),
            "https://h:٤٤٣/path",
            "https://a..example",
            "https://.example",
            "https://a.example..",
            f"https://{label}.example",
            "https://" + ".".join(["a" * 63] * 5),
            "https://[::1",
            "https://::1]",
            "https://[::1]:",
            "https://[::1]x",
            "https://[]",
            "https://[::1]:²",
            "https://[zz::1]",
            "https://h .example",
            "https://h.example ",
            " ",
            "",
            "https://",
            "https://:443",
            "https://h:0",
            "https://h:65536",
            "https://h:-1",
            "https://h:+443",
            "https://h: 443",
            "https://h:443:443",
            "https://h.example\n",
            "https://h.example\r",
            "https://\x1b[31mh.example",
            "https://h.example\x1b]0;title\x07",
            "https://\u202eelpmaxe.h",
            "https://h\u202e.example",
            "https://h.exam\nple",
            "https://h\t.example",
            "https://h\x7f.example",
            "https://h\x85.example",
            "https://h\udcff.example",
            "https://ｈ.example",
            "https://ħ.example",
            "https://xn--.example",
            "https://h%0a.example",
            "https://h%1b.example",
            "//h.example",
            "https:/h.example",
            "https:///",
            "ftp://h.example",
            "http://h.example",
            "-",
            "--json",
            "a" * 10_000,
            "https://" + "a" * 10_000,
            "https://h.example/" + "a" * 10_000,
            "https://h.example/" + "\x1b[31m" * 50,
        ]
    )


def host_value(rng: Random) -> tuple[str, list]:
    """Where a --host or REXEC_HOST points: the stand-in, loopback, or somewhere hostile."""
    roll = rng.random()
    if roll < 0.35:
        return STANDIN, []
    if roll < 0.45:
        return rng.choice(
            [
                f"http://127.0.0.1:{PORT}",
                f"http://localhost:{PORT}/",
                f"HTTP://127.0.0.1:{PORT}",
                f"127.0.0.1:{PORT}",
                f"http://[::1]:{PORT}",
            ]
        ), []
    if roll < 0.7:
        t = token(rng)
        form = rng.choice(
            [
                "https://x/?{t}",
                "{t}?",
                "https://{t}",
                "{t}",
                "https://{t}",
                "{t}",
                "https://{t}:443",
                "https://user:{t}@h.example",
                "https://h.example/{t}",
                "https://h.example#{t}",
                "http://{t}",
                "{t}\n",
                "https://{t}\n",
                "https://{t}.example",
                "HTTPS://{t}",
                "https://h.example/?token={t}",
            ]
        )
        return form.format(t=t), [t]
    return other_host(rng), []


def junk_value(rng: Random) -> tuple[str, list]:
    """Anything at all, for --user, a stray word, an operation."""
    roll = rng.random()
    if roll < 0.35:
        return token_value(rng)
    if roll < 0.55:
        return rng.choice(CONTROLS) + rng.choice(["", "johndoe"]), []
    if roll < 0.7:
        return host_value(rng)
    return rng.choice(
        ["", " ", "x" * 10_000, "\udcff\udcfe", "²", "٤٤٣", "-", "--", "-x", "=", "johndoe\n"]
    ), []


def port_value(rng: Random) -> tuple[str, list]:
    if rng.random() < 0.7:
        return "0", []
    extra = ["²", "٠", "٩٨٧٦", "65536", "-1", " 0", "0\n", "0x10", "9876", "1e3", "", "0" * 10_000]
    if rng.random() < 0.5:
        return rng.choice(extra), []
    return junk_value(rng)


def timeout_value(rng: Random) -> tuple[str, list]:
    """Short or refused: never a long wait for the browser."""
    if rng.random() < 0.6:
        value, found = rng.choice(["1", "0.5", "1.0", " 1\n", "١", "2"]), []
    elif rng.random() < 0.5:
        value, found = rng.choice(["0", "-1", "nan", "inf", "1e9", "86400", "²", "", "1s"]), []
    else:
        value, found = junk_value(rng)
    try:
        seconds = float(value)
    except ValueError:
        return value, found
    return (value, found) if not 2 < seconds < 86400 else ("1", [])


VALUES = {
    "--host": host_value,
    "--port": port_value,
    "--timeout": timeout_value,
    "--token": token_value,
    "--user": lambda rng: (rng.choice(NAMES), []) if rng.random() < 0.4 else junk_value(rng),
}


# -- argument lists --------------------------------------------------------------------------


def spell(rng: Random, exe: str, name: str, value: str) -> list:
    """--name=VALUE, --name VALUE, or a unique prefix of the name (docopt takes those)."""
    longs = [o for group in EXECUTABLES[exe] for o in group if o.startswith("--")]
    shortest = next(
        n for n in range(3, len(name) + 1) if [o for o in longs if o.startswith(name[:n])] == [name]
    )
    written = name[: rng.randint(shortest, len(name))] if rng.random() < 0.15 else name
    return [f"{written}={value}"] if rng.random() < 0.6 else [written, value]


def form(rng: Random, exe: str) -> tuple[list, list]:
    """One of the command's usage forms, optional parts chosen at random."""
    parts: list = []  # option and flag names, values filled in by fill()

    def maybe(p: float, *names: str) -> None:
        if rng.random() < p:
            parts.extend(names)

    if exe == "rexec-login":
        shape = rng.choice(["browser", "token", "token", "token", "switch"])
        if shape == "browser":
            maybe(0.8, "--host")
            parts.extend(["--port", "--timeout"])
            maybe(0.5, "--no-browser")
        elif shape == "token" and rng.random() < 0.3:  # genuine, for the stand-in: logs in
            good = rng.choice([GOOD_API, GOOD_JWT])
            value = good + rng.choice(["", "\n", " "])
            return [*spell(rng, exe, "--token", value), "--host", STANDIN], [good]
        elif shape == "token":
            parts.append("--token")
            maybe(0.8, "--host")
        else:
            parts.append("--switch")
            maybe(0.6, "--user")
            maybe(0.5, "--host")
    elif exe == "rexec-logout":
        if rng.random() < 0.25:
            parts.append("--all")
        else:
            maybe(0.5, "--host")
            maybe(0.4, "--user")
        maybe(0.4, "--local")
    elif exe == "rexec-whoami":
        if rng.random() < 0.3:
            parts.append("--all")
            maybe(0.5, "--offline")
        else:
            maybe(0.7, "--host")
        maybe(0.4, rng.choice(["--porcelain", "--json"]))
    else:
        roll = rng.random()
        if roll < 0.6:
            return [rng.choice(["get", "get", "get", "store", "erase"])], []
        if roll < 0.8:
            value, found = junk_value(rng)
            return [value], found
        parts.append(rng.choice(["configure", "unconfigure"]))
        maybe(0.8, "--host")
        maybe(0.4, rng.choice(["--system", "--local"]))
    rng.shuffle(parts)
    return fill(rng, exe, parts)


def fill(rng: Random, exe: str, parts: list) -> tuple[list, list]:
    argv, found = [], []
    for name in parts:
        if name in VALUES:
            value, tokens = VALUES[name](rng)
            argv += spell(rng, exe, name, value)
            found += tokens
        else:
            argv.append(name)
    return argv, found


def mixture(rng: Random, exe: str) -> tuple[list, list]:
    """Any of the command's options, in any order and number, and stray words."""
    options, flags = EXECUTABLES[exe]
    pool = options + [f for f in flags if f not in ("-h", "--help", "--version")]
    parts = rng.sample(pool, rng.randint(1, min(4, len(pool))))
    if rng.random() < 0.15:
        parts.append(rng.choice(parts))  # given twice
    argv, found = fill(rng, exe, parts)
    if exe in ("rexec-credential", "git-credential-rexec") and rng.random() < 0.7:
        argv.insert(rng.randint(0, len(argv)), rng.choice(["get", "store", "configure"]))
    if rng.random() < 0.25:
        value, tokens = junk_value(rng)
        argv.insert(rng.randint(0, len(argv)), value)
        found += tokens
    if rng.random() < 0.1:
        argv.insert(rng.randint(0, len(argv)), rng.choice(["--", "--bogus", "-z", "--hos"]))
    return argv, found


def bounded(exe: str, argv: list) -> list:
    """rexec-login that may go to the browser flow always gets a short --timeout."""
    if exe != "rexec-login":
        return argv
    if any(a.startswith(("--ti", "--to", "--sw", "-h", "--he", "--v")) for a in argv):
        return argv
    return [*argv, "--timeout=1"]


def make_case(rng: Random, index: int) -> dict:
    exe = rng.choice([e for e, w in WEIGHTS.items() for _ in range(w)])
    roll = rng.random()
    if roll < 0.03:
        argv, found = [rng.choice(["-h", "--help", "--version"])], []
    elif roll < 0.75:
        argv, found = form(rng, exe)
    else:
        argv, found = mixture(rng, exe)
    env = {}
    roll = rng.random()
    if roll < 0.3:
        env["REXEC_HOST"] = STANDIN
    elif roll < 0.6:
        env["REXEC_HOST"], tokens = host_value(rng)
        found += tokens
    roll = rng.random()
    if roll < 0.15:
        env["REXEC_TOKEN"] = rng.choice([GOOD_API, GOOD_JWT])
        found.append(env["REXEC_TOKEN"])
    elif roll < 0.55:
        env["REXEC_TOKEN"], tokens = token_value(rng) if rng.random() < 0.8 else junk_value(rng)
        found += tokens
    return {
        "index": index,
        "exe": exe,
        "argv": bounded(exe, argv),
        "env": env,
        "seed": rng.choice(SEEDS),
        "tokens": found,
    }


# -- one run ---------------------------------------------------------------------------------


class World:
    """What every run shares: the stand-in, a proxy address that refuses, a scratch dir."""

    def __init__(self, standin, root, proxy: str) -> None:
        self.standin, self.root, self.proxy = standin, root, proxy
        self.port = str(standin.address[1])
        self.counter = itertools.count()

    def home(self):
        path = self.root / f"run-{next(self.counter)}"
        path.mkdir(parents=True)
        return path


def fill_in(text: str, minted: dict, world: World) -> str:
    for marker, value in (
        (STANDIN, world.standin.url),
        (PORT, world.port),
        (ARABIC_PORT, arabic(world.port)),
        (GOOD_API, minted["api"]),
        (GOOD_JWT, minted["jwt"]),
    ):
        text = text.replace(marker, value)
    return text


def seed_logins(kind: str, directory, world: World) -> list:
    """Stored logins for this run (fresh tokens: a logout may end a session); their tokens."""
    standin = world.standin
    if kind == "none":
        return []
    if kind == "one":
        found = [standin.mint_api_token("johndoe")]
        record_login(directory, standin.url, found[0], "johndoe")
    elif kind == "two":
        found = [standin.mint_api_token("johndoe"), standin.mint_jwt("janedoe")]
        record_login(directory, standin.url, found[0], "johndoe")
        record_login(directory, standin.url, found[1], "janedoe", "jane@example.com", "free")
    else:  # another host (unreachable here) beside the stand-in's login
        found = [api_token(Random(str(directory))), standin.mint_api_token("johndoe")]
        record_login(directory, "https://other.example", found[0], "eve", "eve@example.com")
        record_login(directory, standin.url, found[1], "johndoe")
    return found


def secret_pieces(token: str) -> set:
    """Every 12-character piece (lower case) of the secret part of a token."""
    token = token.strip()
    if token.startswith("rexec_"):
        parts = [token[len("rexec_") :]]
    elif token.count(".") == 2:
        parts = token.split(".")[1:]  # the header is the same in every JWT
    else:
        parts = [token]
    return {p[i : i + 12].lower() for p in parts for i in range(len(p) - 11)}


def template(line: str) -> str:
    """A message's first words, values blanked: what groups failures of one kind."""
    words = []
    for word in line.split()[:4]:
        bad = len(word) > 24 or "://" in word or any(not c.isprintable() for c in word)
        kept = re.match(r"\w+=|[a-zA-Z]+://", word) if bad else None  # host=…, https://…
        words.append((kept.group(0) if kept else "") + "…" if bad else re.sub(r"\d+", "N", word))
    return " ".join(words) or repr(line[:30])


def control_name(char: str) -> str:
    names = {"\x1b": "ESC", "\r": "CR", "\t": "TAB", "\x07": "BEL", "\x7f": "DEL"}
    if char in names:
        return names[char]
    if char in BIDI:
        return f"bidi U+{ord(char):04X}"
    return f"{'C1' if ord(char) >= 0x7F else 'C0'} control U+{ord(char):04X}"


def is_control(char: str) -> bool:
    code = ord(char)
    return char != "\n" and (code < 32 or 127 <= code < 160 or char in BIDI)


def problems(case: dict, result: dict, secrets: list) -> list:
    """(kind, detail) for everything wrong with one run."""
    if result["code"] is None:
        return [("timeout: no exit within 30 s", "")]
    found = []
    out, err, code = result["out"], result["err"], result["code"]
    if not 0 <= code <= 4:
        found.append((f"exit status {code}", err.strip()[-200:]))
    if TRACEBACK.search(out + err):
        frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', err + out)
        where = f"{os.path.basename(frames[-1][0])}:{frames[-1][1]}" if frames else "?"
        last = (err or out).strip().splitlines()[-1]
        found.append((f"traceback: {last.split(':')[0]} in {where}", last[:200]))
    pieces = set().union(*map(secret_pieces, secrets)) if secrets else set()
    is_get = case["argv"] == ["get"] and "credential" in case["exe"]
    for stream, text in (("stdout", out), ("stderr", err)):
        for line in text.split("\n"):
            low = line.lower()
            grams = {low[i : i + 12] for i in range(len(low) - 11)}
            answered = stream == "stdout" and is_get and line.startswith("password=")
            if pieces & grams and not answered:  # get may answer with a token, nothing else
                found.append((f"token in {stream}: {template(line)}", line[:200]))
            bad = sorted({control_name(c) for c in line if is_control(c)})
            if bad:
                kind = f"{', '.join(bad)} in {stream}: {template(line)}"
                found.append((kind, line[:200]))
    return found


def run_case(case: dict, world: World) -> dict:
    home = world.home()
    try:
        directory = home / ".rexec"
        stored = seed_logins(case["seed"], directory, world)
        minted = {"api": world.standin.mint_api_token("johndoe")}
        minted["jwt"] = world.standin.mint_jwt("janedoe")
        argv = [fill_in(a, minted, world) for a in case["argv"]]
        extra = {k: fill_in(v, minted, world) for k, v in case["env"].items()}
        env = dict(os.environ)  # clean_world's: no REXEC_*, GIT_* or proxies
        env.update(
            HOME=str(home),
            BROWSER="true",
            GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
            GIT_CONFIG_SYSTEM=str(home / "system-gitconfig"),
            GIT_CEILING_DIRECTORIES=str(world.root),
            NO_PROXY="127.0.0.1,localhost,::1",
            no_proxy="127.0.0.1,localhost,::1",
        )
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
            env[name] = env[name.lower()] = world.proxy
        env.update(extra)
        started = time.monotonic()
        try:
            proc = subprocess.run(
                [str(BIN_DIR / case["exe"]), *argv],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=env,
                cwd=home,
                timeout=RUN_TIMEOUT,
            )
            result = {
                "code": proc.returncode,
                "out": proc.stdout.decode("utf-8", "replace"),
                "err": proc.stderr.decode("utf-8", "replace"),
            }
        except subprocess.TimeoutExpired:
            result = {"code": None, "out": "", "err": ""}
        result["seconds"] = time.monotonic() - started
        secrets = [fill_in(t, minted, world) for t in case["tokens"]] + stored
        result["problems"] = problems(case, result, secrets)
        return result
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- reporting -------------------------------------------------------------------------------


def quoted(text: str) -> str:
    """A shell word for text; placeholders as variables, long runs of a character as printf."""
    words, at = [], 0
    for match in re.finditer(r"\0[a-z-]+\0|(.)\1{39,}", text, flags=re.S):
        words.append(plain(text[at : match.start()]) if at < match.start() else "")
        part, at = match.group(0), match.end()
        if part in SHOWN:
            words.append(f'"{SHOWN[part]}"')
        else:
            words.append(f'"$(printf {plain(part[0])}%.0s {{1..{len(part)}}})"')
    words.append(plain(text[at:]) if at < len(text) or not words else "")
    return "".join(words)


def plain(text: str) -> str:
    """text as one shell word: bare, '...', or $'...' with escapes."""
    if re.fullmatch(r"[\w@%+=:,./-]+", text, flags=re.A):
        return text
    if all(c.isprintable() and c != "'" for c in text):
        return f"'{text}'"
    escaped = []
    for c in text:
        if 0xDC80 <= ord(c) <= 0xDCFF:
            escaped.append(f"\\x{ord(c) - 0xDC00:02x}")  # a byte that is not UTF-8
        elif c in "\\'":
            escaped.append("\\" + c)
        elif c.isprintable():
            escaped.append(c)
        elif ord(c) < 256:
            escaped.append(f"\\x{ord(c):02x}")
        else:
            escaped.append(f"\\u{ord(c):04x}")
    return "$'" + "".join(escaped) + "'"


def command_line(case: dict) -> str:
    env = " ".join(f"{k}={quoted(v)}" for k, v in case["env"].items())
    seeded = {"none": "", "one": "[login: johndoe]", "two": "[logins: johndoe, janedoe]"}.get(
        case["seed"], "[logins: eve@other.example, johndoe]"
    )
    words = [seeded, env, case["exe"], *map(quoted, case["argv"])]
    return " ".join(w for w in words if w)


def size(case: dict) -> int:
    texts = case["argv"] + list(case["env"].values())
    return sum(len(t) for t in texts) + 20 * (len(texts) + (case["seed"] != "none"))


def smaller(case: dict):
    """Cases with one part fewer: the logins, a variable, an argument (or option and value)."""
    if case["seed"] != "none":
        yield {**case, "seed": "none"}
    for name in case["env"]:
        yield {**case, "env": {k: v for k, v in case["env"].items() if k != name}}
    argv = case["argv"]
    for width in (2, 1):
        for i in range(len(argv) - width + 1):
            fewer = bounded(case["exe"], argv[:i] + argv[i + width :])
            if fewer != argv:
                yield {**case, "argv": fewer}


def shrink(case: dict, kind: str, world: World) -> dict:
    """Drop what the failure does not need, within SHRINK_BUDGET runs."""
    budget = SHRINK_BUDGET
    progress = True
    while progress and budget > 0:
        progress = False
        for candidate in smaller(case):
            budget -= 1
            if kind in {k for k, _ in run_case(candidate, world)["problems"]}:
                case, progress = candidate, True
                break
            if budget <= 0:
                break
    return case


def report(groups: dict, world: World, pool: ThreadPoolExecutor) -> str:
    kinds = sorted(groups, key=lambda k: -len(groups[k]))
    firsts = {k: min(groups[k], key=lambda item: size(item[0])) for k in kinds}
    shrunk = dict(zip(kinds, pool.map(lambda k: shrink(firsts[k][0], k, world), kinds)))
    lines = []
    for kind in kinds:
        items = groups[kind]
        exes = sorted({case["exe"] for case, _ in items})
        lines.append(f"\n[{len(items)} runs] {kind}    ({', '.join(exes)})")
        examples = [shrunk[kind]] + [
            case for case, _ in sorted(items, key=lambda i: size(i[0]))[1:2]
        ]
        for case in examples:
            lines.append(f"    #{case['index']}: {command_line(case)}"[:400])
        lines.append(f"      said: {firsts[kind][1]!r}"[:300])
    return "\n".join(lines)


# -- the test --------------------------------------------------------------------------------


@pytest.fixture
def refusing_proxy():
    """A loopback address bound but never listening: every connection to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_hostile_arguments_and_environment(standin, tmp_path, refusing_proxy):
    """300 runs (4,000 with --full) over the five executables: exit 0-4 within 30 s, no
    traceback, no token shown, no control or bidi character; see the module docstring."""
    rng = Random(SEED)
    cases = [make_case(rng, i) for i in range(N)]
    if ONLY:
        cases = [cases[i] for i in ONLY]
    world = World(standin, tmp_path / "runs", refusing_proxy)
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda case: run_case(case, world), cases))
        elapsed = time.monotonic() - started

        codes: dict = defaultdict(Counter)
        groups: dict = defaultdict(list)
        for case, result in zip(cases, results):
            codes[case["exe"]][result["code"]] += 1
            for kind, detail in dict(result["problems"]).items():  # once per run and kind
                groups[kind].append((case, detail))
        total = sum(codes.values(), Counter())
        refused = sum(1 for r in results if r["code"] == 2 and PARSE_REFUSED.search(r["err"] or ""))
        logged_in = sum(1 for r in results if "Logged in as" in (r["out"] or ""))
        slowest = max(r["seconds"] for r in results)
        print(f"\nseed {SEED}: {len(results)} runs in {elapsed:.1f} s (slowest {slowest:.1f} s)")
        for exe, counter in sorted(codes.items()):
            print(
                f"  {exe}: "
                + ", ".join(f"exit {c}: {n}" for c, n in sorted(counter.items(), key=str))
            )
        print(f"  refused by the argument parser: {refused}; logins that succeeded: {logged_in}")

        coverage = []
        if not ONLY:
            if len(results) != N:
                coverage.append(f"{len(results)} runs instead of {N}")
            if refused > 0.4 * N:
                coverage.append(f"{refused} of {N} runs never got past the argument parser")
            if total[0] < 0.05 * N or total[2] < 0.05 * N or total[1] < 0.05 * N:
                coverage.append(f"too few runs with exit 0, 1 or 2: {dict(total)}")
            if logged_in < 3 or codes["rexec-whoami"][0] < 3:
                coverage.append(f"{logged_in} logins and {codes['rexec-whoami'][0]} whoami passed")
        failing = sum(1 for r in results if r["problems"])
        text = report(groups, world, pool) if groups else ""
    message = [f"the runs did not reach the commands: {'; '.join(coverage)}"] if coverage else []
    if groups:
        message.append(
            f"seed {SEED}: {failing} of {len(results)} runs failed, {len(groups)} kinds "
            f"(replay: REXEC_HOSTILE_ARGS_SEED={SEED} REXEC_HOSTILE_ARGS_CASES=<#>; $STANDIN "
            f"is the stand-in, $API_TOKEN and $JWT tokens it minted for the run):{text}"
        )
    assert not message, "\n".join(message)
