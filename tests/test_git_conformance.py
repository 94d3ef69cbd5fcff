"""git's own external-helper suite (t/t0303-credential-external.sh + t/lib-credential.sh),
scenarios 1-21, driven through real git: `git -c credential.helper=rexec credential
fill|approve|reject`, with the harness's GIT_ASKPASS stub that answers `askpass-username` /
`askpass-password` and logs each prompt on stderr, so "the helper answered nothing" shows as
askpass lines. stdout and stderr are compared exactly, as `check` does.

Each scenario is one test named after it. t0303's tests build on one another; here each test
first replays the scenarios it builds on (DEPENDS), and test_t0303_in_sequence runs them all,
in order, against one store as the real harness does.

git 2.39 is installed here. Attributes it does not forward (`password_expiry_utc` needs 2.40,
`wwwauth[]` and `oauth_refresh_token` 2.41, `capability[]`, `authtype`, `credential` and
`ephemeral` 2.46) cannot travel through `git credential`; a step that uses one runs, on an
older git, by driving `git-credential-rexec get|store|erase` directly with the stdin a newer
git sends, and compares the helper's own output instead (Step.helper_out).

After t0303 come lib-credential.sh's `helper_test_authtype` scenarios (git 2.46, which runs
them for credential-cache in t0301), line for line, in the same form.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import NamedTuple

import pytest
from conftest import BIN_DIR
from helpers import storage

pytestmark = pytest.mark.git


def _git_version() -> tuple:
    out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in out.split()[2].split(".")[:2])


GIT_VERSION = _git_version()
EXPIRY = (2, 40)  # password_expiry_utc
WWWAUTH = OAUTH = (2, 41)  # wwwauth[], oauth_refresh_token
ASKPASS = """#!/bin/sh
echo >&2 askpass: $*
what=$(echo $1 | cut -d" " -f1 | tr A-Z a-z | tr -cd a-z)
echo "askpass-$what"
"""
# t0303's long header: a fixed-size line buffer would split it and read a `host=` line.
# Here `host=` starts at byte 1023 of the line, where a 1024-byte fgets() would cut it.
LONG_VALUE = "Basic realm=" + "a" * (1023 - 22) + "host=victim.example.com"
TO_HELPER = {"fill": "get", "approve": "store", "reject": "erase"}


class Step(NamedTuple):
    """One `check` of lib-credential.sh: stdin, expected stdout and stderr, split by `--`."""

    op: str
    chunks: str
    config: tuple = ()
    needs: tuple = (0,)  # the first git that forwards every attribute of this step
    helper_out: str = ""  # what the helper itself prints when driven directly


def fill(chunks: str, **kw) -> Step:
    return Step("fill", chunks, **kw)


def approve(chunks: str, **kw) -> Step:
    return Step("approve", chunks, **kw)


def reject(chunks: str, **kw) -> Step:
    return Step("reject", chunks, **kw)


def prompts(url: str, user_url: str | None = None, username: bool = True) -> str:
    """The askpass lines git's prompts leave on stderr."""
    lines = [f"askpass: Username for '{url}':"] if username else []
    return "\n".join(lines + [f"askpass: Password for '{user_url}':"])


