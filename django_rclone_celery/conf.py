"""Settings: the ``DJANGO_RCLONE`` dict read once into a typed, frozen object.

django-rclone's keys and defaults are kept, so its users' settings work
unchanged. :func:`validate` is the single source of truth for what is
allowed: system checks report its problems, :func:`get_settings` raises
the first error.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .exceptions import ConfigurationError

Compression = Literal["zstd", "native", "none"]
COMPRESSIONS: tuple[Compression, ...] = ("zstd", "native", "none")
# No '.', '/' or ':': the namespace and the alias are joined with a '.'.
NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
TEMPLATE_FIELDS = frozenset({"database", "datetime", "ext"})
# Retention rules beyond DB_CLEANUP_KEEP (see retention.py), each with its check id.
RETENTION_CHECKS = {
    "django_rclone_celery.E012": "DB_CLEANUP_KEEP_DAILY",
    "django_rclone_celery.E013": "DB_CLEANUP_KEEP_WEEKLY",
    "django_rclone_celery.E014": "DB_CLEANUP_KEEP_MONTHLY",
    "django_rclone_celery.E015": "DB_CLEANUP_KEEP_WITHIN_DAYS",
}

DEFAULTS: dict[str, Any] = {
    "REMOTE": "",
    "RCLONE_BINARY": "rclone",
    "RCLONE_CONFIG": None,
    "RCLONE_FLAGS": [],
    "DB_BACKUP_DIR": "db",
    "DB_FILENAME_TEMPLATE": "{database}-{datetime}.{ext}",
    "DB_DATE_FORMAT": "%Y-%m-%d-%H%M%S",
    "DB_CLEANUP_KEEP": 10,
    "MEDIA_BACKUP_DIR": "media",
    "MEDIA_MAX_DELETE": "50%",
    "CONNECTORS": {},
    "CONNECTOR_MAPPING": {},
    # Ours, beyond django-rclone's.
    "DB_CLEANUP_KEEP_DAILY": 0,
    "DB_CLEANUP_KEEP_WEEKLY": 0,
    "DB_CLEANUP_KEEP_MONTHLY": 0,
    "DB_CLEANUP_KEEP_WITHIN_DAYS": 0,
    "COMPRESSION": "zstd",
    "COMPRESSION_LEVEL": 2,
    "COMPRESSION_THREADS": None,
    "SCHEDULES": {},
    "INSTALL_SCHEDULES": True,
    "TASK_SOFT_TIME_LIMIT": 6 * 3600,
    "TASK_TIME_LIMIT": 6 * 3600 + 300,
    "TASK_MAX_RETRIES": 3,
    "LOCK_URL": None,
    "LOCK_TTL": 60,
    "LOCK_RETRY_DELAY": 10,
    "LOCK_WAIT": 24 * 3600,
    # Monitoring (see monitoring.py and notify.py).
    "MAIL_ON_FAILURE": True,
    "MAIL_TO": None,
    "BASE_URL": "",
    "PING_URL": None,
    "PING_TIMEOUT": 5,
    "MAX_BACKUP_AGE": None,
    "MAX_VERIFY_AGE": None,
    "WATCHDOG_INTERVAL": 300,
    "NAMESPACE": None,
    "SQLITE_LOCK_TIMEOUT": 60,
    # -- parallel (#19.4) --
    "JOBS": 1,
    # -- end parallel --
}

MAX_JOBS = 64  # parallel (#19.4): streams of one PostgreSQL backup or restore

# key -> (accepted types, human description)
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "REMOTE": ((str,), "a string"),
    "RCLONE_BINARY": ((str,), "a string"),
    "RCLONE_CONFIG": ((str, type(None)), "a string or None"),
    "RCLONE_FLAGS": ((list, tuple), "a list of strings"),
    "DB_BACKUP_DIR": ((str,), "a string"),
    "DB_FILENAME_TEMPLATE": ((str,), "a string"),
    "DB_DATE_FORMAT": ((str,), "a string"),
    "DB_CLEANUP_KEEP": ((int,), "an integer"),
    "DB_CLEANUP_KEEP_DAILY": ((int,), "an integer"),
    "DB_CLEANUP_KEEP_WEEKLY": ((int,), "an integer"),
    "DB_CLEANUP_KEEP_MONTHLY": ((int,), "an integer"),
    "DB_CLEANUP_KEEP_WITHIN_DAYS": ((int,), "an integer number of days"),
    "MEDIA_BACKUP_DIR": ((str,), "a string"),
    "MEDIA_MAX_DELETE": ((int, str), 'a count (50) or a share ("20%")'),
    "CONNECTORS": ((dict,), "a dict of alias to dotted path"),
    "CONNECTOR_MAPPING": ((dict,), "a dict of engine to dotted path"),
    "COMPRESSION": ((str,), "one of 'zstd', 'native', 'none'"),
    "COMPRESSION_LEVEL": ((int,), "an integer"),
    "COMPRESSION_THREADS": ((int, type(None)), "an integer or None"),
    "SCHEDULES": ((dict,), "a dict of name to schedule spec"),
    "INSTALL_SCHEDULES": ((bool,), "a boolean"),
    "TASK_SOFT_TIME_LIMIT": ((int,), "an integer number of seconds"),
    "TASK_TIME_LIMIT": ((int,), "an integer number of seconds"),
    "TASK_MAX_RETRIES": ((int,), "an integer"),
    "LOCK_URL": ((str, type(None)), "a string or None"),
    "LOCK_TTL": ((int,), "an integer number of seconds"),
    "LOCK_RETRY_DELAY": ((int, float), "a number of seconds"),
    "LOCK_WAIT": ((int,), "an integer number of seconds"),
    "MAIL_ON_FAILURE": ((bool,), "a boolean"),
    "MAIL_TO": ((list, tuple, type(None)), "a list of e-mail addresses or None"),
    "BASE_URL": ((str,), "a string"),
    "PING_URL": ((str, type(None)), "a string or None"),
    "PING_TIMEOUT": ((int, float), "a number of seconds"),
    "MAX_BACKUP_AGE": ((int, dict, type(None)), "seconds, a dict of target to seconds, or None"),
    "MAX_VERIFY_AGE": ((int, dict, type(None)), "seconds, a dict of target to seconds, or None"),
    "WATCHDOG_INTERVAL": ((int,), "an integer number of seconds"),
    "NAMESPACE": ((str, type(None)), "a string or None"),
    "SQLITE_LOCK_TIMEOUT": ((int,), "an integer number of seconds"),
    # -- parallel (#19.4) --
    "JOBS": ((int,), "an integer number of streams"),
    # -- end parallel --
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings, with its stable check id."""

    id: str
    msg: str
    hint: str = ""
    warning: bool = False


