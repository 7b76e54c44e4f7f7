"""MongoDB: ``mongodump --archive`` / ``mongorestore --archive --drop``.

MongoDB cannot rename a database, and moving collections between databases
is one collection at a time, so there is no atomic swap: a restore is
applied in place, collection by collection (documented in docs/connectors.md).
"""

from __future__ import annotations

from ..process import Command
from .base import Connector, Staging

_SECRET_TOKEN = "@@DRC_MONGO_CONFIG@@"  # noqa: S105 - a placeholder, not a secret


_YAML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _yaml_string(value: str) -> str:
    # A YAML double-quoted scalar: a raw line break would be folded into a space.
    escaped = "".join(_YAML_ESCAPES.get(char, char) for char in value)
    return f'"{escaped}"'


class MongoConnector(Connector):
    vendor = "mongodb"
    extension = "archive"
    dump_tool = "mongodump"
    restore_tool = "mongorestore"

    def _args(self) -> list[str]:
        host = self.host or "localhost"
        args = [f"--host={host}:{self.port or '27017'}"]
        if self.user:
            args.append(f"--username={self.user}")
        auth_source = self.settings_dict.get("AUTH_SOURCE") or self.options.get("authSource")
        if auth_source:
            args.append(f"--authenticationDatabase={auth_source}")
        if self.password:
            # mongodump reads the password from a YAML file given with --config.
            args.append(f"--config={_SECRET_TOKEN}")
        return args

    def _command(self, argv: list[str]) -> Command:
        files = {}
        if self.password:
            files[_SECRET_TOKEN] = f"password: {_yaml_string(self.password)}\n"
        return Command(
            argv=tuple(argv),
            secret_files=files,
            redact=(self.password,) if self.password else (),
        )

    def dump_command(self, *, compress: bool) -> Command:
        # No --gzip even for "native": django-rclone's archives are plain.
        return self._command([self.dump_tool, *self._args(), f"--db={self.name}", "--archive"])

    def restore_command(self, target: str) -> Command:
        argv = [self.restore_tool, *self._args(), "--archive", "--drop"]
        if target != self.name:
            argv += [f"--nsFrom={self.name}.*", f"--nsTo={target}.*"]
        return self._command(argv)

    def staging(self) -> Staging:
        return InPlace(self.name)


class InPlace(Staging):
    """No staging: the restore tool writes into the live database itself."""

    def __init__(self, target: str) -> None:
        self.target = target

    def prepare(self) -> None:
        pass

    def swap(self) -> None:
        pass

    def discard(self) -> None:
        pass