SCENARIOS: dict = {
    # 1
    "has_no_existing_data": [
        fill(f"""
protocol=https
host=example.com
--
protocol=https
host=example.com
username=askpass-username
password=askpass-password
--
{prompts("https://example.com", "https://askpass-username@example.com")}
""")
    ],
    # 2
    "stores_password": [
        approve("""
protocol=https
host=example.com
username=store-user
password=store-pass
""")
    ],
    # 3
    "can_retrieve_password": [
        fill("""
protocol=https
host=example.com
--
protocol=https
host=example.com
username=store-user
password=store-pass
--
""")
    ],
    # 4
    "requires_matching_protocol": [
        fill(f"""
protocol=http
host=example.com
--
protocol=http
host=example.com
username=askpass-username
password=askpass-password
--
{prompts("http://example.com", "http://askpass-username@example.com")}
""")
    ],
    # 5
    "requires_matching_host": [
        fill(f"""
protocol=https
host=other.tld
--
protocol=https
host=other.tld
username=askpass-username
password=askpass-password
--
{prompts("https://other.tld", "https://askpass-username@other.tld")}
""")
    ],
    # 6
    "requires_matching_username": [
        fill(f"""
protocol=https
host=example.com
username=other
--
protocol=https
host=example.com
username=other
password=askpass-password
--
{prompts("", "https://other@example.com", username=False)}
""")
    ],
    # 7
    "requires_matching_path": [
        approve(
            """
protocol=http
host=path.tld
path=foo.git
username=user
password=pass
""",
            config=("usehttppath=true",),
        ),
        fill(
            f"""
protocol=http
host=path.tld
path=bar.git
--
protocol=http
host=path.tld
path=bar.git
username=askpass-username
password=askpass-password
--
{prompts("http://path.tld/bar.git", "http://askpass-username@path.tld/bar.git")}
""",
            config=("usehttppath=true",),
        ),
    ],
    # 8
    "overwrites_on_store": [
        approve("""
protocol=https
host=example.com
username=user-overwrite
password=pass1
"""),
        approve("""
protocol=https
host=example.com
username=user-overwrite
password=pass2
"""),
        fill("""
protocol=https
host=example.com
username=user-overwrite
--
protocol=https
host=example.com
username=user-overwrite
password=pass2
"""),
        reject("""
protocol=https
host=example.com
username=user-overwrite
password=pass2
"""),
        fill(f"""
protocol=https
host=example.com
username=user-overwrite
--
protocol=https
host=example.com
username=user-overwrite
password=askpass-password
--
{prompts("", "https://user-overwrite@example.com", username=False)}
"""),
    ],
    # 9
    "can_forget_host": [
        reject("""
protocol=https
host=example.com
"""),
        fill(f"""
protocol=https
host=example.com
--
protocol=https
host=example.com
username=askpass-username
password=askpass-password
--
{prompts("https://example.com", "https://askpass-username@example.com")}
"""),
    ],
    # 10
    "can_store_multiple_users": [
        approve("""
protocol=https
host=example.com
username=user1
password=pass1
"""),
        approve("""
protocol=https
host=example.com
username=user2
password=pass2
"""),
        fill("""
protocol=https
host=example.com
username=user1
--
protocol=https
host=example.com
username=user1
password=pass1
"""),
        fill("""
protocol=https
host=example.com
username=user2
--
protocol=https
host=example.com
username=user2
password=pass2
"""),
    ],
    # 11
    "does_not_erase_a_password_distinct_from_input": [
        approve("""
protocol=https
host=example.com
username=user-distinct-pass
password=pass1
"""),
        reject("""
protocol=https
host=example.com
username=user-distinct-pass
password=pass2
"""),
        fill("""
protocol=https
host=example.com
username=user-distinct-pass
--
protocol=https
host=example.com
username=user-distinct-pass
password=pass1
"""),
    ],
    # 12
    "can_forget_user": [
        reject("""
protocol=https
host=example.com
username=user1
"""),
        fill(f"""
protocol=https
host=example.com
username=user1
--
protocol=https
host=example.com
username=user1
password=askpass-password
--
{prompts("", "https://user1@example.com", username=False)}
"""),
    ],
    # 13
    "remembers_other_user": [
        fill("""
protocol=https
host=example.com
username=user2
--
protocol=https
host=example.com
username=user2
password=pass2
""")
    ],
    # 14
    "can_store_empty_username": [
        approve("""
protocol=https
host=sso.tld
username=
password=
"""),
        fill("""
protocol=https
host=sso.tld
--
protocol=https
host=sso.tld
username=
password=
"""),
    ],
    # 15
    "erases_all_matching_credentials": [
        approve("""
protocol=https
host=example.com
username=user1
password=pass1
"""),
        approve("""
protocol=https
host=example.com
username=user2
password=pass1
"""),
        reject("""
protocol=https
host=example.com
"""),
        fill(f"""
protocol=https
host=example.com
--
protocol=https
host=example.com
username=askpass-username
password=askpass-password
--
{prompts("https://example.com", "https://askpass-username@example.com")}
"""),
    ],
    # 16
    "does_not_get_confused_by_long_header": [
        approve("""
protocol=https
host=victim.example.com
username=user
password=to-be-stolen
"""),
        fill(
            f"""
protocol=https
host=badguy.example.com
wwwauth[]={LONG_VALUE}
--
protocol=https
host=badguy.example.com
username=askpass-username
password=askpass-password
wwwauth[]={LONG_VALUE}
--
{prompts("https://badguy.example.com", "https://askpass-username@badguy.example.com")}
""",
            needs=WWWAUTH,
            helper_out="",
        ),
    ],
    # 17
    "stores_password_expiry_utc": [
        approve(
            """
protocol=https
host=example.com
username=user-expiry
password=pass
password_expiry_utc=9999999999
""",
            needs=EXPIRY,
        )
    ],
    # 18
    "gets_password_expiry_utc": [
        fill(
            """
protocol=https
host=example.com
username=user-expiry
--
protocol=https
host=example.com
username=user-expiry
password=pass
password_expiry_utc=9999999999
--
""",
            needs=EXPIRY,
            helper_out="""\
protocol=https
host=example.com
username=user-expiry
password=pass
password_expiry_utc=9999999999
""",
        )
    ],
    # 19
    "overwrites_when_password_expiry_utc_changes": [
        approve(
            """
protocol=https
host=example.com
username=user-expiry-overwrite
password=pass1
password_expiry_utc=9999999998
""",
            needs=EXPIRY,
        ),
        approve(
            """
protocol=https
host=example.com
username=user-expiry-overwrite
password=pass2
password_expiry_utc=9999999999
""",
            needs=EXPIRY,
        ),
        fill(
            """
protocol=https
host=example.com
username=user-expiry-overwrite
--
protocol=https
host=example.com
username=user-expiry-overwrite
password=pass2
password_expiry_utc=9999999999
""",
            needs=EXPIRY,
            helper_out="""\
protocol=https
host=example.com
username=user-expiry-overwrite
password=pass2
password_expiry_utc=9999999999
""",
        ),
        reject("""
protocol=https
host=example.com
username=user-expiry-overwrite
password=pass2
"""),
        fill(f"""
protocol=https
host=example.com
username=user-expiry-overwrite
--
protocol=https
host=example.com
username=user-expiry-overwrite
password=askpass-password
--
{prompts("", "https://user-expiry-overwrite@example.com", username=False)}
"""),
    ],
    # 20
    "stores_oauth_refresh_token": [
        approve(
            """
protocol=https
host=example.com
username=user4
password=pass
oauth_refresh_token=xyzzy
""",
            needs=OAUTH,
        )
    ],
    # 21
    "gets_oauth_refresh_token": [
        fill(
            """
protocol=https
host=example.com
username=user4
--
protocol=https
host=example.com
username=user4
password=pass
oauth_refresh_token=xyzzy
--
""",
            needs=OAUTH,
            helper_out="""\
protocol=https
host=example.com
username=user4
password=pass
oauth_refresh_token=xyzzy
""",
        )
    ],
}
# What each scenario builds on in t0303's running order.
DEPENDS = {
    "can_retrieve_password": ["stores_password"],
    "requires_matching_protocol": ["stores_password"],
    "requires_matching_host": ["stores_password"],
    "requires_matching_username": ["stores_password"],
    "can_forget_host": ["stores_password"],
    "can_forget_user": ["can_store_multiple_users"],
    "remembers_other_user": ["can_store_multiple_users", "can_forget_user"],
    "gets_password_expiry_utc": ["stores_password_expiry_utc"],
    "gets_oauth_refresh_token": ["stores_oauth_refresh_token"],
}
# t0303's helper_test_clean: reject every user and host the suite uses.
CLEAN = [
    ("https", "example.com", user)
    for user in (
        "store-user",
        "user1",
        "user2",
        "user-expiry",
        "user-expiry-overwrite",
        "user4",
        "user-distinct-pass",
        "user-overwrite",
        "user-erase1",
        "user-erase2",
    )
] + [
    ("https", "victim.example.com", "user"),
    ("http", "path.tld", "user"),
    ("https", "timeout.tld", "user"),
    ("https", "sso.tld", None),
]


