"""Which database backups a cleanup keeps: a pure function of the backups, the policy and now.

The rules work like restic's ``forget``. Each rule picks backups on its own; a
backup is deleted only when no rule picks it:

``last``        the newest N backups (``DB_CLEANUP_KEEP``, at least 1, so the
                newest backup is always kept)
``daily``       the newest backup of each of the last N UTC days that have one
``weekly``      ... of each of the last N ISO weeks that have one
``monthly``     ... of each of the last N months that have one
``within``      every backup at most N days older than now

Days without a backup do not count: with ``daily = 7`` and backups on only three
of the last ten days, the three are kept and so are the newest backups of the
four days with backups before them. Unlike restic, ``within`` is measured from
now, not from the newest backup, so "delete backups older than 30 days" is
``last = 1`` plus ``within = 30``. Times come from the backup's name
(:attr:`BackupInfo.created`), so renaming or copying objects does not change them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Generic, Literal, Protocol, TypeVar

from .conf import Settings
from .exceptions import ConfigurationError

Reason = Literal["last", "daily", "weekly", "monthly", "within"]
REASONS: tuple[Reason, ...] = ("last", "daily", "weekly", "monthly", "within")


@dataclass(frozen=True, kw_only=True)
class Policy:
    """How many backups each rule keeps; 0 turns a rule off (except ``last``)."""

    last: int = 10
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    within_days: int = 0

    def __post_init__(self) -> None:
        # Settings are checked by the system checks; this guards direct callers
        # (the Python API, the admin form, task kwargs).
        if self.last < 1:
            raise ConfigurationError("keep must be at least 1")
        for name in ("daily", "weekly", "monthly", "within_days"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"keep {name} must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings, *, keep: int | None = None) -> Policy:
        """The ``DB_CLEANUP_KEEP*`` settings; ``keep`` overrides ``DB_CLEANUP_KEEP`` only."""
        return cls(
            last=settings.db_cleanup_keep if keep is None else keep,
            daily=settings.db_cleanup_keep_daily,
            weekly=settings.db_cleanup_keep_weekly,
            monthly=settings.db_cleanup_keep_monthly,
            within_days=settings.db_cleanup_keep_within_days,
        )


class Dated(Protocol):
    """What the rules look at: a database backup or a media point."""

    @property
    def created(self) -> datetime: ...


B = TypeVar("B", bound=Dated)


@dataclass(frozen=True)
class Kept(Generic[B]):
    backup: B
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Plan(Generic[B]):
    """The outcome, both lists newest first."""

    kept: list[Kept[B]] = field(default_factory=list)
    deleted: list[B] = field(default_factory=list)


def _utc(moment: datetime) -> datetime:
    # Names are parsed as UTC; a naive value is taken to be UTC too.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _day(moment: datetime) -> Hashable:
    return moment.date()


def _week(moment: datetime) -> Hashable:
    iso = moment.isocalendar()
    return (iso.year, iso.week)  # the ISO year: 2024-12-30 is in week 1 of 2025


def _month(moment: datetime) -> Hashable:
    return (moment.year, moment.month)


def _newest_per_period(
    times: Sequence[datetime], count: int, period: Callable[[datetime], Hashable]
) -> set[int]:
    """Indexes of the newest backup of each of the ``count`` newest periods that have one."""
    picked: set[int] = set()
    last_period: Hashable = None
    for index, moment in enumerate(times):
        if len(picked) >= count:
            break
        current = period(moment)
        if current != last_period:
            picked.add(index)
            last_period = current
    return picked


def plan(backups: Sequence[B], policy: Policy, now: datetime) -> Plan[B]:
    """Split ``backups`` (of one database, or media points) into kept, with reasons, and deleted."""
    # Stable sort: the caller's order (newest first) settles equal timestamps.
    ordered = sorted(backups, key=lambda b: _utc(b.created), reverse=True)
    times = [_utc(b.created) for b in ordered]
    cutoff = _utc(now) - timedelta(days=policy.within_days)
    picks: dict[Reason, set[int]] = {
        "last": set(range(min(policy.last, len(ordered)))),
        "daily": _newest_per_period(times, policy.daily, _day),
        "weekly": _newest_per_period(times, policy.weekly, _week),
        "monthly": _newest_per_period(times, policy.monthly, _month),
        "within": (
            {i for i, t in enumerate(times) if t >= cutoff} if policy.within_days else set()
        ),
    }
    result: Plan[B] = Plan()
    for index, backup in enumerate(ordered):
        reasons = tuple(r for r in REASONS if index in picks[r])
        if reasons:
            result.kept.append(Kept(backup, reasons))
        else:
            result.deleted.append(backup)
    return result
