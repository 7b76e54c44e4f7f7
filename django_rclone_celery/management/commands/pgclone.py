"""``manage.py pgclone ls|dump|restore|copy``: django-pgclone's command, every option kept.

Options left out fall back to the named config (``-c``), then to the
``PGCLONE_*`` settings. ``-e``, ``--pre-dump-hook`` and ``--pre-swap-hook``
may be repeated or take several values; given with no value they mean
"none" (e.g. ``--pre-swap-hook`` alone skips the default ``migrate``).
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ... import pgclone
from ..base import QueueableCommand, add_queue_arguments


def _common(parser: argparse.ArgumentParser, *, database: str, storage: str | None) -> None:
    parser.add_argument("-d", "--database", help=database)
    if storage:
        parser.add_argument("-s", "--storage-location", help=storage)
    parser.add_argument(
        "-c", "--config", help="Use this configuration to supply default option values."
    )


def _list_option(parser: argparse.ArgumentParser, *flags: str, dest: str, help: str) -> None:
    parser.add_argument(*flags, dest=dest, action="extend", nargs="*", default=None, help=help)


class Command(QueueableCommand):
    help = "Dump, list, restore and copy PostgreSQL databases (django-pgclone's commands)."
    operation = "pgclone_dump"  # each verb hands off its own: pgclone_<verb>
    # The verbs validate the settings they use themselves; skipping the whole
    # check framework keeps `restore :snap` close to the cost of the copy.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", title="subcommands", required=True)

        ls = sub.add_parser("ls", help="List dump keys under the storage location.")
        ls.add_argument("dump_key", nargs="?", help="A dump key or prefix of a dump key.")
        modes = ls.add_mutually_exclusive_group()
        modes.add_argument("--instances", action="store_true", help="Only list instances.")
        modes.add_argument("--databases", action="store_true", help="Only list databases.")
        modes.add_argument("--configs", action="store_true", help="Only list configs.")
        modes.add_argument(
            "--local", action="store_true", help="List local databases that can be restored."
        )
        _common(
            ls,
            database="Use this database when listing local databases.",
            storage="Use this storage location for listing.",
        )

        dump = sub.add_parser("dump", help="Dump the database to the storage location.")
        _list_option(
            dump,
            "-e",
            "--exclude",
            dest="exclude",
            help="Leave out this model's rows (app_label.Model). Repeatable.",
        )
        _list_option(
            dump,
            "--pre-dump-hook",
            dest="pre_dump_hooks",
            help="Run this management command before the dump. Repeatable.",
        )
        dump.add_argument("-i", "--instance", help="Use this instance name in the dump key.")
        _common(dump, database="Dump this database.", storage="Dump to this storage location.")
        add_queue_arguments(dump)

        restore = sub.add_parser("restore", help="Restore a dump or a local database.")
        restore.add_argument(
            "dump_key",
            nargs="?",
            help="A dump key, a prefix (newest match wins), or a local key such as :pre.",
        )
        _list_option(
            restore,
            "--pre-swap-hook",
            dest="pre_swap_hooks",
            help="Run this management command on the restored copy before the swap. Repeatable.",
        )
        restore.add_argument(
            "-r",
            "--reversible",
            action="store_true",
            default=None,
            help="Keep <db>__pre and <db>__post to switch back with `restore :pre` / `:post`.",
        )
        _common(
            restore,
            database="Restore to this database.",
            storage="Restore from this storage location.",
        )
        add_queue_arguments(restore)

        copy = sub.add_parser("copy", help="Copy the database to a local database (:name).")
        copy.add_argument("dump_key", help="The target as a local key, e.g. :snap.")
        _common(copy, database="Copy this database.", storage=None)
        add_queue_arguments(copy)

    def handle(self, *args: Any, **options: Any) -> None:
        verb = options["subcommand"]
        common = {"database": options["database"], "config": options["config"]}
        if verb == "ls":
            results = self.run_operation(
                pgclone.ls,
                dump_key=options["dump_key"],
                instances=options["instances"],
                databases=options["databases"],
                configs=options["configs"],
                local=options["local"],
                storage_location=options["storage_location"],
                **common,
            )
            for line in results:
                self.stdout.write(line)
            return
        if verb == "dump":
            kwargs: dict[str, Any] = {
                "exclude": options["exclude"],
                "pre_dump_hooks": options["pre_dump_hooks"],
                "instance": options["instance"],
                "storage_location": options["storage_location"],
                **common,
            }
        elif verb == "restore":
            kwargs = {
                "dump_key": options["dump_key"],
                "pre_swap_hooks": options["pre_swap_hooks"],
                "reversible": options["reversible"],
                "storage_location": options["storage_location"],
                **common,
            }
        elif verb == "copy":
            kwargs = {"dump_key": options["dump_key"], **common}
        else:  # pragma: no cover - argparse refuses other names
            raise CommandError(f"unknown subcommand {verb!r}")
        if self.hand_off(options, f"pgclone_{verb}", **kwargs):
            if self.waited and self.waited.get("dump_key"):
                self.stdout.write(str(self.waited["dump_key"]))  # the key, as without --wait
            return
        self.stdout.write(self.run_guarded(f"pgclone_{verb}", **kwargs).dump_key)
