"""Settings: the ``DJANGO_RCLONE`` dict read once into a typed, frozen object.

django-rclone's keys and defaults are kept, so its users' settings work
unchanged. Each key is declared once, as a field of :class:`Settings` (see
:mod:`.declarations`): its default, type, rules with their check ids, and
how the attribute is built. :func:`validate` is the single source of truth
for what is allowed: system checks report its problems, :func:`get_settings`
raises the first error.

Adding a key: one ``setting(...)`` field below (and a row in
``docs/settings.md``); the defaults table, type check, validation and
``get_settings()`` follow from it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import database_options
from .database_options import DatabaseOptions
from .declarations import Family, Joint, Rule, rule, setting
from .exceptions import ConfigurationError
from .problems import Problem, problem
from .values import is_http_url, max_delete_limit, max_delete_problem

__all__ = [
    "DEFAULTS",
    "Problem",
    "Settings",
    "get_settings",
    "is_http_url",
    "max_delete_limit",
    "max_delete_problem",
    "raw_settings",
    "takes_backups",
    "validate",
]

Compression = Literal["zstd", "native", "none"]
COMPRESSIONS: tuple[Compression, ...] = ("zstd", "native", "none")
# No '.', '/' or ':': the namespace and the alias are joined with a '.'.
NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
TEMPLATE_FIELDS = frozenset({"database", "datetime", "ext"})


# --- rules of single values ----------------------------------------------------------------


def _template_problems(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"is not a valid format string ({exc})"]
    names = [name for _, name, _, _ in parsed if name is not None]
    errors = []
    unknown = sorted(set(names) - TEMPLATE_FIELDS)
    if unknown:
        errors.append(f"uses unknown placeholders {unknown}; allowed: {sorted(TEMPLATE_FIELDS)}")
    for name in sorted(TEMPLATE_FIELDS):
        if names.count(name) != 1:
            errors.append(f"must contain {{{name}}} exactly once")
    if "/" in template:
        errors.append("must not contain '/'")
    if not re.match(r"\{database\}[^{]", template):
        errors.append("must start with {database} followed by a separator")
    return errors


def _positive_seconds(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _limit_problems(limit: Any) -> list[str]:
    if limit is None or _positive_seconds(limit):
        return []
    if not isinstance(limit, dict):
        return ["must be a positive number of seconds"]
    errors = []
    targets = {"*", "media", *django_settings.DATABASES}
    for target, seconds in limit.items():
        if target not in targets:
            errors.append(f"names {target!r}, which is neither a database alias, 'media' nor '*'")
        elif seconds is not None and not _positive_seconds(seconds):
            errors.append(f"[{target!r}] must be a positive number of seconds or None")
    return errors


def _limits(limit: int | Mapping[str, int | None] | None) -> dict[str, int | None]:
    """A limit setting as target -> seconds; ``"*"`` covers the targets not named."""
    if limit is None:
        return {}
    if isinstance(limit, int):
        return {"*": limit}
    return dict(limit)


def _schedule_problems(schedules: Mapping[Any, Any]) -> list[Problem]:
    from .schedule_rules import schedule_problems  # celery's crontab: only when checked

    return schedule_problems(schedules)


def _not_negative(number: str, key: str) -> Rule:
    return rule(number, lambda v: v < 0, f"{key} must not be negative.", "0 turns it off.")


def _no_parent(key: str) -> Rule:
    return rule("E009", lambda v: ".." in v.split("/"), f"{key} must not contain '..'.")


def _age_limit(number: str, key: str) -> Rule:
    return Rule(
        number,
        lambda v: [f"{key} {error}." for error in _limit_problems(v)],
        "Seconds; None (or a target mapped to None) turns the limit off.",
    )


def _optional_url(number: str, msg: str, hint: str = "") -> Rule:
    return rule(number, lambda v: bool(v) and not is_http_url(v), msg, hint)


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


def _dict(value: Any) -> dict[Any, Any]:
    return dict(value)


def _strip(value: str) -> str:
    return value.strip("/")


def _or_none(value: Any) -> Any:
    return value or None


# --- the keys --------------------------------------------------------------------------------


MAX_JOBS = 64  # streams of one PostgreSQL backup or restore


def _backup_databases_problems(value: Any) -> list[Problem]:
    """``BACKUP_DATABASES``: aliases of ``DATABASES``, each once, at least one (E080-E082)."""
    if value is None:
        return []
    aliases = list(value)
    hint = "None backs up every alias in DATABASES."
    if not aliases or not all(isinstance(a, str) and a for a in aliases):
        return [
            problem("E080", "BACKUP_DATABASES must be a non-empty list of database aliases.", hint)
        ]
    found = []
    unknown = [a for a in aliases if a not in django_settings.DATABASES]
    if unknown:
        known = ", ".join(sorted(django_settings.DATABASES))
        found.append(
            problem(
                "E081",
                f"BACKUP_DATABASES names unknown database aliases {unknown} (configured: {known}).",
                hint,
            )
        )
    twice = sorted({a for a in aliases if aliases.count(a) > 1})
    if twice:
        found.append(
            problem(
                "E082",
                f"BACKUP_DATABASES names {twice} more than once.",
                "Each alias is backed up once per run.",
            )
        )
    return found


def _database_options_problems(value: Any) -> list[Problem]:
    return [problem(check_id, msg) for check_id, msg in database_options.problems(value)]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """``DJANGO_RCLONE``: one field per key (the key is the field's name in capitals)."""

    remote: str = setting(
        "",
        str,
        rules=[
            rule(
                "E002",
                lambda v: not v,
                "DJANGO_RCLONE['REMOTE'] is required.",
                'An rclone path such as "s3remote:bucket/backups" or "/srv/backups".',
            )
        ],
        required=True,
    )
    rclone_binary: str = setting("rclone", str)
    rclone_config: str | None = setting(None, (str, None))
    rclone_flags: tuple[str, ...] = setting(
        [],
        (list, tuple),
        "a list of strings",
        rules=[
            rule(
                "E003",
                lambda v: not all(isinstance(f, str) for f in v),
                "DJANGO_RCLONE['RCLONE_FLAGS'] must be strings.",
            ),
            Rule(
                "W050",
                lambda v: (
                    [
                        "RCLONE_FLAGS sets --backup-dir or --suffix: media backups keep their own "
                        "history, and these would send replaced files elsewhere."
                    ]
                    if any(
                        isinstance(f, str) and f.split("=")[0] in ("--backup-dir", "--suffix")
                        for f in v
                    )
                    else []
                ),
                "Remove them; see the Media section of the storage docs.",
                warning=True,
            ),
        ],
        convert=_tuple,
    )
    db_backup_dir: str = setting("db", str, rules=[_no_parent("DB_BACKUP_DIR")], convert=_strip)
    db_filename_template: str = setting(
        "{database}-{datetime}.{ext}",
        str,
        rules=[
            Rule(
                "E004",
                lambda v: [f"DB_FILENAME_TEMPLATE {error}." for error in _template_problems(v)],
            )
        ],
    )
    db_date_format: str = setting(
        "%Y-%m-%d-%H%M%S",
        str,
        rules=[
            rule(
                "E005",
                lambda v: "/" in v or "%" not in v,
                "DB_DATE_FORMAT must be a strftime format without '/'.",
            )
        ],
    )
    db_cleanup_keep: int = setting(
        10, int, rules=[rule("E006", lambda v: v < 1, "DB_CLEANUP_KEEP must be at least 1.")]
    )
    db_cleanup_keep_daily: int = setting(
        0, int, rules=[_not_negative("E012", "DB_CLEANUP_KEEP_DAILY")]
    )
    db_cleanup_keep_weekly: int = setting(
        0, int, rules=[_not_negative("E013", "DB_CLEANUP_KEEP_WEEKLY")]
    )
    db_cleanup_keep_monthly: int = setting(
        0, int, rules=[_not_negative("E014", "DB_CLEANUP_KEEP_MONTHLY")]
    )
    db_cleanup_keep_within_days: int = setting(
        0,
        int,
        "an integer number of days",
        rules=[_not_negative("E015", "DB_CLEANUP_KEEP_WITHIN_DAYS")],
    )
    media_backup_dir: str = setting(
        "media",
        str,
        rules=[
            _no_parent("MEDIA_BACKUP_DIR"),
            rule(
                "E051",
                lambda v: not v.strip("/"),
                "MEDIA_BACKUP_DIR must not be empty.",
                "The media mirror would be the whole remote, and a media sync would delete "
                "everything else on it.",
            ),
        ],
        convert=_strip,
    )
    media_max_delete: int | str = setting(
        "50%",
        (int, str),
        'a count (50) or a share ("20%")',
        rules=[
            Rule(
                "E050",
                lambda v: (
                    [f"MEDIA_MAX_DELETE {max_delete_problem(v)}."] if max_delete_problem(v) else []
                ),
                'A count of files such as 50, or a share of the destination files such as "20%".',
            )
        ],
    )
    connectors: Mapping[str, str] = setting(
        {}, dict, "a dict of alias to dotted path", convert=_dict
    )
    connector_mapping: Mapping[str, str] = setting(
        {}, dict, "a dict of engine to dotted path", convert=_dict
    )
    compression: Compression = setting(
        "zstd",
        str,
        "one of 'zstd', 'native', 'none'",
        rules=[
            Rule(
                "E007",
                lambda v: (
                    [f"COMPRESSION must be one of {', '.join(COMPRESSIONS)}, not {v!r}."]
                    if v not in COMPRESSIONS
                    else []
                ),
            )
        ],
    )
    compression_level: int = setting(
        2,
        int,
        rules=[
            rule("E008", lambda v: not 1 <= v <= 22, "COMPRESSION_LEVEL must be between 1 and 22.")
        ],
    )
    # None: chosen by the usable CPUs
    compression_threads: int | None = setting(
        None,
        (int, None),
        rules=[
            rule(
                "E016",
                lambda v: v is not None and v < -1,
                "COMPRESSION_THREADS must be None, -1 or a number of threads of at least 0.",
                "None picks by the CPUs this process may use; -1 is one per CPU of the host; "
                "0 compresses on the calling thread.",
            )
        ],
    )
    schedules: Mapping[str, Mapping[str, Any]] = setting(
        {},
        dict,
        "a dict of name to schedule spec",
        rules=[Rule("E020", _schedule_problems)],
        convert=_dict,
    )
    install_schedules: bool = setting(True, bool)
    task_soft_time_limit: int = setting(6 * 3600, int, "an integer number of seconds")
    task_time_limit: int = setting(6 * 3600 + 300, int, "an integer number of seconds")
    task_max_retries: int = setting(3, int)
    lock_url: str | None = setting(
        None,
        (str, None),
        rules=[
            rule(
                "E030",
                lambda v: (
                    bool(v) and not v.startswith(("redis://", "rediss://", "unix://", "file://"))
                ),
                "LOCK_URL must be a redis://, rediss://, unix:// or file:// URL.",
                "Leave it unset to use the Celery broker when it is Redis.",
            )
        ],
    )
    lock_ttl: int = setting(
        60,
        int,
        "an integer number of seconds",
        rules=[
            rule(
                "E031",
                lambda v: v < 3,
                "LOCK_TTL must be at least 3 seconds.",
                "The lease is renewed every third of it; a dead worker's lease expires after it.",
            )
        ],
    )
    lock_retry_delay: float = setting(
        10,
        (int, float),
        "a number of seconds",
        rules=[rule("E032", lambda v: not v > 0, "LOCK_RETRY_DELAY must be more than 0 seconds.")],
    )
    lock_wait: int = setting(
        24 * 3600,
        int,
        "an integer number of seconds",
        rules=[rule("E033", lambda v: v < 0, "LOCK_WAIT must not be negative.")],
    )
    mail_on_failure: bool = setting(True, bool)
    # None: Django's ADMINS
    mail_to: tuple[str, ...] | None = setting(
        None,
        (list, tuple, None),
        "a list of e-mail addresses or None",
        rules=[
            rule(
                "E060",
                lambda v: v is not None and not all(isinstance(a, str) and "@" in a for a in v),
                "MAIL_TO must be a list of e-mail addresses, or None for ADMINS.",
            )
        ],
        convert=lambda v: None if v is None else tuple(v),
    )
    base_url: str = setting(
        "",
        str,
        rules=[
            _optional_url(
                "E061",
                "BASE_URL must be an http:// or https:// URL such as 'https://example.com'.",
                "Failure mails link to the run in the admin under it.",
            )
        ],
        convert=lambda v: v.rstrip("/"),
    )
    ping_url: str | None = setting(
        None,
        (str, None),
        rules=[_optional_url("E062", "PING_URL must be an http:// or https:// URL.")],
        convert=_or_none,
    )
    ping_timeout: float = setting(
        5,
        (int, float),
        "a number of seconds",
        rules=[
            rule(
                "E063",
                lambda v: not 0 < v <= 60,
                "PING_TIMEOUT must be more than 0 and at most 60 seconds.",
                "A ping waits at most this long; a slow check service must not hold a backup.",
            )
        ],
    )
    # Target ("media", an alias, or "*" for the rest) -> seconds; None: no limit.
    max_backup_age: Mapping[str, int | None] = setting(
        None,
        (int, dict, None),
        "seconds, a dict of target to seconds, or None",
        rules=[_age_limit("E064", "MAX_BACKUP_AGE")],
        convert=_limits,
    )
    max_verify_age: Mapping[str, int | None] = setting(
        None,
        (int, dict, None),
        "seconds, a dict of target to seconds, or None",
        rules=[_age_limit("E065", "MAX_VERIFY_AGE")],
        convert=_limits,
    )
    watchdog_interval: int = setting(
        300,
        int,
        "an integer number of seconds",
        rules=[rule("E067", lambda v: v < 2, "WATCHDOG_INTERVAL must be at least 2 seconds.")],
    )
    # The project's identity on a shared remote (a prefix of the names it
    # writes, and the only names its retention deletes) and in shared Redis
    # (the lock keys). None: names stay django-rclone's; locks use the project.
    namespace: str | None = setting(
        None,
        (str, None),
        rules=[
            Rule(
                "E017",
                lambda v: (
                    [
                        f"NAMESPACE {v!r} must be letters, digits, '_' or '-' "
                        "(at most 64, starting with a letter or digit)."
                    ]
                    if v and not NAMESPACE_RE.fullmatch(v)
                    else []
                ),
                "It prefixes backup names (NAMESPACE.alias-…) and lock keys.",
            )
        ],
        convert=_or_none,
    )
    sqlite_lock_timeout: int = setting(
        60,
        int,
        "an integer number of seconds",
        rules=[
            rule(
                "E068",
                lambda v: v < 1,
                "SQLITE_LOCK_TIMEOUT must be at least 1 second.",
                "A SQLite backup waits this long for a writer's lock, then fails.",
            )
        ],
    )
    # the aliases of --all; None: every alias in DATABASES
    backup_databases: tuple[str, ...] | None = setting(
        None,
        (list, tuple, None),
        "a list of database aliases or None",
        rules=[Rule("E080", _backup_databases_problems)],
        convert=lambda v: None if v is None else tuple(v),
    )
    # PostgreSQL streams of a dump and of a restore
    jobs: int = setting(
        1,
        int,
        "an integer number of streams",
        rules=[
            rule(
                "E096",
                lambda v: not 1 <= v <= MAX_JOBS,
                f"JOBS must be a number of streams from 1 to {MAX_JOBS}.",
                "1 dumps and restores one stream; more apply to PostgreSQL only.",
            )
        ],
    )
    # alias -> its DATABASE_OPTIONS (database_options.py checks and parses them)
    database_options: Mapping[str, DatabaseOptions] = setting(
        {},
        dict,
        "a dict of database alias to options",
        rules=[Rule("E085", _database_options_problems)],
        convert=database_options.parse,
    )


SETTINGS = Family(
    Settings,
    prefix="",
    type_id="E003",
    wrong_type=lambda key, kind: f"DJANGO_RCLONE[{key!r}] must be {kind}.",
    joint=(
        Joint(
            ("TASK_SOFT_TIME_LIMIT", "TASK_TIME_LIMIT"),
            rule(
                "E010",
                lambda v: v[0] >= v[1],
                "TASK_SOFT_TIME_LIMIT must be lower than TASK_TIME_LIMIT.",
                "The soft limit is what lets a task kill its dump tool and clean up.",
            ),
        ),
    ),
)
DEFAULTS: dict[str, Any] = SETTINGS.defaults


def raw_settings() -> dict[str, Any]:
    value = getattr(django_settings, "DJANGO_RCLONE", None)
    return value if isinstance(value, dict) else {}


def takes_backups() -> bool:
    """Whether this environment backs up at all: ``DJANGO_RCLONE["REMOTE"]`` is set."""
    raw = getattr(django_settings, "DJANGO_RCLONE", None)
    return isinstance(raw, Mapping) and bool(raw.get("REMOTE"))


def validate(raw: Mapping[str, Any] | None = None) -> list[Problem]:
    """Every problem with the ``DJANGO_RCLONE`` setting (ids ``django_rclone_celery.E0xx``)."""
    # No DJANGO_RCLONE at all is an empty one (E002 then), not a wrong type.
    value = getattr(django_settings, "DJANGO_RCLONE", {}) if raw is None else raw
    if not isinstance(value, Mapping):
        return [
            problem(
                "E001",
                "DJANGO_RCLONE must be a dict.",
                'Set DJANGO_RCLONE = {"REMOTE": "myremote:backups"}.',
            )
        ]
    unknown = [
        problem(
            "W001",
            f"DJANGO_RCLONE has an unknown key {key!r}; it is ignored.",
            f"Known keys: {', '.join(sorted(DEFAULTS))}.",
            warning=True,
        )
        for key in sorted(set(value) - set(DEFAULTS))
    ]
    return unknown + SETTINGS.problems(value)


def _build(raw: Mapping[str, Any]) -> Settings:
    return SETTINGS.build({k: v for k, v in raw.items() if k in DEFAULTS})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The validated settings. Raises :class:`ConfigurationError` on the first error."""
    for found in validate():
        if not found.warning:
            hint = f" {found.hint}" if found.hint else ""
            raise ConfigurationError(f"{found.msg}{hint} ({found.id})")
    return _build(raw_settings())


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in ("DJANGO_RCLONE", "DATABASES", "MEDIA_ROOT"):
        get_settings.cache_clear()
