"""The connector contract: how to dump, how to restore, and where to stage a restore."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from .. import process, tools
from ..completeness import StreamCheck, stream_check
from ..database_options import DatabaseOptions
from ..exceptions import ConfigurationError
from ..process import Command, Transform

Inventory = dict[str, list[str]]


class Staging(ABC):
    """A place beside the live database to restore into, and the swap that publishes it.

    ``prepare`` clears leftovers of a crashed run and creates the place;
    ``swap`` replaces the live database with it in one atomic step;
    ``discard`` removes it. Until ``swap`` commits, the live database is untouched.
    """

    target: str

    @abstractmethod
    def prepare(self) -> None: ...

    def check(self) -> None:
        """Validate the staged copy before it goes live (default: nothing to check)."""

    @abstractmethod
    def swap(self) -> None: ...

    @abstractmethod
    def discard(self) -> None: ...


class Connector(ABC):
    """Builds the argv of an engine's dump and restore tools for one database alias."""

    vendor: ClassVar[str]
    extension: ClassVar[str]
    dump_tool: ClassVar[str]
    restore_tool: ClassVar[str]
    # True when the dump tool compresses by itself unless told not to.
    native_compression: ClassVar[bool] = False

    def __init__(self, alias: str, settings_dict: Mapping[str, Any]) -> None:
        self.alias = alias
        self.settings_dict = settings_dict
        # DATABASE_OPTIONS[alias] (set by get_connector) and the tools
        # prepare_tools() chose for this server (tool name -> path).
        self.db_options = DatabaseOptions()
        self.tool_paths: dict[str, str] = {}

    # --- pgtools (#19.2+3): tool choice and per-database options ---
    def program(self, tool: str) -> str:
        """What argv[0] of ``tool`` is: the chosen one, else from TOOL_DIR, else by name."""
        if tool in self.tool_paths:
            return self.tool_paths[tool]
        tool_dir = self.db_options.tool_dir
        return f"{tool_dir.rstrip('/')}/{tool}" if tool_dir else tool

    @property
    def dump_settings(self) -> Mapping[str, Any]:
        """The connection a dump uses: the alias's, with its DATABASE_OPTIONS' HOST,
        PORT, USER and PASSWORD (a replica, a read-only role)."""
        return self.db_options.dump_connection(self.settings_dict)

    def prepare_tools(self, *, restore: bool = False) -> None:
        """Before a run: check that the tools exist (TOOL_DIR may have changed since
        ``check``); engines whose tools must match the server compare versions."""
        tool_dir = self.db_options.tool_dir
        if not tool_dir:
            return
        tool = self.restore_tool if restore else self.dump_tool
        if process.find_program(self.program(tool)) is None:
            raise ConfigurationError(
                f"database {self.alias!r}: TOOL_DIR {tool_dir} has no executable {tool}"
            )

    # --- end pgtools ---

    # Connection details, as Django spells them.
    @property
    def name(self) -> str:
        return str(self.settings_dict.get("NAME") or "")

    @property
    def host(self) -> str:
        return str(self.settings_dict.get("HOST") or "")

    @property
    def port(self) -> str:
        return str(self.settings_dict.get("PORT") or "")

    @property
    def user(self) -> str:
        return str(self.settings_dict.get("USER") or "")

    @property
    def password(self) -> str:
        return str(self.settings_dict.get("PASSWORD") or "")

    @property
    def options(self) -> Mapping[str, Any]:
        return self.settings_dict.get("OPTIONS") or {}

    @property
    def engine(self) -> str:
        return str(self.settings_dict.get("ENGINE") or "")

    @classmethod
    def dotted_path(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    @abstractmethod
    def dump_command(self, *, compress: bool) -> Command:
        """The dump tool writing to stdout; ``compress`` asks for its own compression."""

    @abstractmethod
    def restore_command(self, target: str) -> Command:
        """The restore tool reading stdin into ``target`` (a database name or file)."""

    @abstractmethod
    def staging(self) -> Staging: ...

    def missing_tools(self) -> list[str]:
        """The dump and restore tools not found on this host (system check W003)."""
        tools = sorted({self.dump_tool, self.restore_tool})
        return [tool for tool in tools if process.find_program(tool) is None]

    def tool_versions(self) -> dict[str, str]:
        versions = {}
        for tool in {self.dump_tool, self.restore_tool}:
            program = process.find_program(self.program(tool))
            if program is None:
                continue
            try:  # cached: prepare_tools() has usually asked already
                versions[tool] = tools.version_line(program)
            except ConfigurationError:
                continue
        return versions

    def stream_check(self, *, dumping: bool = False, counting: bool = False) -> StreamCheck | None:
        """The completeness check of this engine's dumps (``completeness.py``); None: none.

        ``dumping`` is True while this connector's own dump tool writes the stream;
        ``counting`` asks for row counts even where they cost more (verification).
        """
        return stream_check(self.vendor, counting=counting)

    @contextmanager
    def counted_snapshot(self) -> Iterator[Callable[[], dict[str, int] | None]]:
        """While the block runs, the dump reads one snapshot that rows are counted in.

        Yields a callable, called once the dump has ended, that returns the
        row counts of that snapshot (None: not counted here; the stream check
        counts them instead, as for SQLite and MariaDB).
        """
        yield lambda: None

    def row_counts(self) -> dict[str, int]:
        """Per-table row counts where they are cheap (estimates on server engines)."""
        return {}

    def script_filter(self) -> Transform | None:
        """A rewrite of the dump's text applied when it is written and when it is
        loaded (MySQL: definers a plain user cannot set); None for none."""
        return None

    def inventory(self, target: str | None = None) -> Inventory:
        """The schema objects of the live database, or of ``target`` (a staged copy):
        kind (``tables``, ``views``, ``triggers``...) to sorted names. Empty where
        the engine has none to read."""
        return {}

    def table_counts(self, target: str | None = None) -> dict[str, int]:
        """Exact row counts per table of the live database or of ``target``,
        named as :meth:`row_counts` names them."""
        return {}

    @contextmanager
    def cursor(self, dbname: str | None = None, *, dump: bool = False) -> Iterator[CursorWrapper]:
        """A cursor on this server, on ``dbname`` if given, in autocommit mode.

        A private connection is opened so nothing leaks into the alias's own
        connection state, and it is closed on exit. ``dump``: on the dump's
        connection (:attr:`dump_settings`).
        """
        wrapper = self.wrapper(dbname, dump=dump)
        try:
            with wrapper.cursor() as cursor:
                yield cursor
        finally:
            wrapper.close()

    def wrapper(self, dbname: str | None = None, *, dump: bool = False) -> BaseDatabaseWrapper:
        live = connections[self.alias]
        settings_dict = dict(live.settings_dict)
        if dump:
            settings_dict = self.db_options.dump_connection(settings_dict)
        if dbname is not None:
            settings_dict["NAME"] = dbname
        return live.__class__(settings_dict, alias=f"__drc_{self.alias}")

    def quote(self, identifier: str) -> str:
        return connections[self.alias].ops.quote_name(identifier)
