"""Preflight: ``manage.py check --deploy`` finds what would otherwise fail at the first run.

These checks touch the network (the remote, each database server), so they
are deployment checks: Django runs them only when ``--deploy`` is given,
never before ``migrate`` or a backup. Ids ``django_rclone_celery.E070``-``E073``:

* the remote exists and answers (a typo in ``REMOTE`` fails here, not after
  a whole dump);
* each database's dump tool is not older than its server (``pg_dump`` refuses
  a newer server; an older ``mysqldump`` may miss newer features);
* the database user can create the staged copy a restore loads into
  (PostgreSQL: ``CREATEDB``; MariaDB/MySQL: ``CREATE`` and ``DROP`` on
  ``<name>__temp``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.core import checks
from django.db import connections

from . import process
from .conf import Settings, get_settings, takes_backups, validate
from .connectors import get_connector
from .connectors.base import Connector
from .exceptions import ConfigurationError, DjangoRcloneCeleryError, RcloneError
from .problems import problem
from .process import Command
from .rclone import Rclone

REMOTE_TIMEOUT = 60.0  # seconds for one listing of the remote
# rclone retries a failing request 10 times by default: one is enough to know.
REMOTE_FLAGS = ("--low-level-retries", "1", "--contimeout", "15s", "--max-depth", "1")
STAGED_SUFFIX = "__temp"  # as PostgresStaging and MysqlStaging name it

Version = tuple[int, ...]


def check_preflight(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not takes_backups():
        return [
            problem(
                "E073",
                "DJANGO_RCLONE['REMOTE'] is not set: this deployment takes no backups.",
                "Set it to an rclone path, or leave --deploy out where no backups are taken.",
            ).message()
        ]
    if any(not p.warning for p in validate()):
        return []  # the settings check reports those
    settings = get_settings()
    messages = remote_problems(settings)
    for alias in connections.settings:
        try:
            connector = get_connector(alias, settings)
        except ConfigurationError:
            continue  # W002 says so
        vendor = connections[alias].vendor
        for probe in PROBES.get(vendor, ()):
            try:
                messages.extend(probe(connector))
            except Exception as exc:  # a server that does not answer is a finding too
                messages.append(
                    problem(
                        "E072",
                        f"database {alias!r} could not be checked: {type(exc).__name__}: {exc}",
                        "Check that the server runs and the settings' credentials work.",
                    ).message()
                )
    return messages


def remote_problems(settings: Settings) -> list[checks.CheckMessage]:
    """The remote answers a listing; a directory not created yet is fine."""
    rclone = Rclone(settings)
    try:
        process.run(
            rclone.command("lsf", *REMOTE_FLAGS, settings.remote),
            timeout=REMOTE_TIMEOUT,
            error=RcloneError,
        )
    except RcloneError as exc:
        if exc.not_found or "directory not found" in exc.stderr:
            return []  # the first backup creates it
        return [
            problem(
                "E070",
                f"the remote {settings.remote!r} did not answer: {_last_line(exc.stderr)}",
                "Check the remote's name against `rclone listremotes` (with RCLONE_CONFIG), "
                "its credentials and the network.",
            ).message()
        ]
    return []


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def parse_version(text: str, *patterns: str) -> Version | None:
    """The first version the patterns find in ``text``, as a tuple of ints."""
    for pattern in patterns:
        match = re.search(pattern, text)
        if match:
            return tuple(int(part) for part in match.groups() if part is not None)
    return None


def _tool_output(tool: str) -> str | None:
    if process.find_program(tool) is None:
        return None  # W003 says so
    try:
        out = process.run(Command(argv=(tool, "--version")), timeout=30).stdout
    except DjangoRcloneCeleryError:
        return None
    return out.decode("utf-8", "replace")


def _older(
    connector: Connector, tool_version: Version, server_version: Version, *, error: bool
) -> list[checks.CheckMessage]:
    if tool_version >= server_version:
        return []
    shown_tool = ".".join(map(str, tool_version))
    shown_server = ".".join(map(str, server_version))
    return [
        problem(
            "E071",
            f"{connector.dump_tool} {shown_tool} is older than the server of database "
            f"{connector.alias!r} ({shown_server}).",
            f"Install the client tools of version {shown_server} or newer on this host "
            "(the one that runs the worker).",
            warning=not error,
        ).message()
    ]


def postgres_problems(connector: Connector) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    with connector.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version_num')::int")
        number = int(cursor.fetchone()[0])
        cursor.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
    # server_version_num: 160004 is 16.4; 90624 is 9.6.24.
    server = (number // 10000,) if number >= 100000 else (number // 10000, number // 100 % 100)
    output = _tool_output(connector.dump_tool)
    tool = parse_version(output or "", r"\(PostgreSQL\) (\d+)(?:\.(\d+))?", r"(\d+)(?:\.(\d+))?")
    if tool is not None:
        messages += _older(connector, tool[: len(server)], server, error=True)
    if not (row and row[0]):
        messages.append(
            problem(
                "E072",
                f"the user {connector.user!r} of database {connector.alias!r} cannot create "
                f"databases, so a restore cannot stage its copy ({connector.name}{STAGED_SUFFIX}).",
                f"ALTER ROLE {connector.user} CREATEDB;",
            ).message()
        )
    return messages


def mysql_problems(connector: Connector) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    staged = f"{connector.name}{STAGED_SUFFIX}"
    with connector.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        server_text = str(cursor.fetchone()[0])
        # The current account's privileges, global and per schema pattern (a
        # grant's schema is a LIKE pattern, as MariaDB matches it).
        grantee = (
            "CONCAT(\"'\", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", "
            "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")"
        )
        cursor.execute(
            f"SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "
            f"WHERE GRANTEE = {grantee} UNION SELECT PRIVILEGE_TYPE FROM "
            f"information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = {grantee} "
            "AND %s LIKE TABLE_SCHEMA",
            [staged],
        )
        rights = {str(row[0]).upper() for row in cursor.fetchall()}
    server = parse_version(server_text, r"^(\d+)\.(\d+)")
    output = _tool_output(connector.dump_tool) or ""
    tool = parse_version(
        output, r"(?:Distrib|from) (\d+)\.(\d+)", r"Ver (\d+)\.(\d+)\.\d+(?! Distrib)"
    )
    if server is not None and tool is not None:
        messages += _older(connector, tool, server, error=False)
    missing = sorted({"CREATE", "DROP"} - rights)
    if missing:
        messages.append(
            problem(
                "E072",
                f"the user {connector.user!r} of database {connector.alias!r} lacks "
                f"{' and '.join(missing)} on {staged!r}, where a restore stages its copy.",
                f"GRANT ALL PRIVILEGES ON `{staged}`.* TO <user>; (and on the live database)",
            ).message()
        )
    return messages


# Django's connection vendor -> the probes for its databases.
PROBES: dict[str, tuple[Callable[[Connector], list[checks.CheckMessage]], ...]] = {
    "postgresql": (postgres_problems,),
    "mysql": (mysql_problems,),
}
