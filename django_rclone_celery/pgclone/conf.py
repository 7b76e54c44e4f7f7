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

from ..conf import get_settings
from ..declarations import Family, Rule, setting
from ..exceptions import ConfigurationError, OperationDisabled
from ..problems import Problem, problem
from ..rclone import join

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


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_str_list(value: object) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _is_optional_text(value: object) -> bool:
    return value is None or _is_text(value)


def _is_duration(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
        or (isinstance(value, str) and _DURATION.fullmatch(value.strip()) is not None)
    )


def _is_mapping(value: object) -> bool:
    return isinstance(value, Mapping)


def _config_problems(name: str, config: object) -> list[Problem]:
    where = f"PGCLONE_CONFIGS[{name!r}]"
    if not isinstance(config, Mapping):
        return [problem("E102", f"{where} must be a dict of options.")]
    problems = []
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        problems.append(
            problem(
                "E102",
                f"{where} has unknown keys {unknown}.",
                f"Known keys: {', '.join(sorted(CONFIG_KEYS))}.",
            )
        )
    for key in ("exclude", "pre_dump_hooks", "pre_swap_hooks"):
        if key in config and not _is_str_list(config[key]):
            problems.append(problem("E102", f"{where}[{key!r}] must be a list of strings."))
    for key in ("database", "dump_key", "instance", "storage_location"):
        if key in config and not (isinstance(config[key], str) and config[key]):
            problems.append(problem("E102", f"{where}[{key!r}] must be a string."))
    if "reversible" in config and not isinstance(config["reversible"], bool):
        problems.append(problem("E102", f"{where}['reversible'] must be a boolean."))
    return problems


def _configs_problems(configs: Mapping[Any, Any]) -> list[Problem]:
    return [p for name, config in configs.items() for p in _config_problems(str(name), config)]


def _default_conn_db() -> str:
    # django-pgclone's rule: "postgres", unless the app itself uses a database of that name.
    names = {str(db.get("NAME")) for db in getattr(django_settings, "DATABASES", {}).values()}
    return "template1" if "postgres" in names else "postgres"


def _conn_db(value: str | None) -> str:
    return value or _default_conn_db()


def _instance(value: str | None) -> str:
    return value or socket.gethostname()


def _timeout(value: object) -> str | None:
    if value is None:
        return None
    return f"{value}ms" if isinstance(value, int) else str(value).strip()


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


def _dict(value: Any) -> dict[Any, Any]:
    return dict(value)


_BOOL = "True or False"
_STRS = "a list of non-empty strings"
_TEXT = "a non-empty string or None"
_DURATION_KIND = "milliseconds (an int) or a duration such as '30s'"


@dataclass(frozen=True, kw_only=True)
class PgcloneSettings:
    """django-pgclone's settings: field ``allow_dump`` is ``settings.PGCLONE_ALLOW_DUMP``."""

    allow_dump: bool = setting(True, _is_bool, _BOOL)
    allow_restore: bool = setting(True, _is_bool, _BOOL)
    allow_copy: bool = setting(True, _is_bool, _BOOL)
    configs: Mapping[str, Mapping[str, Any]] = setting(
        {},
        _is_mapping,
        "a dict of name to options",
        rules=[Rule("E102", _configs_problems)],
        convert=_dict,
        required=True,
    )
    conn_db: str = setting(None, _is_optional_text, _TEXT, convert=_conn_db, required=True)
    database: str = setting("default", _is_text, "a database alias")
    exclude: tuple[str, ...] = setting([], _is_str_list, _STRS, convert=_tuple)
    instance: str = setting(None, _is_optional_text, _TEXT, convert=_instance, required=True)
    pre_dump_hooks: tuple[str, ...] = setting([], _is_str_list, _STRS, convert=_tuple)
    pre_swap_hooks: tuple[str, ...] = setting(["migrate"], _is_str_list, _STRS, convert=_tuple)
    reversible: bool = setting(False, _is_bool, _BOOL)
    storage_location: str | None = setting(None, _is_optional_text, _TEXT)
    validate_dump_keys: bool = setting(True, _is_bool, _BOOL)
    statement_timeout: str | None = setting(
        None, _is_duration, _DURATION_KIND, convert=_timeout, type_id="E103"
    )
    lock_timeout: str | None = setting(
        None, _is_duration, _DURATION_KIND, convert=_timeout, type_id="E103"
    )

    def session_settings(self) -> dict[str, str]:
        """The server settings applied to every SQL session pgclone opens."""
        values = {"statement_timeout": self.statement_timeout, "lock_timeout": self.lock_timeout}
        return {key: value for key, value in values.items() if value is not None}


SETTINGS = Family(
    PgcloneSettings,
    prefix="PGCLONE_",
    type_id="E101",
    wrong_type=lambda key, kind: f"{key} must be {kind}.",
)
NAMES = tuple(SETTINGS.declared)
DEFAULTS: dict[str, Any] = SETTINGS.defaults


def _given() -> dict[str, Any]:
    return {
        name: getattr(django_settings, name)
        for name in (*NAMES, *UNSUPPORTED)
        if hasattr(django_settings, name)
    }


def validate(values: Mapping[str, Any] | None = None) -> list[Problem]:
    """Every problem with the ``PGCLONE_*`` settings (ids ``django_rclone_celery.E1xx``)."""
    values = _given() if values is None else values
    return SETTINGS.problems(values) + [
        problem(
            "W101",
            f"{name} is ignored: storage goes through rclone.",
            "Configure an rclone S3 remote and point PGCLONE_STORAGE_LOCATION at it.",
            warning=True,
        )
        for name in UNSUPPORTED
        if name in values
    ]


@lru_cache(maxsize=1)
def get_pgclone_settings() -> PgcloneSettings:
    """The validated ``PGCLONE_*`` settings; raises on the first error."""
    for found in validate():
        if not found.warning:
            raise ConfigurationError(f"{found.msg} ({found.id})")
    return SETTINGS.build(_given())


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