@pytest.fixture
def git_env(tmp_path, home) -> dict:
    """The harness's world: the askpass stub, no terminal prompt, a directory outside any repo."""
    askpass = tmp_path / "askpass"
    askpass.write_text(ASKPASS)
    askpass.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    return dict(
        os.environ,
        GIT_ASKPASS=str(askpass),
        GIT_TERMINAL_PROMPT="0",
        GIT_CEILING_DIRECTORIES=str(tmp_path),
        PWD=str(work),
    )


def split_chunks(chunks: str) -> tuple:
    """lib-credential.sh's read_chunk, three times: stdin, expected stdout, expected stderr."""
    sections: list = [[]]
    for line in chunks.strip("\n").split("\n"):
        if line == "--":
            sections.append([])
        else:
            sections[-1].append(line)
    sections += [[], []]
    return tuple("".join(line + "\n" for line in section) for section in sections[:3])


def run_step(env: dict, step: Step) -> None:
    stdin, stdout, stderr = split_chunks(step.chunks)
    if GIT_VERSION >= step.needs:
        argv = ["git", "-c", "credential.helper=", "-c", "credential.helper=rexec"]
        for option in step.config:
            argv += ["-c", f"credential.{option}"]
        argv += ["credential", step.op]
    else:
        # This git would drop the attribute: send the helper what a newer git sends.
        argv = [str(BIN_DIR / "git-credential-rexec"), TO_HELPER[step.op]]
        stdout, stderr = step.helper_out, ""
    proc = subprocess.run(
        argv, input=stdin.encode(), capture_output=True, env=env, cwd=env["PWD"], timeout=60
    )
    assert proc.returncode == 0, f"{argv} failed with {proc.returncode}: {proc.stderr.decode()}"
    assert proc.stdout.decode() == stdout
    assert proc.stderr.decode() == stderr


