"""Packaging as a packager and a user would meet it: `python -m build` makes an sdist and a
wheel that both carry the man pages and the shell completions, `twine check` accepts them,
and `pipx install` of the wheel gives working executables whose man pages man(1) finds
through pipx's own man directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import rexec_credential

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parent.parent
# Taken at import, before the autouse fixture empties HOME and the proxy variables:
# building and pipx reach PyPI with them.
ORIGINAL_ENV = dict(os.environ)
EXECUTABLES = [
    "rexec-login",
    "rexec-logout",
    "rexec-whoami",
    "rexec-credential",
    "git-credential-rexec",
]
DATA = [f"share/man/man1/{name}.1" for name in EXECUTABLES] + [
    *(f"share/bash-completion/completions/{name}" for name in EXECUTABLES),
    "share/zsh/site-functions/_rexec",
    *(f"share/fish/vendor_completions.d/{name}.fish" for name in EXECUTABLES),
]
OFFLINE = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "ProxyError",
    "No matching distribution found",
    "Network is unreachable",
)


def run(argv: list, **kw) -> subprocess.CompletedProcess:
    env = dict(ORIGINAL_ENV, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)
    env.update(kw.pop("env", {}))
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, **kw)


def succeeded(proc: subprocess.CompletedProcess) -> None:
    """Assert success; outside CI, an unreachable PyPI skips instead."""
    text = proc.stdout + proc.stderr
    if proc.returncode != 0 and not os.environ.get("CI") and any(w in text for w in OFFLINE):
        pytest.skip("PyPI is unreachable")
    assert proc.returncode == 0, text


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """An sdist and a wheel built from a clean copy of the checkout."""
    root = tmp_path_factory.mktemp("build")
    src = root / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
        ),
    )
    out = root / "dist"
    succeeded(
        run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(src)])
    )
    return out


def test_the_wheel_carries_the_man_pages_and_completions(dist):
    [wheel] = dist.glob("*.whl")
    assert wheel.name == f"rexec_credential-{rexec_credential.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    prefix = f"rexec_credential-{rexec_credential.__version__}.data/data/"
    for path in DATA:
        assert prefix + path in names, path
    assert f"rexec_credential-{rexec_credential.__version__}.dist-info/licenses/LICENSE" in names
    assert not any(name.startswith("tests/") for name in names)


def test_the_sdist_carries_them_too_with_the_tests_and_license(dist):
    [sdist] = dist.glob("*.tar.gz")
    top = f"rexec_credential-{rexec_credential.__version__}/"
    names = set(tarfile.open(sdist).getnames())
    for path in [
        "LICENSE",
        "README.md",
        "SECURITY.md",
        "CHANGELOG.md",
        "man/rexec-login.1",
        "completions/zsh/_rexec",
        "completions/bash/rexec-credential",
        "completions/fish/rexec-credential.fish",
        "tests/conftest.py",
        "docs/contract.md",
        "docs/architecture.md",
    ]:
        assert top + path in names, path


def test_twine_check_passes(dist):
    proc = run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2


def test_pipx_install_gives_working_executables_and_man_pages(dist, tmp_path, home):
    need_man = shutil.which("man")
    [wheel] = dist.glob("*.whl")
    places = {
        "PIPX_HOME": tmp_path / "pipx",
        "PIPX_BIN_DIR": tmp_path / "bin",
        "PIPX_MAN_DIR": tmp_path / "man",
    }
    env = {k: str(v) for k, v in places.items()}
    succeeded(run([sys.executable, "-m", "pipx", "install", str(wheel)], env=env))
    for name in EXECUTABLES:
        version = run([str(places["PIPX_BIN_DIR"] / name), "--version"])
        assert version.stdout == f"{name} {rexec_credential.__version__}\n", version.stderr
    got = run(
        [str(places["PIPX_BIN_DIR"] / "rexec-credential"), "get"],
        stdin=subprocess.DEVNULL,
        env={"HOME": str(home)},
    )
    assert (got.returncode, got.stdout, got.stderr) == (0, "", "")
    for name in EXECUTABLES:  # pipx links the pages into its man directory
        assert (places["PIPX_MAN_DIR"] / "man1" / f"{name}.1").exists(), name
    if need_man or os.environ.get("CI"):
        found = run(["man", "-M", str(places["PIPX_MAN_DIR"]), "-w", "rexec-logout"])
        assert found.returncode == 0, found.stderr
    venv = places["PIPX_HOME"] / "venvs" / "rexec-credential"
    for path in DATA:  # the completions stay in pipx's venv; the README says where
        assert (venv / path).is_file(), path
