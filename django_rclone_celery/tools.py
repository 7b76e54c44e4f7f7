"""The right tool for each server: compare a tool's version with its server's before a run.

``pg_dump`` refuses a server of a newer major ("aborting because of server
version mismatch"), half-way into a run. Before a PostgreSQL dump or
restore, the server's major is read and each tool's is compared with it;
an older tool is replaced by a matching one installed side by side (the
Debian/Ubuntu layout ``/usr/lib/postgresql/<N>/bin``), or the run is refused
in one line naming both versions and the package to install. An alias's
``TOOL_DIR`` is taken as given: an older tool there is refused, never
swapped. MariaDB/MySQL: a tool of the other flavour is detected and said.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from . import process
from .exceptions import ConfigurationError, DjangoRcloneCeleryError
from .process import Command

logger = logging.getLogger(__name__)

Version = tuple[int, ...]
# Where Debian and Ubuntu install each client major side by side.
DEBIAN_ROOT = Path("/usr/lib/postgresql")
_PG_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")
_MY_VERSION = (
    re.compile(r"(?:Distrib|from) (\d+)\.(\d+)"),
    re.compile(r"Ver (\d+)\.(\d+)\.\d+(?! Distrib)"),
)
# (path, the file it is, mtime, size) -> its --version line. The path too: Debian's
# pg_dump, pg_restore and psql are one file (pg_wrapper) that answers by its name.
_seen: dict[tuple[str, str, int, int], str] = {}
_asking = threading.Lock()


def shown(version: Version) -> str:
    return ".".join(map(str, version))


def version_line(path: str) -> str:
    """The first line of ``path --version`` (cached per file and modification)."""
    try:
        stat = os.stat(path)
    except OSError:
        raise ConfigurationError(f"{path} does not exist") from None
    key = (os.path.abspath(path), os.path.realpath(path), int(stat.st_mtime_ns), stat.st_size)
    with _asking:  # the runs of several aliases at once ask once
        if key not in _seen:
            try:
                out = process.run(Command(argv=(path, "--version")), timeout=30).stdout
            except DjangoRcloneCeleryError as exc:
                raise ConfigurationError(f"{path} --version failed: {exc}") from None
            lines = out.decode("utf-8", "replace").strip().splitlines()
            _seen[key] = lines[0] if lines else ""
        return _seen[key]


def pg_version(text: str) -> Version | None:
    """``pg_dump (PostgreSQL) 15.4 (Debian ...)`` -> (15, 4)."""
    match = _PG_VERSION.search(text)
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def pg_major(version: Version) -> Version:
    """The major: (15,) for 15.x; (9, 6) before 10."""
    return version[:1] if version[0] >= 10 else version[:2]


def pg_server_version(number: int) -> Version:
    """``server_version_num`` as a version: 160004 -> (16, 4); 90624 -> (9, 6, 24)."""
    if number >= 100000:
        return (number // 10000, number % 10000)
    return (number // 10000, number // 100 % 100, number % 100)


@dataclass(frozen=True)
class Choice:
    """The tool a run uses (``path``) and what was compared to pick it."""

    tool: str
    path: str
    version: Version
    server: Version


def _program(tool: str, tool_dir: str) -> str | None:
    if tool_dir:
        path = os.path.join(tool_dir, tool)
        return path if os.access(path, os.X_OK) else None
    return process.find_program(tool)


def unwrapped(program: str, tool: str, version: Version) -> str | None:
    """The client Debian's ``pg_wrapper`` runs as ``program``, or None if it is not the wrapper.

    The wrapper is a Perl script that picks a client major and runs it: a
    second start (20-30 ms, more on a busy machine) before every dump and
    restore. Its own ``--version`` made the pick under the same environment
    (``PGCLUSTER``, ``~/.postgresqlrc``), so a run calls the client it named.
    """
    if os.path.basename(os.path.realpath(program)) != "pg_wrapper":
        return None
    client = DEBIAN_ROOT / shown(pg_major(version)) / "bin" / tool
    return str(client) if os.access(client, os.X_OK) else None


def warm(tool: str, tool_dir: str = "") -> None:
    """Ask ``tool --version`` ahead, beside the server query (the answer is cached)."""
    program = _program(tool, tool_dir)
    if program is not None:
        with contextlib.suppress(ConfigurationError):  # choose_pg_tool() says so
            version_line(program)


def _side_by_side(tool: str, server_major: Version) -> list[str]:
    """``/usr/lib/postgresql/<N>/bin/<tool>`` of every major N not older than the server,
    the closest first (a newer pg_dump reads older servers; the same major is best)."""
    found: list[tuple[Version, str]] = []
    try:
        entries = list(DEBIAN_ROOT.iterdir())
    except OSError:
        return []
    for entry in entries:
        parts = entry.name.split(".")
        if not all(part.isdigit() for part in parts):
            continue
        major = tuple(int(part) for part in parts)
        path = entry / "bin" / tool
        if major >= server_major and os.access(path, os.X_OK):
            found.append((major, str(path)))
    return [path for _, path in sorted(found)]


def choose_pg_tool(alias: str, tool: str, server: Version, tool_dir: str = "") -> Choice:
    """The ``tool`` to run against a PostgreSQL server of version ``server``.

    Raises :class:`ConfigurationError` in one line when none fits.
    """
    server_major = pg_major(server)
    where = f"TOOL_DIR {tool_dir}" if tool_dir else "PATH"
    program = _program(tool, tool_dir)
    if program is None:
        raise ConfigurationError(f"database {alias!r}: {where} has no {tool}")
    version = pg_version(version_line(program))
    if version is None:
        raise ConfigurationError(
            f"database {alias!r}: {program} --version does not say a PostgreSQL version"
        )
    if pg_major(version) >= server_major:
        if tool_dir:
            return Choice(tool, program, version, server)
        # A tool found on PATH keeps its plain name in argv, unless it is the wrapper.
        return Choice(tool, unwrapped(program, tool, version) or tool, version, server)
    if not tool_dir:
        for candidate in _side_by_side(tool, server_major):
            found = pg_version(version_line(candidate))
            if found is not None and pg_major(found) >= server_major:
                logger.info(
                    "%s %s on PATH is older than server %s of %r: using %s",
                    tool,
                    shown(version),
                    shown(server),
                    alias,
                    candidate,
                )
                return Choice(tool, candidate, found, server)
    package = f"postgresql-client-{shown(server_major)}"
    place = f"point DATABASE_OPTIONS[{alias!r}]['TOOL_DIR'] at its bin directory"
    raise ConfigurationError(
        f"{tool} {shown(version)} ({program}) is older than the PostgreSQL {shown(server)} "
        f"server of database {alias!r}: install {package} ({DEBIAN_ROOT}/"
        f"{shown(server_major)}/bin on Debian/Ubuntu) or {place}"
    )


def mysql_flavour(text: str) -> str:
    return "MariaDB" if "mariadb" in text.lower() else "MySQL"


def mysql_version(text: str) -> Version | None:
    for pattern in _MY_VERSION:
        match = pattern.search(text)
        if match:
            return tuple(int(part) for part in match.groups())
    return None


def mysql_mismatch(alias: str, tool: str, tool_line: str, server_text: str) -> str:
    """One line saying how a MariaDB/MySQL tool and its server disagree ("" if they do not)."""
    tool_flavour, server_flavour = mysql_flavour(tool_line), mysql_flavour(server_text)
    tool_version = mysql_version(tool_line)
    server_version = mysql_version(f"from {server_text}")
    if tool_flavour != server_flavour:
        return (
            f"{tool} is {tool_flavour}'s but database {alias!r} is a {server_flavour} server "
            f"({server_text}): install the {server_flavour} client "
            f"({'mariadb-client' if server_flavour == 'MariaDB' else 'mysql-client'}) "
            "or point its TOOL_DIR at one"
        )
    if tool_version and server_version and tool_version < server_version:
        return (
            f"{tool} {shown(tool_version)} is older than the {server_flavour} "
            f"{shown(server_version)} server of database {alias!r}: newer features may be missed"
        )
    return ""
