"""``manage.py backupstatus``: are the backups fresh? Exit 0 if so, 2 if not."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils import timezone

from ...monitoring import RunInfo, TargetStatus, status
from ..base import OperationCommand, human_size

# Nagios' "critical": cron mails it, CI fails on it, monitoring plugins page on it.
NOT_FRESH = 2


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _run(info: RunInfo | None, limit: int | None) -> str:
    bound = f", limit {_age(limit)}" if limit is not None else ""
    if info is None:
        return f"never{bound}"
    size = f", {human_size(info.size)}" if info.size is not None else ""
    when = info.finished.strftime("%Y-%m-%d %H:%M:%S")
    return f"{when} UTC ({_age(info.age)} ago{size}{bound})"


class Command(OperationCommand):
    help = (
        "Show each database's and the media's newest backup, newest restore drill and last "
        f"failure. Exits 0 when all are within MAX_BACKUP_AGE / MAX_VERIFY_AGE and none is "
        f"failing, {NOT_FRESH} otherwise."
    )

    @staticmethod
    def _status() -> Any:
        try:
            return status()
        except DatabaseError as exc:  # said here, more precisely than run_operation would
            raise CommandError(f"cannot read the run history: {exc}") from exc

    def handle(self, *args: Any, **options: Any) -> None:
        found = self.run_operation(self._status)
        if options["json"]:
            payload = {
                "ok": all(t.ok for t in found),
                "checked": timezone.now(),
                "targets": [t.as_dict() for t in found],
            }
            self.stdout.write(json.dumps(payload, indent=2, default=str))
        else:
            for item in found:
                self._show(item)
        bad = [f"{t.target} ({t.state})" for t in found if not t.ok]
        if bad:
            raise CommandError(f"not fresh: {', '.join(bad)}", returncode=NOT_FRESH)

    def _show(self, item: TargetStatus) -> None:
        style = {"ok": self.style.SUCCESS, "late": self.style.WARNING}.get(
            item.state, self.style.ERROR
        )
        self.stdout.write(style(f"{item.target}: {item.state}"))
        self.stdout.write(f"  backup:   {_run(item.last_backup, item.max_backup_age)}")
        if item.target != "media":
            self.stdout.write(f"  verified: {_run(item.last_verified, item.max_verify_age)}")
        if item.last_failure is not None:
            f = item.last_failure
            when = f.finished.strftime("%Y-%m-%d %H:%M:%S")
            stage = f" in {f.stage}" if f.stage else ""
            self.stdout.write(f"  failed:   {when} UTC {f.operation}{stage}: {f.error}")
