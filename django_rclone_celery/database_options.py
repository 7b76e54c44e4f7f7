"""``DJANGO_RCLONE["DATABASE_OPTIONS"]``: per-alias tool directory, extra arguments,
environment and dump connection (ids ``django_rclone_celery.E085``-``E091``).

Extra arguments are refused when they would write a file, name another
connection or database, carry a password, or take over what the connector
sets itself. Refusals name the option, never its value: the value may be a
password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEYS = ("TOOL_DIR", "DUMP_ARGS", "RESTORE_ARGS", "ENV", "HOST", "PORT", "USER", "PASSWORD")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Passwords have their own key, which keeps them in a private place (see connectors).
_PASSWORD_ENV = frozenset({"PGPASSWORD", "MYSQL_PWD"})


@dataclass(frozen=True)
class Rules:
    """What a tool's extra arguments must not contain, as getopt reads them."""

    long: Mapping[str, str]  # option name -> why it is refused
    short: Mapping[str, str]  # option letter -> why
    short_with_value: frozenset[str]  # letters whose value follows in the same word


_FILE = "writes a file"
_CONNECTION = "names another connection or database"
_PASSWORD = "carries a password; use PASSWORD"  # noqa: S105 - a reason, not a secret
_OWN = "is set by the connector"
_PG_CONN = {"dbname": _CONNECTION, "host": _CONNECTION, "port": _CONNECTION}
_PG_CONN |= {"username": _CONNECTION, "password": _PASSWORD, "format": _OWN, "jobs": _OWN}
_PG_SHORT = {"d": _CONNECTION, "h": _CONNECTION, "p": _CONNECTION, "U": _CONNECTION}
_PG_SHORT |= {"W": _PASSWORD, "F": _OWN, "j": _OWN}
_MY_CONN = {
    "host": _CONNECTION,
    "port": _CONNECTION,
    "socket": _CONNECTION,
    "user": _CONNECTION,
    "protocol": _CONNECTION,
    "password": _PASSWORD,
    "defaults-file": _CONNECTION,
    "defaults-extra-file": _CONNECTION,
    "defaults-group-suffix": _CONNECTION,
    "login-path": _CONNECTION,
    "no-defaults": _CONNECTION,
    "print-defaults": _OWN,
}
_MY_SHORT = {"h": _CONNECTION, "P": _CONNECTION, "S": _CONNECTION, "u": _CONNECTION}
_MY_SHORT |= {"p": _PASSWORD}

# (vendor, "DUMP_ARGS" / "RESTORE_ARGS") -> the rules of that tool.
RULES: dict[tuple[str, str], Rules] = {
    ("postgresql", "DUMP_ARGS"): Rules(
        long={**_PG_CONN, "file": _FILE, "snapshot": _OWN},
        short={**_PG_SHORT, "f": _FILE},
        short_with_value=frozenset("dfFjnNtTZEhpUSe"),
    ),
    ("postgresql", "RESTORE_ARGS"): Rules(
        # --create would make pg_restore create (and --clean drop) the live database.
        long={**_PG_CONN, "file": _FILE, "list": _OWN, "use-list": _FILE, "create": _CONNECTION},
        short={**_PG_SHORT, "f": _FILE, "l": _OWN, "L": _FILE, "C": _CONNECTION},
        short_with_value=frozenset("dfFjnNtTILhpUSPe"),
    ),
    ("mysql", "DUMP_ARGS"): Rules(
        long={
            **_MY_CONN,
            "result-file": _FILE,
            "tab": _FILE,
            "log-error": _FILE,
            "databases": _CONNECTION,
            "all-databases": _CONNECTION,
        },
        short={**_MY_SHORT, "r": _FILE, "T": _FILE, "B": _CONNECTION, "A": _CONNECTION},
        short_with_value=frozenset("hPSurTwp"),
    ),
    ("mysql", "RESTORE_ARGS"): Rules(
        long={
            **_MY_CONN,
            "tee": _FILE,
            "pager": _FILE,
            "database": _CONNECTION,
            "execute": _OWN,
        },
        short={**_MY_SHORT, "D": _CONNECTION, "e": _OWN},
        short_with_value=frozenset("hPSuDep"),
    ),
}

# The tools each vendor's TOOL_DIR must hold.
TOOLS = {"postgresql": ("pg_dump", "pg_restore"), "mysql": ("mysqldump", "mysql")}


@dataclass(frozen=True)
class DatabaseOptions:
    """One alias's options; empty ones change nothing."""

    tool_dir: str = ""
    dump_args: tuple[str, ...] = ()
    restore_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = ""
    port: str = ""
    user: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> DatabaseOptions:
        return cls(
            tool_dir=str(raw.get("TOOL_DIR") or ""),
            dump_args=tuple(raw.get("DUMP_ARGS") or ()),
            restore_args=tuple(raw.get("RESTORE_ARGS") or ()),
            env=dict(raw.get("ENV") or {}),
            host=str(raw.get("HOST") or ""),
            port=str(raw.get("PORT") or ""),
            user=str(raw.get("USER") or ""),
            password=str(raw.get("PASSWORD") or ""),
        )

    def dump_connection(self, settings_dict: Mapping[str, Any]) -> dict[str, Any]:
        """The alias's connection settings with this dump's HOST/PORT/USER/PASSWORD."""
        merged = dict(settings_dict)
        for key, value in (
            ("HOST", self.host),
            ("PORT", self.port),
            ("USER", self.user),
            ("PASSWORD", self.password),
        ):
            if value:
                merged[key] = value
        return merged