@dataclass(frozen=True, kw_only=True)
class Settings:
    remote: str
    rclone_binary: str = "rclone"
    rclone_config: str | None = None
    rclone_flags: tuple[str, ...] = ()
    db_backup_dir: str = "db"
    db_filename_template: str = "{database}-{datetime}.{ext}"
    db_date_format: str = "%Y-%m-%d-%H%M%S"
    db_cleanup_keep: int = 10
    db_cleanup_keep_daily: int = 0
    db_cleanup_keep_weekly: int = 0
    db_cleanup_keep_monthly: int = 0
    db_cleanup_keep_within_days: int = 0
    media_backup_dir: str = "media"
    media_max_delete: int | str = "50%"
    connectors: Mapping[str, str] = field(default_factory=dict)
    connector_mapping: Mapping[str, str] = field(default_factory=dict)
    compression: Compression = "zstd"
    compression_level: int = 2
    compression_threads: int | None = None  # None: chosen by the usable CPUs
    schedules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    install_schedules: bool = True
    task_soft_time_limit: int = 6 * 3600
    task_time_limit: int = 6 * 3600 + 300
    task_max_retries: int = 3
    lock_url: str | None = None
    lock_ttl: int = 60
    lock_retry_delay: float = 10
    lock_wait: int = 24 * 3600
    mail_on_failure: bool = True
    mail_to: tuple[str, ...] | None = None  # None: Django's ADMINS
    base_url: str = ""
    ping_url: str | None = None
    ping_timeout: float = 5
    # Target ("media", an alias, or "*" for the rest) -> seconds; None: no limit.
    max_backup_age: Mapping[str, int | None] = field(default_factory=dict)
    max_verify_age: Mapping[str, int | None] = field(default_factory=dict)
    watchdog_interval: int = 300
    # The project's identity on a shared remote (a prefix of the names it
    # writes, and the only names its retention deletes) and in shared Redis
    # (the lock keys). None: names stay django-rclone's; locks use the project.
    namespace: str | None = None
    sqlite_lock_timeout: int = 60
    # -- parallel (#19.4) --
    jobs: int = 1  # PostgreSQL streams of a dump and of a restore
    # -- end parallel --


