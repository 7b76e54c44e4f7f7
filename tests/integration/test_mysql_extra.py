"""The ``mysql`` extra works as installed: PyMySQL, no mysqlclient, no extra lines in settings.

A project's own settings (no ``pymysql.install_as_MySQLdb()``) point Django's
MySQL backend at the real MariaDB server, in a subprocess where mysqlclient
is not installed (this virtualenv has PyMySQL only).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.settings import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = """
SECRET_KEY = "x"
USE_TZ = True
INSTALLED_APPS = {apps!r}
DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.mysql",
        "NAME": "mysql",
        "HOST": {host!r},
        "PORT": {port!r},
        "USER": {user!r},
        "PASSWORD": {password!r},
    }}
}}
DJANGO_RCLONE = {{"REMOTE": "/nonexistent"}}
"""
PROBE = (
    "from django.db import connection\n"
    "with connection.cursor() as c:\n"
    "    c.execute('SELECT VERSION()')\n"
    "    print(connection.Database.__name__, c.fetchone()[0])\n"
)


def shell(tmp_path: Path, apps: list[str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "mysql_settings.py").write_text(
        SETTINGS.format(
            apps=apps,
            host=MYSQL_HOST,
            port=MYSQL_PORT,
            user=MYSQL_USER,
            password=MYSQL_PASSWORD,
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "DJANGO_SETTINGS_MODULE": "mysql_settings",
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.mysql
def test_the_mysql_extra_connects_without_mysqlclient(tmp_path: Path) -> None:
    # The premise: no mysqlclient, so without our app Django cannot connect.
    without_app = shell(tmp_path, ["django.contrib.contenttypes"])
    assert without_app.returncode != 0
    assert "Did you install mysqlclient?" in without_app.stderr
    with_app = shell(tmp_path, ["django.contrib.contenttypes", "django_rclone_celery"])
    assert with_app.returncode == 0, with_app.stderr
    # The last line: Django 5.2's shell first says what it imported.
    driver, version = with_app.stdout.strip().splitlines()[-1].split(maxsplit=1)
    assert driver == "pymysql"
    assert "MariaDB" in version or version[0].isdigit()
