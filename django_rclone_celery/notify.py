"""Telling people: failure mail, watchdog mail and health-check pings.

The run protocol calls two functions: :func:`run_started` when a run starts
and :func:`run_finished` when it ends, with ``final=False`` for a failed
attempt that will be retried. A run pings its URLs at start, success and
failure, and mails its final failure, once. Neither a ping nor a mail can
fail a run: errors are logged (URLs redacted) and dropped.

Nothing sent or logged here carries a secret: database passwords and URL
credentials are scrubbed from the text, and ping URLs are logged redacted.
"""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from django.apps import apps
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.db import connections
from django.urls import NoReverseMatch, reverse

from .conf import Settings, get_settings
from .models import BackupRun, Status
from .process import redact

if TYPE_CHECKING:
    from .monitoring import Alert

logger = logging.getLogger("django_rclone_celery")


def first_line(text: str, limit: int = 300) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


USER_AGENT = "django-rclone-celery"
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)
# A path segment that is a plain word ("ping", "api", "start") is kept in logs;
# anything else may be a token (a UUID, a ping key) and is redacted.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z][A-Za-z_-]{0,15}")
HIDDEN = "***"


# -- secrets ------------------------------------------------------------------


def _passwords() -> list[str]:
    found = [str(conf.get("PASSWORD") or "") for conf in connections.settings.values()]
    found.append(str(getattr(django_settings, "EMAIL_HOST_PASSWORD", "") or ""))
    return sorted({p for p in found if p}, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` without database passwords or credentials inside URLs."""
    text = _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{HIDDEN}@", text)
    return redact(text, _passwords())


def redact_url(url: str) -> str:
    """What of a ping URL may be logged: scheme, host, port and plain path words."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return HIDDEN
    netloc = f"{HIDDEN}@{host}" if "@" in parts.netloc else host
    segments = parts.path.split("/")
    path = "/".join(s if not s or _PLAIN_SEGMENT.fullmatch(s) else HIDDEN for s in segments)
    return urlunsplit((parts.scheme, netloc, path, HIDDEN if parts.query else "", ""))


# -- pings ----------------------------------------------------------------------


def ping_url(url: str, event: str) -> str:
    """``<url>/start``, ``<url>`` or ``<url>/fail`` (query string kept at the end)."""
    if event == "success":
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{event}"))


def ping(url: str, event: str, body: str = "", settings: Settings | None = None) -> bool:
    """Ping a health-check URL; True if it answered 2xx. Never raises."""
    settings = settings or get_settings()
    target = ping_url(url, event)
    request = urllib.request.Request(  # noqa: S310 - the URL is validated as http(s) (E062/E066)
        target,
        data=body.encode("utf-8", "replace")[:10000],
        method="POST",
        headers={"User-Agent": USER_AGENT, "Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.ping_timeout) as response:  # noqa: S310
            ok: bool = 200 <= response.status < 300
            if not ok:
                logger.warning(
                    "health-check ping %s answered %s", redact_url(target), response.status
                )
            return ok
    except Exception as exc:  # a ping must never fail a run
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        # The error text may quote the URL: it is replaced by its redacted form.
        text = str(reason).replace(target, redact_url(target)).replace(url, redact_url(url))
        logger.warning(
            "health-check ping %s failed: %s: %s", redact_url(target), type(exc).__name__, text
        )
        return False


def run_ping_urls(row: BackupRun, settings: Settings) -> list[str]:
    """``PING_URL`` and the ``ping_url`` of the schedule that started ``row``."""
    urls = [settings.ping_url] if settings.ping_url else []
    from .schedules import PREFIX, load_specs

    if row.slot.startswith(f"beat:{PREFIX}"):
        for spec in load_specs(settings):
            if spec.ping_url and row.slot.startswith(f"beat:{spec.periodic_task_name}:"):
                urls.append(spec.ping_url)
    return list(dict.fromkeys(urls))


def _ping_all(urls: Iterable[str], event: str, body: str, settings: Settings) -> None:
    for url in urls:
        ping(url, event, body, settings)


# -- mail -----------------------------------------------------------------------


def recipients(settings: Settings) -> list[str]:
    """``MAIL_TO``, or else the addresses in ``ADMINS``."""
    if settings.mail_to is not None:
        return list(settings.mail_to)
    found = []
    for admin in getattr(django_settings, "ADMINS", []):
        found.append(admin if isinstance(admin, str) else admin[1])  # (name, address) pairs
    return found


def run_link(row: BackupRun, settings: Settings) -> str | None:
    """The run's page in the admin, absolute, if the admin is mounted and a base is known."""
    if not getattr(django_settings, "ROOT_URLCONF", None):
        return None
    try:
        path = reverse(f"admin:{row._meta.app_label}_{row._meta.model_name}_change", args=[row.pk])
    except (NoReverseMatch, ImportError, ImproperlyConfigured):
        # No admin, or a URLconf that does not import: the mail goes out
        # without a link rather than not at all.
        return None
    base = settings.base_url
    if not base and apps.is_installed("django.contrib.sites"):
        from django.contrib.sites.models import Site

        try:
            base = f"https://{Site.objects.get_current().domain}"
        except Exception:  # no SITE_ID or no row: no link
            base = ""
    return f"{base}{path}" if base else None


def _send(subject: str, body: str, settings: Settings) -> bool:
    to = recipients(settings)
    if not settings.mail_on_failure or not to:
        return False
    prefix = str(getattr(django_settings, "EMAIL_SUBJECT_PREFIX", ""))
    message = EmailMessage(
        subject=scrub(f"{prefix}{subject}").replace("\n", " ")[:250],
        body=scrub(body),
        from_email=django_settings.SERVER_EMAIL,
        to=to,
    )
    try:
        message.send()
    except Exception as exc:  # a mail must never fail a run
        logger.warning("could not send the mail %r: %s", subject, scrub(str(exc)))
        return False
    return True


def _target(row: BackupRun) -> str:
    return f"database {row.database!r}" if row.database else "media"


def mail_failure(row: BackupRun, settings: Settings | None = None) -> bool:
    """Mail the recipients that ``row`` failed. True if a mail went out."""
    settings = settings or get_settings()
    link = run_link(row, settings)
    lines = [
        f"A {row.operation} run of {_target(row)} failed.",
        "",
        f"Operation: {row.operation}",
        f"Database:  {row.database or '(media)'}",
        f"Stage:     {row.stage or '(before any stage)'}",
        f"Error:     {first_line(row.error) or '(none recorded)'}",
        f"Attempts:  {row.attempts}",
        f"Started:   {row.started.isoformat() if row.started else '-'}",
        f"Finished:  {row.finished.isoformat() if row.finished else '-'}",
        f"Worker:    {row.worker or '-'}",
        f"Task id:   {row.task_id}",
        f"Run:       {link or f'#{row.pk} (set DJANGO_RCLONE[BASE_URL] for a link)'}",
    ]
    subject = f"{row.operation} of {_target(row)} failed"
    return _send(subject, "\n".join(lines) + "\n", settings)


def mail_alert(alert: Alert, settings: Settings | None = None) -> bool:
    """Mail a watchdog alert (overdue, or recovered)."""
    settings = settings or get_settings()
    what = "recovered" if alert.recovered else "overdue"
    target = "media" if alert.database is None else f"database {alert.database!r}"
    subject = f"{alert.kind} of {target} {what}"
    lines = [
        alert.describe() + ".",
        "",
        f"Target:    {alert.target}",
        f"Check:     {alert.kind}",
        f"Limit:     {alert.limit} s",
        f"Age:       {'never' if alert.age is None else f'{alert.age:.0f} s'}",
        f"Newest:    {alert.last.isoformat() if alert.last else '-'}",
    ]
    return _send(subject, "\n".join(lines) + "\n", settings)


# -- the run protocol's hooks ---------------------------------------------------


def run_started(row: BackupRun) -> None:
    """A run (re)started: ping ``<url>/start``."""
    try:
        settings = get_settings()
        _ping_all(run_ping_urls(row, settings), "start", "", settings)
    except Exception:  # monitoring never fails a run
        logger.exception("monitoring hook run_started failed")


def run_finished(row: BackupRun, error: BaseException | None, *, final: bool = True) -> None:
    """A run ended. Success pings ``<url>``; a final failure pings ``<url>/fail``
    and mails once. A failed attempt that will be retried (``final=False``)
    does neither: only the last attempt speaks."""
    if error is not None and not final:
        return
    try:
        settings = get_settings()
        fresh = BackupRun.objects.filter(pk=row.pk).first() or row
        urls = run_ping_urls(fresh, settings)
        if error is None:
            _ping_all(urls, "success", "", settings)
            return
        _ping_all(urls, "fail", scrub(first_line(fresh.error or str(error))), settings)
        mail_failure(fresh, settings)
    except Exception:  # monitoring never fails a run
        logger.exception("monitoring hook run_finished failed")


def running_elsewhere(database: str, started: BackupRun) -> list[int]:
    """Rows of ``database`` marked running by another run: about to be reaped as dead."""
    rows = BackupRun.objects.filter(database=database, status=Status.RUNNING)
    return list(rows.exclude(pk=started.pk).values_list("pk", flat=True))


def runs_abandoned(pks: Iterable[int]) -> None:
    """Runs just marked failed because their worker died: mail and ping ``/fail``
    for each, as for any final failure (they never reached ``run_finished``)."""
    try:
        settings = get_settings()
        for row in BackupRun.objects.filter(pk__in=list(pks), status=Status.FAILED):
            _ping_all(run_ping_urls(row, settings), "fail", scrub(first_line(row.error)), settings)
            mail_failure(row, settings)
    except Exception:  # monitoring never fails a run
        logger.exception("monitoring hook runs_abandoned failed")
