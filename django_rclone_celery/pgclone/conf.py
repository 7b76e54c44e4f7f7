"""pgclone settings: django-pgclone's ``PGCLONE_*`` names and defaults, typed and validated.

Options resolve in django-pgclone's order: a command-line flag (or API
keyword), then the named config in ``PGCLONE_CONFIGS``, then the setting.
Check ids are stable: ``django_rclone_celery.E1xx`` / ``W1xx``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from ..conf import Problem, get_settings
from ..exceptions import ConfigurationError, OperationDisabled
from ..rclone import join

NAMES = (
    "PGCLONE_ALLOW_DUMP",
    "PGCLONE_ALLOW_RESTORE",
    "PGCLONE_ALLOW_COPY",
    "PGCLONE_CONFIGS",
    "PGCLONE_CONN_DB",
    "PGCLONE_DATABASE",
    "PGCLONE_EXCLUDE",
    "PGCLONE_INSTANCE",
    "PGCLONE_PRE_DUMP_HOOKS",
    "PGCLONE_PRE_SWAP_HOOKS",
    "PGCLONE_REVERSIBLE",
    "PGCLONE_STORAGE_LOCATION",
    "PGCLONE_VALIDATE_DUMP_KEYS",
    "PGCLONE_STATEMENT_TIMEOUT",
    "PGCLONE_LOCK_TIMEOUT",
)
# django-pgclone settings for its aws-CLI storage: rclone remotes replace them.
UNSUPPORTED = ("PGCLONE_S3_CONFIG", "PGCLONE_S3_ENDPOINT_URL")
CONFIG_KEYS = frozenset(
    {
        "database",
        "dump_key",
        "exclude",
        "instance",
        "pre_dump_hooks",
        "pre_swap_hooks",
        "reversible",
        "storage_location",
    }
)
DEFAULT_SUBDIR = "pgclone"
# PostgreSQL's own syntax for a duration setting: a number and an optional unit.
_DURATION = re.compile(r"\d+\s*(us|ms|s|min|h|d)?")

_BOOLS = ("PGCLONE_ALLOW_DUMP", "PGCLONE_ALLOW_RESTORE", "PGCLONE_ALLOW_COPY", "PGCLONE_REVERSIBLE")
_STR_LISTS = ("PGCLONE_EXCLUDE", "PGCLONE_PRE_DUMP_HOOKS", "PGCLONE_PRE_SWAP_HOOKS")
_OPTIONAL_STRS = ("PGCLONE_CONN_DB", "PGCLONE_INSTANCE", "PGCLONE_STORAGE_LOCATION")


@dataclass(frozen=True, kw_only=True)
class PgcloneSettings:
    allow_dump: bool = True
    allow_restore: bool = True
    allow_copy: bool = True
    configs: Mapping[str, Mapping[str, Any]]
    conn_db: str
    database: str = "default"
    exclude: tuple[str, ...] = ()
    instance: str
    pre_dump_hooks: tuple[str, ...] = ()
    pre_swap_hooks: tuple[str, ...] = ("migrate",)
    reversible: bool = False
    storage_location: str | None = None
    validate_dump_keys: bool = True
    statement_timeout: str | None = None
    lock_timeout: str | None = None

    def session_settings(self) -> dict[str, str]:
        """The server settings applied to every SQL session pgclone opens."""
        values = {"statement_timeout": self.statement_timeout, "lock_timeout": self.lock_timeout}
        return {key: value for key, value in values.items() if value is not None}


def _is_str_list(value: object) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)


def _config_problems(name: str, config: object) -> list[Problem]:
    where = f"PGCLONE_CONFIGS[{name!r}]"
    if not isinstance(config, Mapping):
        return [Problem("django_rclone_celery.E102", f"{where} must be a dict of options.")]
    problems = []
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        problems.append(
            Problem(
                "django_rclone_celery.E102",
                f"{where} has unknown keys {unknown}.",
                f"Known keys: {', '.join(sorted(CONFIG_KEYS))}.",
            )
        )
    for key in ("exclude", "pre_dump_hooks", "pre_swap_hooks"):
        if key in config and not _is_str_list(config[key]):
            problems.append(
                Problem("django_rclone_celery.E102", f"{where}[{key!r}] must be a list of strings.")
            )
    for key in ("database", "dump_key", "instance", "storage_location"):
        if key in config and not (isinstance(config[key], str) and config[key]):
            problems.append(
                Problem("django_rclone_celery.E102", f"{where}[{key!r}] must be a string.")
            )
    if "reversible" in config and not isinstance(config["reversible"], bool):
        problems.append(
            Problem("django_rclone_celery.E102", f"{where}['reversible'] must be a boolean.")
        )
    return problems


def validate(values: Mapping[str, Any] | None = None) -> list[Problem]:
    """Every problem with the ``PGCLONE_*`` settings (ids ``django_rclone_celery.E1xx``)."""
    if values is None:
        values = {
            name: getattr(django_settings, name)
            for name in (*NAMES, *UNSUPPORTED)
            if hasattr(django_settings, name)
        }
    problems: list[Problem] = []

    def bad(name: str, what: str) -> None:
        problems.append(Problem("django_rclone_celery.E101", f"{name} must be {what}."))

    for name in _BOOLS:
        if name in values and not isinstance(values[name], bool):
            bad(name, "True or False")
    if "PGCLONE_VALIDATE_DUMP_KEYS" in values and not isinstance(
        values["PGCLONE_VALIDATE_DUMP_KEYS"], bool
    ):
        bad("PGCLONE_VALIDATE_DUMP_KEYS", "True or False")
    for name in _STR_LISTS:
        if name in values and not _is_str_list(values[name]):
            bad(name, "a list of non-empty strings")
    for name in _OPTIONAL_STRS:
        if (
            name in values
            and values[name] is not None
            and not (isinstance(values[name], str) and values[name])
        ):
            bad(name, "a non-empty string or None")
    if "PGCLONE_DATABASE" in values and not (
        isinstance(values["PGCLONE_DATABASE"], str) and values["PGCLONE_DATABASE"]
    ):
        bad("PGCLONE_DATABASE", "a database alias")
    for name in ("PGCLONE_STATEMENT_TIMEOUT", "PGCLONE_LOCK_TIMEOUT"):
        value = values.get(name)
        if value is None:
            continue
        ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
            isinstance(value, str) and _DURATION.fullmatch(value.strip()) is not None
        )
        if not ok:
            problems.append(
                Problem(
                    "django_rclone_celery.E103",
                    f"{name} must be milliseconds (an int) or a duration such as '30s'.",
                )
            )
    configs = values.get("PGCLONE_CONFIGS", {})
    if not isinstance(configs, Mapping):
        bad("PGCLONE_CONFIGS", "a dict of name to options")
    else:
        for config_name, config in configs.items():
            problems.extend(_config_problems(str(config_name), config))
    for name in UNSUPPORTED:
        if name in values:
            problems.append(
                Problem(
                    "django_rclone_celery.W101",
                    f"{name} is ignored: storage goes through rclone.",
                    "Configure an rclone S3 remote and point PGCLONE_STORAGE_LOCATION at it.",
                    warning=True,
                )
            )
    return problems


def _default_conn_db() -> str:
    # django-pgclone's rule: "postgres", unless the app itself uses a database of that name.
    names = {str(db.get("NAME")) for db in getattr(django_settings, "DATABASES", {}).values()}
    return "template1" if "postgres" in names else "postgres"


def _timeout(value: object) -> str | None:
    if value is None:
        return None
    return f"{value}ms" if isinstance(value, int) else str(value).strip()


@lru_cache(maxsize=1)
def get_pgclone_settings() -> PgcloneSettings:
    """The validated ``PGCLONE_*`` settings; raises on the first error."""
    for problem in validate():
        if not problem.warning:
            raise ConfigurationError(f"{problem.msg} ({problem.id})")

    def get(name: str, default: Any) -> Any:
        return getattr(django_settings, name, default)

    return PgcloneSettings(
        allow_dump=get("PGCLONE_ALLOW_DUMP", True),
        allow_restore=get("PGCLONE_ALLOW_RESTORE", True),
        allow_copy=get("PGCLONE_ALLOW_COPY", True),
        configs=dict(get("PGCLONE_CONFIGS", {})),
        conn_db=get("PGCLONE_CONN_DB", None) or _default_conn_db(),
        database=get("PGCLONE_DATABASE", "default"),
        exclude=tuple(get("PGCLONE_EXCLUDE", ())),
        instance=get("PGCLONE_INSTANCE", None) or socket.gethostname(),
        pre_dump_hooks=tuple(get("PGCLONE_PRE_DUMP_HOOKS", ())),
        pre_swap_hooks=tuple(get("PGCLONE_PRE_SWAP_HOOKS", ("migrate",))),
        reversible=get("PGCLONE_REVERSIBLE", False),
        storage_location=get("PGCLONE_STORAGE_LOCATION", None),
        validate_dump_keys=get("PGCLONE_VALIDATE_DUMP_KEYS", True),
        statement_timeout=_timeout(get("PGCLONE_STATEMENT_TIMEOUT", None)),
        lock_timeout=_timeout(get("PGCLONE_LOCK_TIMEOUT", None)),
    )


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("PGCLONE_") or setting == "DATABASES":
        get_pgclone_settings.cache_clear()


def require(verb: str, settings: PgcloneSettings) -> None:
    """Refuse a verb its kill switch turns off."""
    allowed = {
        "dump": settings.allow_dump,
        "restore": settings.allow_restore,
        "copy": settings.allow_copy,
    }[verb]
    if not allowed:
        raise OperationDisabled(
            f"pgclone {verb} is disabled on this site: settings.PGCLONE_ALLOW_{verb.upper()} "
            "is False"
        )


@dataclass(frozen=True, kw_only=True)
class Options:
    """One verb's options after resolution. ``config`` is the name used in dump keys."""

    config: str
    dump_key: str | None
    database: str
    instance: str
    storage_location: str
    exclude: tuple[str, ...]
    pre_dump_hooks: tuple[str, ...]
    pre_swap_hooks: tuple[str, ...]
    reversible: bool


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def resolve(
    *,
    config: str | None = None,
    dump_key: str | None = None,
    database: str | None = None,
    instance: str | None = None,
    storage_location: str | None = None,
    exclude: Sequence[str] | None = None,
    pre_dump_hooks: Sequence[str] | None = None,
    pre_swap_hooks: Sequence[str] | None = None,
    reversible: bool | None = None,
    settings: PgcloneSettings | None = None,
) -> Options:
    """Resolve options: argument (None = not given), then named config, then setting.

    Giving ``exclude`` or hooks explicitly may change what a config dumps, so
    the dump key then says config ``none`` (django-pgclone's rule).
    """
    settings = settings or get_pgclone_settings()
    if config is not None and config not in settings.configs:
        known = ", ".join(sorted(settings.configs)) or "none configured"
        raise ConfigurationError(
            f"{config!r} is not a configuration in settings.PGCLONE_CONFIGS ({known})"
        )
    preset = settings.configs[config] if config else {}
    altered = any(v is not None for v in (exclude, pre_dump_hooks, pre_swap_hooks))
    location = _first(storage_location, preset.get("storage_location"), settings.storage_location)
    if location is None:
        location = join(get_settings().remote, DEFAULT_SUBDIR)
    return Options(
        config="none" if not config or altered else config,
        dump_key=_first(dump_key, preset.get("dump_key")),
        database=_first(database, preset.get("database"), settings.database),
        instance=_first(instance, preset.get("instance"), settings.instance),
        storage_location=location,
        exclude=tuple(_first(exclude, preset.get("exclude"), settings.exclude)),
        pre_dump_hooks=tuple(
            _first(pre_dump_hooks, preset.get("pre_dump_hooks"), settings.pre_dump_hooks)
        ),
        pre_swap_hooks=tuple(
            _first(pre_swap_hooks, preset.get("pre_swap_hooks"), settings.pre_swap_hooks)
        ),
        reversible=bool(_first(reversible, preset.get("reversible"), settings.reversible)),
    )
