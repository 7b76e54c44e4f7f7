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

from . import process, tools
from .conf import Settings, get_settings, takes_backups, validate
from .connectors import get_connector
from .connectors.base import Connector
from .connectors.postgresql import PostgresConnector
from .exceptions import ConfigurationError, RcloneError
from .problems import problem
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


def _version_problem(connector: Connector, tool: str, server: tools.Version) -> str:
    """Why ``tool`` cannot serve this PostgreSQL server ("" when the run finds one that can)."""
    program = process.find_program(connector.program(tool))
    if program is None and not connector.db_options.tool_dir:
        return ""  # W003 says so
    try:
        tools.choose_pg_tool(connector.alias, tool, server, connector.db_options.tool_dir)
    except ConfigurationError as exc:
        return str(exc)
    return ""


def postgres_versions(connector: Connector) -> list[checks.CheckMessage]:
    """The same choice a run makes, for the dump tool (on the dump's connection) and the
    restore tool (on the alias's): an error when the run would refuse (id E071)."""
    assert isinstance(connector, PostgresConnector)
    messages: list[checks.CheckMessage] = []
    for tool, dump in ((connector.dump_tool, True), (connector.restore_tool, False)):
        found = _version_problem(connector, tool, connector.server_version(dump=dump))
        if found:
            messages.append(
                problem(
                    "E071",
                    found,
                    "See 'The right tool for each server' in docs/many-databases.md.",
                ).message()
            )
    return messages


def postgres_problems(connector: Connector) -> list[checks.CheckMessage]:
    messages = postgres_versions(connector)
    assert isinstance(connector, PostgresConnector)
    try:
        scratch = connector.staging().scratch()
    except ConfigurationError:  # a name too long to stage a restore beside: none left
        scratch = []
    with connector.cursor() as cursor:
        cursor.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
        # Not one the server is dropping now: a swap drops the copy it replaced
        # without waiting (connectors/postgresql.py).
        cursor.execute(
            "SELECT datname FROM pg_database d WHERE datname = ANY(%s) AND NOT EXISTS ("
            "SELECT 1 FROM pg_stat_activity a WHERE a.state = 'active' "
            "AND a.query ILIKE 'DROP DATABASE%%' "
            "AND strpos(a.query, chr(34) || d.datname || chr(34)) > 0) "  # the quoted name
            "ORDER BY 1",
            [scratch],
        )
        leftovers = [str(r[0]) for r in cursor.fetchall()]
    for name in leftovers:
        messages.append(
            problem(
                "W074",
                f"database {name!r} is a scratch copy that a restore of database "
                f"{connector.alias!r} left behind (a run that was killed, or a drop the "
                "server could not finish after the swap); it takes disk space until the "
                f"next restore of {connector.alias!r} drops it.",
                f"Unless a restore of {connector.alias!r} is running: "
                f"DROP DATABASE {connector.quote(name)};",
                warning=True,
            ).message()
        )
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


def mysql_versions(connector: Connector, server_text: str) -> list[checks.CheckMessage]:
    """A tool of the other flavour, or older than the server: a warning (id E071)."""
    messages: list[checks.CheckMessage] = []
    for tool in (connector.dump_tool, connector.restore_tool):
        program = process.find_program(connector.program(tool))
        if program is None:
            continue  # W003 / E091 say so
        try:
            line = tools.version_line(program)
        except ConfigurationError:
            continue
        mismatch = tools.mysql_mismatch(connector.alias, tool, line, server_text)
        if mismatch:
            messages.append(problem("E071", mismatch, warning=True).message())
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
    messages += mysql_versions(connector, server_text)
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


def check_tool_versions(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``check --database <alias>``: the tool version check alone, for those aliases
    (Django runs database checks only for the aliases named; id E071)."""
    if not databases or any(not p.warning for p in validate()):
        return []
    settings = get_settings()
    messages: list[checks.CheckMessage] = []
    for alias in databases:
        try:
            connector = get_connector(alias, settings)
            if isinstance(connector, PostgresConnector):
                messages += postgres_versions(connector)
            elif connector.vendor == "mysql":
                with connector.cursor() as cursor:
                    cursor.execute("SELECT VERSION()")
                    messages += mysql_versions(connector, str(cursor.fetchone()[0]))
        except ConfigurationError:
            continue  # W002 says so
        except Exception as exc:
            messages.append(
                problem(
                    "E072",
                    f"database {alias!r} could not be checked: {type(exc).__name__}: {exc}",
                ).message()
            )
    return messages