def run_scenario(env: dict, name: str, table: dict | None = None) -> None:
    for step in (SCENARIOS if table is None else table)[name]:
        run_step(env, step)


def clean(env: dict) -> None:
    for protocol, host, user in CLEAN:
        request = f"protocol={protocol}\nhost={host}\n" + (f"username={user}\n" if user else "")
        run_step(env, reject(request))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_t0303(git_env, name):
    for prerequisite in DEPENDS.get(name, []):
        run_scenario(git_env, prerequisite)
    run_scenario(git_env, name)


def test_t0303_in_sequence(git_env, config_path):
    """The whole suite in t0303's order on one store, then helper_test_clean empties it."""
    clean(git_env)
    assert not config_path.exists()  # erasing what is not there creates nothing
    for name in SCENARIOS:
        run_scenario(git_env, name)
    clean(git_env)
    stored = json.loads((config_path.parent / "credentials.json").read_text())
    assert (stored["accounts"], stored["credentials"]) == ([], [])
    assert not config_path.exists()  # only credentials.json was ever written


def test_git_version_is_known():
    """The gate above compares versions; make sure parsing worked."""
    assert GIT_VERSION >= (2, 0)


# -- beyond t0303: expiry and ephemeral, as git's t0300/lib-credential test them ----------------

ASKED = f"""
protocol=https
host=example.com
username=user-expired
--
protocol=https
host=example.com
username=user-expired
password=askpass-password
--
{prompts("", "https://user-expired@example.com", username=False)}
"""


def test_expired_credential_is_not_returned(git_env, config_path):
    """A credential stored with an expiry that has since passed is never handed to git."""
    record = {
        "protocol": "https",
        "host": "example.com",
        "username": "user-expired",
        "password": "old",
        "password_expiry_utc": int(time.time()) + 1000,
    }
    storage(config_path.parent).update(lambda state: state.store(record, time.time()))
    run_step(
        git_env,
        fill("""
protocol=https
host=example.com
username=user-expired
--
protocol=https
host=example.com
username=user-expired
password=old
"""),
    )
    stored = config_path.parent / "credentials.json"
    data = json.loads(stored.read_text())  # ...then the expiry passes
    data["credentials"][0]["password_expiry_utc"] = int(time.time()) - 1
    stored.write_text(json.dumps(data))
    run_step(git_env, fill(ASKED))