def raw_settings() -> dict[str, Any]:
    value = getattr(django_settings, "DJANGO_RCLONE", None)
    return value if isinstance(value, dict) else {}


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


def validate(raw: Mapping[str, Any] | None = None) -> list[Problem]:
    """Every problem with the ``DJANGO_RCLONE`` setting (ids ``django_rclone_celery.E0xx``)."""
    # No DJANGO_RCLONE at all is an empty one (E002 then), not a wrong type.
    value = getattr(django_settings, "DJANGO_RCLONE", {}) if raw is None else raw
    if not isinstance(value, Mapping):
        return [
            Problem(
                "django_rclone_celery.E001",
                "DJANGO_RCLONE must be a dict.",
                'Set DJANGO_RCLONE = {"REMOTE": "myremote:backups"}.',
            )
        ]
    problems: list[Problem] = []
    for key in sorted(set(value) - set(DEFAULTS)):
        problems.append(
            Problem(
                "django_rclone_celery.W001",
                f"DJANGO_RCLONE has an unknown key {key!r}; it is ignored.",
                f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                warning=True,
            )
        )
    for key, (types, description) in _TYPES.items():
        if key in value and (
            not isinstance(value[key], types) or (bool in types) is not isinstance(value[key], bool)
        ):
            problems.append(
                Problem(
                    "django_rclone_celery.E003", f"DJANGO_RCLONE[{key!r}] must be {description}."
                )
            )
    bad_types = {p.msg.split("'")[1] for p in problems if p.id.endswith("E003")}

    def ok(key: str) -> bool:
        return key in value and key not in bad_types

    if not value.get("REMOTE") and "REMOTE" not in bad_types:
        problems.append(
            Problem(
                "django_rclone_celery.E002",
                "DJANGO_RCLONE['REMOTE'] is required.",
                'An rclone path such as "s3remote:bucket/backups" or "/srv/backups".',
            )
        )
    if ok("RCLONE_FLAGS") and not all(isinstance(f, str) for f in value["RCLONE_FLAGS"]):
        problems.append(
            Problem("django_rclone_celery.E003", "DJANGO_RCLONE['RCLONE_FLAGS'] must be strings.")
        )
    if ok("DB_FILENAME_TEMPLATE"):
        for error in _template_problems(value["DB_FILENAME_TEMPLATE"]):
            problems.append(Problem("django_rclone_celery.E004", f"DB_FILENAME_TEMPLATE {error}."))
    if ok("DB_DATE_FORMAT") and (
        "/" in value["DB_DATE_FORMAT"] or "%" not in value["DB_DATE_FORMAT"]
    ):
        problems.append(
            Problem(
                "django_rclone_celery.E005",
                "DB_DATE_FORMAT must be a strftime format without '/'.",
            )
        )
    if ok("DB_CLEANUP_KEEP") and value["DB_CLEANUP_KEEP"] < 1:
        problems.append(Problem("django_rclone_celery.E006", "DB_CLEANUP_KEEP must be at least 1."))
    for check_id, key in RETENTION_CHECKS.items():
        if ok(key) and value[key] < 0:
            problems.append(Problem(check_id, f"{key} must not be negative.", "0 turns it off."))
    if ok("COMPRESSION") and value["COMPRESSION"] not in COMPRESSIONS:
        problems.append(
            Problem(
                "django_rclone_celery.E007",
                f"COMPRESSION must be one of {', '.join(COMPRESSIONS)}, "
                f"not {value['COMPRESSION']!r}.",
            )
        )
    if ok("COMPRESSION_LEVEL") and not 1 <= value["COMPRESSION_LEVEL"] <= 22:
        problems.append(
            Problem("django_rclone_celery.E008", "COMPRESSION_LEVEL must be between 1 and 22.")
        )
    threads = value.get("COMPRESSION_THREADS")
    if ok("COMPRESSION_THREADS") and threads is not None and threads < -1:
        problems.append(
            Problem(
                "django_rclone_celery.E016",
                "COMPRESSION_THREADS must be None, -1 or a number of threads of at least 0.",
                "None picks by the CPUs this process may use; -1 is one per CPU of the host; "
                "0 compresses on the calling thread.",
            )
        )
    # -- parallel (#19.4) --
    if ok("JOBS") and not 1 <= value["JOBS"] <= MAX_JOBS:
        problems.append(
            Problem(
                "django_rclone_celery.E096",
                f"JOBS must be a number of streams from 1 to {MAX_JOBS}.",
                "1 dumps and restores one stream; more apply to PostgreSQL only.",
            )
        )
    # -- end parallel --
    for key in ("DB_BACKUP_DIR", "MEDIA_BACKUP_DIR"):
        if ok(key) and ".." in value[key].split("/"):
            problems.append(Problem("django_rclone_celery.E009", f"{key} must not contain '..'."))
    if ok("MEDIA_MAX_DELETE") and max_delete_problem(value["MEDIA_MAX_DELETE"]):
        problems.append(
            Problem(
                "django_rclone_celery.E050",
                f"MEDIA_MAX_DELETE {max_delete_problem(value['MEDIA_MAX_DELETE'])}.",
                'A count of files such as 50, or a share of the destination files such as "20%".',
            )
        )
    if ok("RCLONE_FLAGS") and any(
        isinstance(f, str) and f.split("=")[0] in ("--backup-dir", "--suffix")
        for f in value["RCLONE_FLAGS"]
    ):
        problems.append(
            Problem(
                "django_rclone_celery.W050",
                "RCLONE_FLAGS sets --backup-dir or --suffix: media backups keep their own "
                "history, and these would send replaced files elsewhere.",
                "Remove them; see the Media section of the storage docs.",
                warning=True,
            )
        )
    if ok("MEDIA_BACKUP_DIR") and not value["MEDIA_BACKUP_DIR"].strip("/"):
        problems.append(
            Problem(
                "django_rclone_celery.E051",
                "MEDIA_BACKUP_DIR must not be empty.",
                "The media mirror would be the whole remote, and a media sync would delete "
                "everything else on it.",
            )
        )
    if (
        ok("TASK_SOFT_TIME_LIMIT")
        and ok("TASK_TIME_LIMIT")
        and value["TASK_SOFT_TIME_LIMIT"] >= value["TASK_TIME_LIMIT"]
    ):
        problems.append(
            Problem(
                "django_rclone_celery.E010",
                "TASK_SOFT_TIME_LIMIT must be lower than TASK_TIME_LIMIT.",
                "The soft limit is what lets a task kill its dump tool and clean up.",
            )
        )
    problems.extend(_lock_problems(value, ok))
    problems.extend(_monitoring_problems(value, ok))
    if ok("NAMESPACE") and value["NAMESPACE"] and not NAMESPACE_RE.fullmatch(value["NAMESPACE"]):
        problems.append(
            Problem(
                "django_rclone_celery.E017",
                f"NAMESPACE {value['NAMESPACE']!r} must be letters, digits, '_' or '-' "
                "(at most 64, starting with a letter or digit).",
                "It prefixes backup names (NAMESPACE.alias-…) and lock keys.",
            )
        )
    if ok("SQLITE_LOCK_TIMEOUT") and value["SQLITE_LOCK_TIMEOUT"] < 1:
        problems.append(
            Problem(
                "django_rclone_celery.E068",
                "SQLITE_LOCK_TIMEOUT must be at least 1 second.",
                "A SQLite backup waits this long for a writer's lock, then fails.",
            )
        )
    if ok("SCHEDULES"):
        from .schedules import schedule_problems  # imported here: schedules imports conf

        problems.extend(schedule_problems(value["SCHEDULES"]))
    return problems


