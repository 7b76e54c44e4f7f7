"""The first hour, from a fresh virtualenv: install, the demo, the getting-started code, a worker.

A new virtualenv gets the package with only its documented extra
(``[postgres]``) and none of the test tools; it runs the clone's demo as the
page shows it (``python example_project/manage.py demo``) on a PATH holding only
that virtualenv, so no sqlite3 tool; then a new project is written from the
code blocks of ``docs/getting-started.md`` exactly as they appear there (only
the Redis address is moved to this test's own, and ``REMOTE`` to the crypt
remote of ``docs/storage.md``, configured by its own ``export`` lines, over
moto's S3 server); a real ``celery worker`` from that virtualenv, on a
throwaway Redis, runs a backup handed to it with ``dbbackup --wait``, then the
nightly schedule's task as beat would send it. pip reuses its cache; the whole
test takes a minute or two, most of it ``pip install`` and the demo.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.remotes import MotoS3
from tests.helpers.workers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
GETTING_STARTED = ROOT / "docs" / "getting-started.md"
STORAGE = ROOT / "docs" / "storage.md"
BUCKET = "first-hour"
FIRST_HOUR_DB = 7  # broker; 8 is the result backend (tests/helpers/workers.py lists the others)
BLOCK = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```$', re.S | re.M)

BASE_SETTINGS = """\
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET_KEY = "first-hour"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
MEDIA_ROOT = BASE_DIR / "media"
"""
MANAGE = """\
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""


def stored_objects(s3: object) -> list[str]:
    found = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])  # type: ignore[attr-defined]
    return sorted(obj["Key"] for obj in found)


# What beat does for a due schedule: send its task with its kwargs and headers.
SEND_SCHEDULE = """\
import json
from django_celery_beat.models import PeriodicTask
from mysite import celery_app
row = PeriodicTask.objects.get(name__endswith="nightly database backup")
headers = json.loads(row.headers or "{}")
sent = celery_app.send_task(row.task, kwargs=json.loads(row.kwargs), headers=headers)
result = sent.get(timeout=120)
print(result["status"], result["name"])
"""


def doc_blocks(page: Path = GETTING_STARTED) -> list[tuple[str, str, str]]:
    """(language, title, code) of every fenced block of a docs page."""
    return [(m[1], m[2] or "", m[3]) for m in BLOCK.finditer(page.read_text())]


def crypt_remote_env() -> dict[str, str]:
    """The crypt recipe's ``export RCLONE_CONFIG_VAULT_*`` lines, wrapping the S3 bucket."""
    [recipe] = [c for _, _, c in doc_blocks(STORAGE) if "RCLONE_CONFIG_VAULT_TYPE" in c]
    exported = {}
    for line in recipe.splitlines():
        argv = shlex.split(line)
        if argv[:1] == ["export"] and argv[1].startswith("RCLONE_CONFIG_VAULT_"):
            name, _, value = argv[1].partition("=")
            exported[name] = value.replace("/srv/backups/encrypted", f"moto:{BUCKET}/encrypted")
    assert exported["RCLONE_CONFIG_VAULT_REMOTE"] == f"moto:{BUCKET}/encrypted"
    return exported


@pytest.mark.slow
def test_first_hour_from_a_fresh_virtualenv(
    tmp_path: Path, redis_server: RedisServer, moto_s3: MotoS3
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")
        and not k.startswith(("DRC_", "RCLONE_CONFIG_VAULT"))
    }
    env.update(crypt_remote_env())  # and moto_s3's RCLONE_CONFIG_MOTO_*, from os.environ
    [demo_line] = [
        c.strip() for lang, _, c in doc_blocks() if lang == "bash" and "manage.py demo" in c
    ]
    assert demo_line == "python example_project/manage.py demo"
    s3 = moto_s3.client()
    s3.create_bucket(Bucket=BUCKET)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python, celery = str(venv / "bin" / "python"), str(venv / "bin" / "celery")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{ROOT}[postgres]"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr
    for tool in ("pytest", "moto", "psutil"):  # nothing the tests install came along
        probe = subprocess.run([python, "-c", f"import {tool}"], env=env, capture_output=True)
        assert probe.returncode != 0, f"{tool} is installed in the fresh virtualenv"

    # First, the demo of the clone, as the page runs it, on a PATH with the fresh
    # virtualenv and nothing else: no sqlite3 tool, no system Python packages.
    bare_path = str(venv / "bin")
    assert shutil.which("sqlite3", path=bare_path) is None
    demo = subprocess.run(
        [python, "example_project/manage.py", *shlex.split(demo_line)[2:], "--timeout", "180"],
        cwd=ROOT,
        env={**env, "PATH": bare_path, "BOOKSHOP_VAR": str(tmp_path / "demo")},
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "database: sqlite3" in demo.stdout
    assert "every row and every media file is back, byte for byte" in demo.stdout
    assert demo.stdout.rstrip().endswith("Demo finished: every step succeeded.")

    # The project, from the page's code blocks.
    project = tmp_path / "project"
    (project / "mysite").mkdir(parents=True)
    replace = {
        "/srv/backups": "vault:mysite",
        "redis://127.0.0.1:6379/0": redis_server.url(FIRST_HOUR_DB),
        "redis://127.0.0.1:6379/1": redis_server.url(FIRST_HOUR_DB + 1),
    }

    def literal(code: str) -> str:
        for old, new in replace.items():
            code = code.replace(old, new)
        return code

    blocks = doc_blocks()
    settings = [code for lang, title, code in blocks if title == "mysite/settings.py"]
    assert len(settings) == 3  # the apps and REMOTE, Celery, the schedules
    (project / "mysite" / "settings.py").write_text(
        BASE_SETTINGS + "".join(literal(code) for code in settings)
    )
    for name in ("celery.py", "__init__.py"):
        [code] = [code for lang, title, code in blocks if title == f"mysite/{name}"]
        (project / "mysite" / name).write_text(literal(code))
    (project / "manage.py").write_text(MANAGE)
    [commands] = [c for lang, _, c in blocks if lang == "bash" and "celery -A mysite worker" in c]
    worker_line, backup_line = commands.strip().splitlines()

    def manage(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, "manage.py", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    migrate = manage("migrate", "-v", "0")
    assert migrate.returncode == 0, migrate.stderr
    for client_db in (FIRST_HOUR_DB, FIRST_HOUR_DB + 1):
        redis_server.client(client_db).flushdb()
    worker = subprocess.Popen(
        [celery, *shlex.split(worker_line)[1:], "--without-gossip", "--without-mingle"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, stopped as one
    )
    try:
        argv = shlex.split(backup_line)
        assert argv[:2] == ["python", "manage.py"]
        backup = manage(*argv[2:], "--timeout", "240")
        assert backup.returncode == 0, backup.stdout + backup.stderr
        assert "succeeded" in backup.stdout
        assert "Traceback" not in backup.stderr
        first = stored_objects(s3)
        assert len(first) == 2, first  # the backup and its manifest, names encrypted
        assert not any("default" in key for key in first)

        scheduled = manage("shell", "-c", SEND_SCHEDULE)
        assert scheduled.returncode == 0, scheduled.stderr
        status, name = scheduled.stdout.strip().splitlines()[-1].split()
        assert status == "succeeded"
        assert len(stored_objects(s3)) == 4
        listed = manage("listbackups")
        assert listed.returncode == 0, listed.stderr
        assert name in listed.stdout  # read back through the crypt remote
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