def test_expired_credential_is_not_stored(git_env, config_path):
    """t0300 "credential_approve does not store expired password", sent as git 2.40+ would."""
    run_step(
        git_env,
        approve(
            """
protocol=https
host=example.com
username=user-expired
password=old
password_expiry_utc=1
""",
            needs=EXPIRY,
        ),
    )
    assert not config_path.parent.exists()
    run_step(git_env, fill(ASKED))


def test_ephemeral_credential_is_not_stored(git_env, config_path):
    """lib-credential.sh "does not store an ephemeral username and password" (git 2.46)."""
    run_step(
        git_env,
        approve(
            """
capability[]=authtype
protocol=https
host=example.com
username=user-expired
password=eph
ephemeral=1
""",
            needs=(2, 46),
        ),
    )
    assert not config_path.parent.exists()
    run_step(git_env, fill(ASKED))


# -- helper_test_authtype (t/lib-credential.sh, git 2.46) ----------------------------------------

AUTHTYPE = (2, 46)  # capability[], authtype, credential, ephemeral
GOT_RANDOM = """\
capability[]=authtype
authtype=Bearer
credential=random-token
protocol=https
host=git.example.com
"""
GOT_OTHER = """\
capability[]=authtype
authtype=Bearer
credential=other-token
protocol=https
host=git.example.com
username=foobar
"""
AUTHTYPE_SCENARIOS: dict = {
    "stores_authtype_and_credential": [
        approve(
            """
capability[]=authtype
authtype=Bearer
credential=random-token
protocol=https
host=git.example.com
""",
            needs=AUTHTYPE,
        )
    ],
    "gets_authtype_and_credential": [
        fill(
            f"""
capability[]=authtype
protocol=https
host=git.example.com
--
{GOT_RANDOM}--
""",
            needs=AUTHTYPE,
            helper_out=GOT_RANDOM,
        )
    ],
    "gets_authtype_and_credential_only_if_request_has_authtype_capability": [
        fill(f"""
protocol=https
host=git.example.com
--
protocol=https
host=git.example.com
username=askpass-username
password=askpass-password
--
{prompts("https://git.example.com", "https://askpass-username@git.example.com")}
""")
    ],
    "stores_authtype_and_credential_with_username": [
        approve(
            """
capability[]=authtype
authtype=Bearer
credential=other-token
protocol=https
host=git.example.com
username=foobar
""",
            needs=AUTHTYPE,
        )
    ],
    "gets_authtype_and_credential_with_username": [
        fill(
            f"""
capability[]=authtype
protocol=https
host=git.example.com
username=foobar
--
{GOT_OTHER}--
""",
            needs=AUTHTYPE,
            helper_out=GOT_OTHER,
        )
    ],
    "does_not_get_authtype_and_credential_with_different_username": [
        fill(
            f"""
capability[]=authtype
protocol=https
host=git.example.com
username=barbaz
--
protocol=https
host=git.example.com
username=barbaz
password=askpass-password
--
{prompts("", "https://barbaz@git.example.com", username=False)}
""",
            needs=AUTHTYPE,
        )
    ],
    "does_not_store_ephemeral_authtype_and_credential": [
        approve(
            """
capability[]=authtype
authtype=Bearer
credential=git2-token
protocol=https
host=git2.example.com
ephemeral=1
""",
            needs=AUTHTYPE,
        ),
        fill(
            f"""
capability[]=authtype
protocol=https
host=git2.example.com
--
protocol=https
host=git2.example.com
username=askpass-username
password=askpass-password
--
{prompts("https://git2.example.com", "https://askpass-username@git2.example.com")}
""",
            needs=AUTHTYPE,
        ),
    ],
    "does_not_store_ephemeral_username_and_password": [
        approve(
            """
capability[]=authtype
protocol=https
host=git2.example.com
user=barbaz
password=secret
ephemeral=1
""",
            needs=AUTHTYPE,
        ),
        fill(
            f"""
capability[]=authtype
protocol=https
host=git2.example.com
--
protocol=https
host=git2.example.com
username=askpass-username
password=askpass-password
--
{prompts("https://git2.example.com", "https://askpass-username@git2.example.com")}
""",
            needs=AUTHTYPE,
        ),
    ],
}
AUTHTYPE_DEPENDS = {
    "gets_authtype_and_credential": ["stores_authtype_and_credential"],
    "gets_authtype_and_credential_only_if_request_has_authtype_capability": [
        "stores_authtype_and_credential"
    ],
    "gets_authtype_and_credential_with_username": [
        "stores_authtype_and_credential",
        "stores_authtype_and_credential_with_username",
    ],
    "does_not_get_authtype_and_credential_with_different_username": [
        "stores_authtype_and_credential",
        "stores_authtype_and_credential_with_username",
    ],
}


