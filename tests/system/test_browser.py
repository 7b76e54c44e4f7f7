"""The admin in a real browser: Debian's Chromium, headless, driven by Playwright.

The example project is served on loopback by ``runserver`` with a real Celery
worker (the Procfile's), on its embedded defaults. A superuser starts a backup
from the admin and watches the run reach "succeeded" with its size; a staff
user who may back up but not restore finds restore refused. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_project"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _manage(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _worker_argv() -> list[str]:
    """The Procfile's worker line, run with this interpreter."""
    for line in (EXAMPLE / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "worker":
            argv = shlex.split(command)
            assert argv[0] == "celery"
            return [sys.executable, "-m", "celery", *argv[1:]]
    raise AssertionError("no worker in the Procfile")


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=EXAMPLE, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(log: Path, marker: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.2)
    raise AssertionError(f"{marker!r} not in {log}:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var = tmp_path_factory.mktemp("bookshop-browser")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "BACKUP_REMOTE", "DJANGO_SETTINGS_MODULE")
    }
    env.update(BOOKSHOP_VAR=str(var), DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    _manage(env, "migrate", "--noinput")
    _manage(env, "shell", "-c", "from catalog.seed import seed; seed()")
    _manage(env, "createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com")
    _manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import Permission, User;"
        f"u = User.objects.create_user('clerk', password={PASSWORD!r}, is_staff=True);"
        "u.user_permissions.set(Permission.objects.filter("
        "content_type__app_label='django_rclone_celery', "
        "codename__in=['view_backuprun', 'run_backup']))",
    )
    port = _free_port()
    worker = _start(_worker_argv(), env, var / "worker.log")
    web = _start(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        env,
        var / "web.log",
    )
    try:
        _wait_for(var / "worker.log", "ready.", worker)
        _wait_for(var / "web.log", "Quit the server", web)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(web)
        _stop(worker)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _login(browser: object, site: str, username: str) -> object:
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{site}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{site}/admin/")
    return page


RUNS = "/admin/django_rclone_celery/backuprun/"


def test_back_up_now_from_the_admin_reaches_succeeded_with_its_size(
    site: str, browser: object
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = _login(browser, site, "admin")
    page.goto(site + RUNS)
    page.click("text=Start a run")
    page.select_option("#id_database", "default")
    page.click("button[value=db_backup]")
    page.wait_for_url(f"{site}{RUNS}*")
    message = page.inner_text("ul.messagelist")
    assert "task" in message.lower(), message

    deadline = time.monotonic() + 120
    row = page.locator("#result_list tbody tr").first
    while time.monotonic() < deadline:
        page.goto(site + RUNS)
        row = page.locator("#result_list tbody tr").first
        status = row.locator("td.field-status").inner_text().strip().lower()
        if status in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    page.screenshot(path=str(ARTIFACTS / "admin-backup-succeeded.png"), full_page=True)
    operation = row.locator("td.field-operation").inner_text()
    assert re.sub(r"[^a-z]", "", operation.lower()) in ("dbbackup", "databasebackup"), operation
    assert row.locator("td.field-database").inner_text().strip() == "default"
    assert row.locator("td.field-status").inner_text().strip().lower() == "succeeded"
    size = row.locator("td.field-size_display").inner_text().strip()
    assert size.endswith(("KB", "MB")), size
    page.close()


def test_staff_without_restore_permission_is_refused(site: str, browser: object) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = _login(browser, site, "clerk")
    page.goto(f"{site}{RUNS}start/")
    # The clerk may back up, so the page opens, but it offers no restore.
    assert page.locator("button[value=db_backup]").count() == 1
    assert page.locator("button[value=db_restore]").count() == 0
    response = page.goto(f"{site}{RUNS}restore/?database=default")
    assert response is not None
    assert response.status == 403
    page.screenshot(path=str(ARTIFACTS / "admin-restore-refused.png"), full_page=True)
    # Posting the start form with a forged "restore" button is refused as well.
    page.goto(f"{site}{RUNS}start/")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.evaluate(
            """() => {
                const form = document.querySelector('#start-run-form');
                const b = document.createElement('button');
                b.name = 'run'; b.value = 'db_restore'; form.appendChild(b); b.click();
            }"""
        )
    assert posted.value.status == 403
    page.close()