_SHARE = re.compile(r"(\d+(?:\.\d+)?)%")


def max_delete_problem(value: object) -> str:
    """Why ``value`` is not a deletion limit ("" when it is one)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return 'must be a count (50) or a share ("20%")'
    if isinstance(value, int):
        return "must not be negative" if value < 0 else ""
    match = _SHARE.fullmatch(value.strip())
    if match is None:
        return f'must be a count (50) or a share ("20%"), not {value!r}'
    return "must be at most 100%" if float(match.group(1)) > 100 else ""


def max_delete_limit(value: int | str, files: int) -> int:
    """How many of ``files`` destination files a sync may delete under the limit ``value``."""
    problem = max_delete_problem(value)
    if problem:
        raise ConfigurationError(f"max delete {problem}")
    if isinstance(value, int):
        return value
    match = _SHARE.fullmatch(value.strip())
    assert match is not None
    # Rounded up: a share allows at least one deletion from a non-empty destination.
    return math.ceil(files * float(match.group(1)) / 100)


def _lock_problems(value: Mapping[str, Any], ok: Any) -> list[Problem]:
    """Lease-lock settings (ids E030-E033)."""
    problems = []
    url = value.get("LOCK_URL") if ok("LOCK_URL") else None
    if url and not url.startswith(("redis://", "rediss://", "unix://", "file://")):
        problems.append(
            Problem(
                "django_rclone_celery.E030",
                "LOCK_URL must be a redis://, rediss://, unix:// or file:// URL.",
                "Leave it unset to use the Celery broker when it is Redis.",
            )
        )
    if ok("LOCK_TTL") and value["LOCK_TTL"] < 3:
        problems.append(
            Problem(
                "django_rclone_celery.E031",
                "LOCK_TTL must be at least 3 seconds.",
                "The lease is renewed every third of it; a dead worker's lease expires after it.",
            )
        )
    if ok("LOCK_RETRY_DELAY") and not value["LOCK_RETRY_DELAY"] > 0:
        problems.append(
            Problem("django_rclone_celery.E032", "LOCK_RETRY_DELAY must be more than 0 seconds.")
        )
    if ok("LOCK_WAIT") and value["LOCK_WAIT"] < 0:
        problems.append(Problem("django_rclone_celery.E033", "LOCK_WAIT must not be negative."))
    return problems


def is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _monitoring_problems(value: Mapping[str, Any], ok: Any) -> list[Problem]:
    """Failure mail, pings and freshness limits (ids E060-E067)."""
    problems = []
    mail_to = value.get("MAIL_TO") if ok("MAIL_TO") else None
    if mail_to is not None and not all(isinstance(a, str) and "@" in a for a in mail_to):
        problems.append(
            Problem(
                "django_rclone_celery.E060",
                "MAIL_TO must be a list of e-mail addresses, or None for ADMINS.",
            )
        )
    if ok("BASE_URL") and value["BASE_URL"] and not is_http_url(value["BASE_URL"]):
        problems.append(
            Problem(
                "django_rclone_celery.E061",
                "BASE_URL must be an http:// or https:// URL such as 'https://example.com'.",
                "Failure mails link to the run in the admin under it.",
            )
        )
    if ok("PING_URL") and value["PING_URL"] and not is_http_url(value["PING_URL"]):
        problems.append(
            Problem("django_rclone_celery.E062", "PING_URL must be an http:// or https:// URL.")
        )
    if ok("PING_TIMEOUT") and not 0 < value["PING_TIMEOUT"] <= 60:
        problems.append(
            Problem(
                "django_rclone_celery.E063",
                "PING_TIMEOUT must be more than 0 and at most 60 seconds.",
                "A ping waits at most this long; a slow check service must not hold a backup.",
            )
        )
    for check_id, key in (
        ("django_rclone_celery.E064", "MAX_BACKUP_AGE"),
        ("django_rclone_celery.E065", "MAX_VERIFY_AGE"),
    ):
        if ok(key):
            problems.extend(
                Problem(
                    check_id,
                    f"{key} {error}.",
                    "Seconds; None (or a target mapped to None) turns the limit off.",
                )
                for error in _limit_problems(value[key])
            )
    if ok("WATCHDOG_INTERVAL") and value["WATCHDOG_INTERVAL"] < 2:
        problems.append(
            Problem("django_rclone_celery.E067", "WATCHDOG_INTERVAL must be at least 2 seconds.")
        )
    return problems


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


def _build(raw: Mapping[str, Any]) -> Settings:
    merged = {**DEFAULTS, **{k: v for k, v in raw.items() if k in DEFAULTS}}
    return Settings(
        remote=merged["REMOTE"],
        rclone_binary=merged["RCLONE_BINARY"],
        rclone_config=merged["RCLONE_CONFIG"],
        rclone_flags=tuple(merged["RCLONE_FLAGS"]),
        db_backup_dir=merged["DB_BACKUP_DIR"].strip("/"),
        db_filename_template=merged["DB_FILENAME_TEMPLATE"],
        db_date_format=merged["DB_DATE_FORMAT"],
        db_cleanup_keep=merged["DB_CLEANUP_KEEP"],
        db_cleanup_keep_daily=merged["DB_CLEANUP_KEEP_DAILY"],
        db_cleanup_keep_weekly=merged["DB_CLEANUP_KEEP_WEEKLY"],
        db_cleanup_keep_monthly=merged["DB_CLEANUP_KEEP_MONTHLY"],
        db_cleanup_keep_within_days=merged["DB_CLEANUP_KEEP_WITHIN_DAYS"],
        media_backup_dir=merged["MEDIA_BACKUP_DIR"].strip("/"),
        media_max_delete=merged["MEDIA_MAX_DELETE"],
        connectors=dict(merged["CONNECTORS"]),
        connector_mapping=dict(merged["CONNECTOR_MAPPING"]),
        compression=merged["COMPRESSION"],
        compression_level=merged["COMPRESSION_LEVEL"],
        compression_threads=merged["COMPRESSION_THREADS"],
        schedules=dict(merged["SCHEDULES"]),
        install_schedules=merged["INSTALL_SCHEDULES"],
        task_soft_time_limit=merged["TASK_SOFT_TIME_LIMIT"],
        task_time_limit=merged["TASK_TIME_LIMIT"],
        task_max_retries=merged["TASK_MAX_RETRIES"],
        lock_url=merged["LOCK_URL"],
        lock_ttl=merged["LOCK_TTL"],
        lock_retry_delay=merged["LOCK_RETRY_DELAY"],
        lock_wait=merged["LOCK_WAIT"],
        mail_on_failure=merged["MAIL_ON_FAILURE"],
        mail_to=None if merged["MAIL_TO"] is None else tuple(merged["MAIL_TO"]),
        base_url=merged["BASE_URL"].rstrip("/"),
        ping_url=merged["PING_URL"] or None,
        ping_timeout=merged["PING_TIMEOUT"],
        max_backup_age=_limits(merged["MAX_BACKUP_AGE"]),
        max_verify_age=_limits(merged["MAX_VERIFY_AGE"]),
        watchdog_interval=merged["WATCHDOG_INTERVAL"],
        namespace=merged["NAMESPACE"] or None,
        sqlite_lock_timeout=merged["SQLITE_LOCK_TIMEOUT"],
        # -- parallel (#19.4) --
        jobs=merged["JOBS"],
        # -- end parallel --
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The validated settings. Raises :class:`ConfigurationError` on the first error."""
    for problem in validate():
        if not problem.warning:
            hint = f" {problem.hint}" if problem.hint else ""
            raise ConfigurationError(f"{problem.msg}{hint} ({problem.id})")
    return _build(raw_settings())


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in ("DJANGO_RCLONE", "DATABASES", "MEDIA_ROOT"):
        get_settings.cache_clear()