def helper_answers(env: dict, step: Step) -> None:
    """Drive the helper itself with a fill step's stdin and compare its own answer: git
    before 2.46 drops an authtype it is sent, so through git alone an answer that carries
    one where it must not would go unseen."""
    stdin = split_chunks(step.chunks)[0]
    proc = subprocess.run(
        [str(BIN_DIR / "git-credential-rexec"), "get"],
        input=stdin.encode(),
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr.decode()) == (0, "")
    assert proc.stdout.decode() == step.helper_out


@pytest.mark.parametrize("name", list(AUTHTYPE_SCENARIOS))
def test_authtype(git_env, config_path, name):
    for prerequisite in AUTHTYPE_DEPENDS.get(name, []):
        run_scenario(git_env, prerequisite, AUTHTYPE_SCENARIOS)
    run_scenario(git_env, name, AUTHTYPE_SCENARIOS)
    for step in AUTHTYPE_SCENARIOS[name]:
        if step.op == "fill":
            helper_answers(git_env, step)
    if name.startswith("does_not_store"):
        assert not config_path.parent.exists()  # nothing was written, not even a directory


def test_authtype_in_sequence_then_erased(git_env, config_path):
    """lib-credential.sh's order on one store; then git's reject of what it was given
    removes it (a different credential erases nothing), and a host-wide reject the rest."""
    for name in AUTHTYPE_SCENARIOS:
        run_scenario(git_env, name, AUTHTYPE_SCENARIOS)
    stored = json.loads((config_path.parent / "credentials.json").read_text())["credentials"]
    assert stored == [
        {
            "protocol": "https",
            "host": "git.example.com",
            "username": "foobar",
            "authtype": "Bearer",
            "credential": "other-token",
        },
        {
            "protocol": "https",
            "host": "git.example.com",
            "authtype": "Bearer",
            "credential": "random-token",
        },
    ]
    request = "capability[]=authtype\nauthtype=Bearer\nprotocol=https\nhost=git.example.com\n"
    run_step(git_env, reject(request + "credential=not-this-one\n", needs=AUTHTYPE))
    run_scenario(git_env, "gets_authtype_and_credential_with_username", AUTHTYPE_SCENARIOS)
    run_step(git_env, reject(request + "credential=other-token\n", needs=AUTHTYPE))
    run_step(
        git_env,
        fill(
            f"""
capability[]=authtype
protocol=https
host=git.example.com
username=foobar
--
protocol=https
host=git.example.com
username=foobar
password=askpass-password
--
{prompts("", "https://foobar@git.example.com", username=False)}
""",
            needs=AUTHTYPE,
        ),
    )
    run_scenario(git_env, "gets_authtype_and_credential", AUTHTYPE_SCENARIOS)
    run_step(git_env, reject("protocol=https\nhost=git.example.com\n"))
    stored = json.loads((config_path.parent / "credentials.json").read_text())["credentials"]
    assert stored == []