def refusal(arg: str, rules: Rules) -> tuple[str, str] | None:
    """(the option as shown, why) if ``arg`` is refused; None if it may pass.

    Long options match by prefix, as getopt accepts any unambiguous one
    (``--fil=x`` is ``--file=x``); a short cluster is read letter by letter
    until a letter that takes the rest of the word as its value.
    """
    if not arg.startswith("-") or arg == "-":
        return "a word without a leading '-'", "is not an option: write options as --name=value"
    if arg.startswith("--"):
        name = arg[2:].split("=", 1)[0]
        if not name:
            return "--", "ends the options"
        for option, why in rules.long.items():
            if option.startswith(name):
                return f"--{name}", why
        return None
    for letter in arg[1:]:
        if letter in rules.short:
            return f"-{letter}", rules.short[letter]
        if letter in rules.short_with_value:
            return None
    return None


def vendor_of(alias: str) -> str:
    """The Django vendor of ``alias`` ("postgresql", "mysql", "sqlite"...), without connecting."""
    from django.db import connections

    try:
        return str(connections[alias].vendor)
    except Exception:  # an ENGINE that cannot be imported: W002 says so
        return ""


def problems(value: Any) -> list[tuple[str, str]]:
    """(check id, message) for every problem of a ``DATABASE_OPTIONS`` value."""
    from django.conf import settings as django_settings

    if not isinstance(value, Mapping):
        return [("E085", "DATABASE_OPTIONS must be a dict of database alias to options.")]
    found: list[tuple[str, str]] = []
    for alias, options in value.items():
        if alias not in django_settings.DATABASES:
            found.append(("E085", f"DATABASE_OPTIONS names {alias!r}, which is not in DATABASES."))
            continue
        if not isinstance(options, Mapping):
            found.append(("E085", f"DATABASE_OPTIONS[{alias!r}] must be a dict."))
            continue
        found += _alias_problems(alias, options)
    return found


def _alias_problems(alias: str, options: Mapping[str, Any]) -> list[tuple[str, str]]:
    where = f"DATABASE_OPTIONS[{alias!r}]"
    found = [
        ("E086", f"{where} has an unknown key {key!r}; known: {', '.join(KEYS)}.")
        for key in sorted(set(options) - set(KEYS), key=str)
    ]
    vendor = vendor_of(alias)
    for key in ("DUMP_ARGS", "RESTORE_ARGS"):
        if key not in options:
            continue
        args = options[key]
        if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
            found.append(("E087", f"{where}[{key!r}] must be a list of strings."))
            continue
        rules = RULES.get((vendor, key))
        if rules is None:
            if args:
                found.append(("E087", f"{where}[{key!r}]: {vendor} has no tool to pass it to."))
            continue
        for arg in args:
            refused = refusal(arg, rules)
            if refused:
                found.append(("E088", f"{where}[{key!r}]: {refused[0]} {refused[1]}."))
    env = options.get("ENV", {})
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        found.append(("E089", f"{where}['ENV'] must be a dict of strings to strings."))
    else:
        for name in env:
            if not _ENV_NAME.fullmatch(name):
                found.append(("E089", f"{where}['ENV'] has an invalid variable name {name!r}."))
            elif name in _PASSWORD_ENV:
                found.append(("E089", f"{where}['ENV'] sets {name}: use the PASSWORD key."))
    for key in ("HOST", "USER", "PASSWORD"):
        if key in options and not isinstance(options[key], str):
            found.append(("E090", f"{where}[{key!r}] must be a string."))
    port = options.get("PORT", "")
    bad_port = isinstance(port, bool) or not isinstance(port, (int, str)) or not str(port).isdigit()
    if bad_port and port != "":
        found.append(("E090", f"{where}['PORT'] must be a port number."))
    found += _tool_dir_problems(where, options.get("TOOL_DIR"), vendor)
    return found


def _tool_dir_problems(where: str, tool_dir: Any, vendor: str) -> list[tuple[str, str]]:
    if tool_dir is None or tool_dir == "":
        return []
    if not isinstance(tool_dir, str):
        return [("E091", f"{where}['TOOL_DIR'] must be a string.")]
    if not os.path.isdir(tool_dir):
        return [("E091", f"{where}['TOOL_DIR'] {tool_dir!r} is not a directory.")]
    if vendor not in TOOLS:
        return [("E091", f"{where}['TOOL_DIR']: {vendor} databases are backed up without tools.")]
    return [
        ("E091", f"{where}['TOOL_DIR'] {tool_dir!r} has no executable {tool}.")
        for tool in TOOLS[vendor]
        if not os.access(os.path.join(tool_dir, tool), os.X_OK)
    ]


def parse(value: Mapping[str, Mapping[str, Any]]) -> dict[str, DatabaseOptions]:
    return {alias: DatabaseOptions.from_raw(options) for alias, options in value.items()}
