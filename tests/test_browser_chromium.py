"""End to end in a real headless Chromium (Playwright driving Debian's chromium).

The installed rexec-login runs as a subprocess; BROWSER names a tiny script, so the
command's own browser opening (webbrowser honouring $BROWSER) hands the login URL to the
test, whose Chromium signs in on the stand-in, authorizes, and follows the redirect to
the loopback callback. Skipped only when Chromium or Playwright is missing outside CI;
in CI (CI set) a missing browser is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time

import pytest
from conftest import BIN_DIR, run_bin

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]


def _chromium() -> str:
    """The Chromium executable and Playwright, or skip (outside CI) / fail (in CI)."""
    path = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
    missing = None if path else "chromium (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = missing or "playwright (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is required in CI; this test must not skip there")
        pytest.skip(f"{missing} is not installed")
    return path


@pytest.fixture(scope="module")
def playwright():
    """(Playwright, the Chromium executable): one Playwright per module (it cannot nest)."""
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p, path


@pytest.fixture(scope="module")
def chromium(playwright):
    p, path = playwright
    browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture
def rexec_login(tmp_path, standin):
    """Start the installed rexec-login with BROWSER set to a script that writes the URL down;
    returns (process, the URL it asked to open)."""
    url_file = tmp_path / "opened-url"
    script = tmp_path / "browser"
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$1" > {shlex.quote(str(url_file))}.tmp\n'
        f"mv {shlex.quote(str(url_file))}.tmp {shlex.quote(str(url_file))}\n"
    )
    script.chmod(0o755)
    env = dict(os.environ, BROWSER=f"{shlex.quote(str(script))} %s")
    proc = subprocess.Popen(
        [str(BIN_DIR / "rexec-login"), "--host", standin.url, "--port", "0", "--timeout", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not url_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"rexec-login opened no browser: exit {proc.returncode}, {out!r} {err!r}")
        time.sleep(0.05)
    try:
        yield proc, url_file.read_text().strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def sign_in_and_authorize(page, url: str) -> None:
    """What a person does on the stand-in's pages."""
    page.goto(url)
    page.fill("input[name=username]", "johndoe")
    page.fill("input[name=password]", "hunter2")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Authorize CLI access").click()
    page.wait_for_load_state()


def test_browser_login_in_real_chromium_then_whoami(page, rexec_login, standin, config_path):
    """The browser hands over its own session; a device token is stored; after logout
    the device token is refused and the browser is still signed in."""
    proc, url = rexec_login
    assert url.startswith(standin.url + "/cli-login?callback=http%3A%2F%2F127.0.0.1%3A")
    sign_in_and_authorize(page, url)
    page.get_by_text("Login Successful!").wait_for(timeout=15000)
    assert page.url.startswith("http://127.0.0.1:") and "/callback/" in page.url
    # The page's script (allowed by its CSP hash) drops ?token= from address bar and history.
    page.wait_for_function("!location.href.includes('token=')", timeout=15000)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (out, err)
    assert "Opening browser for login...\n" in out and url + "\n" in out
    assert "✓ Successfully logged in as johndoe (johndoe@example.com)\nDevice token '" in out
    token = json.loads(config_path.read_text())["token"]
    assert token not in out + err
    [session_jwt] = standin.web_session_jwts("johndoe")  # the browser's own session
    assert token.startswith("rexec_") and standin.api_token_id(token)
    assert not any(session_jwt in p.read_text() for p in config_path.parent.iterdir())
    whoami = run_bin("rexec-whoami")
    assert whoami.code == 0, whoami
    assert "Username: johndoe" in whoami.out and f"Host:     {standin.url}" in whoami.out
    assert "Token:    device token 'rexec-credential on " in whoami.out
    logout = run_bin("rexec-logout")
    assert logout.code == 0 and logout.err == "", logout
    env = dict(os.environ, REXEC_HOST=standin.url)
    assert run_bin("rexec-whoami", env={**env, "REXEC_TOKEN": token}).code == 1
    assert run_bin("rexec-whoami", env={**env, "REXEC_TOKEN": session_jwt}).code == 0
    # The same Chromium is still signed in: the login page offers to authorize at once.
    page.goto(url)
    page.get_by_role("button", name="Authorize CLI access").wait_for(timeout=15000)
    assert "Signed in as johndoe" in page.content()


def test_rejected_token_shows_the_failure_page_in_real_chromium(
    page, rexec_login, standin, config_path
):
    standin.cli_login_rejected = True  # the service issues a JWT its own API refuses
    proc, url = rexec_login
    sign_in_and_authorize(page, url)
    page.get_by_text("Login Failed").wait_for(timeout=15000)
    assert "token signature is invalid" in page.content()
    assert "Login Successful" not in page.content()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err == "Invalid token: token signature is invalid\n"
    assert not config_path.exists()


def history_urls(profile_dir) -> list:
    """Every address in a closed Chromium profile's saved history (its `History` database)."""
    import sqlite3

    database = profile_dir / "Default" / "History"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute("SELECT url FROM urls")]
    finally:
        connection.close()


def test_what_chromium_keeps_in_its_saved_history_and_what_logout_leaves(
    playwright, rexec_login, standin, config_path, tmp_path
):
    """The facts SECURITY.md states: the callback address with ?token=<JWT> stays in the
    History database (replaceState changes only the address bar and adds a second entry),
    and so does the login page's address, which names the one-time callback path. That
    JWT is the browser's own session, never stored by rexec-login: rexec-logout leaves it
    (the browser stays signed in) and revokes the device token; ending the session is
    signing out of the web app."""
    p, path = playwright
    proc, url = rexec_login
    profile = tmp_path / "profile"
    context = p.chromium.launch_persistent_context(
        str(profile), executable_path=path, args=CHROMIUM_ARGS, headless=True
    )
    try:
        page = context.new_page()
        sign_in_and_authorize(page, url)
        page.get_by_text("Login Successful!").wait_for(timeout=15000)
        assert "token=" not in page.evaluate("location.href")  # the address bar
    finally:
        context.close()  # writes the History database out
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (out, err)
    device = json.loads(config_path.read_text())["token"]
    [session_jwt] = standin.web_session_jwts("johndoe")
    urls = history_urls(profile)
    callback_path = url.split("callback%2F")[1]
    assert not any(device in u for u in urls)  # the device token never crossed the browser
    with_token = [u for u in urls if session_jwt in u]
    assert len(with_token) == 1 and with_token[0].endswith("?token=" + session_jwt)
    assert f"/callback/{callback_path}?token=" in with_token[0]
    assert any(u.endswith(f"/callback/{callback_path}") for u in urls)  # replaceState's entry
    assert url in urls  # the login page's address, nonce included
    # The history holds the browser's session, which rexec-logout leaves alone; the
    # device token, the only token on disk, stops working.
    env = dict(os.environ, REXEC_HOST=standin.url)
    logout = run_bin("rexec-logout")
    assert (logout.code, logout.err) == (0, "")
    refused = run_bin("rexec-whoami", env={**env, "REXEC_TOKEN": device})
    assert refused.code == 1 and "invalid token" in refused.err.lower(), refused
    assert run_bin("rexec-whoami", env={**env, "REXEC_TOKEN": session_jwt}).code == 0
