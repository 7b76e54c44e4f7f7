"""Monitoring (docs/monitoring.md): failure mail, health-check pings, the watchdog,
``backupstatus``, the admin summary and the metrics view.

Real parts only: an SMTP server on loopback (aiosmtpd), an HTTP server on
loopback that records the pings, real ``celery worker`` and ``celery beat``
processes on the throwaway Redis, the real rclone binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import Client
from django.utils import timezone

from django_rclone_celery import conf, notify
from django_rclone_celery.models import BackupRun, Watch
from django_rclone_celery.monitoring import status, watch
from tests.helpers.databases import populate
from tests.helpers.network import free_port
from tests.helpers.workers import ROOT, wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "pg"])

BACKUP = "django_rclone_celery.db_backup"
RESTORE = "django_rclone_celery.db_restore"
PING_TOKEN = "f3b9c2d4-5e6f-4a1b-8c7d-9e0f1a2b3c4d"  # a hosted check's secret
PASSWORD = "pw-Zq8!never-in-a-mail"


# -- real servers on loopback ---------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    messages: list[Message] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": self.port,
            "SERVER_EMAIL": "backups@example.com",
            "EMAIL_SUBJECT_PREFIX": "[test] ",
        }


@pytest.fixture
def mailbox(settings: Any) -> Iterator[Mailbox]:
    """aiosmtpd on a free loopback port; this process's mail goes there too."""
    from aiosmtpd.controller import Controller

    box = Mailbox(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    for key, value in box.settings().items():
        setattr(settings, key, value)
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class Pings:
    port: int
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path with query, body)
    methods: set[str] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [p for p, _ in self.seen]


@pytest.fixture
def pings() -> Iterator[Pings]:
    """An HTTP server that records every request; under ``/slow/`` it answers after 3 s."""
    record = Pings(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            record.seen.append((self.path, body))
            record.methods.add(self.command)
            if self.path.startswith("/slow/"):
                time.sleep(3)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
            except OSError:  # the client gave up (PING_TIMEOUT)
                pass

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", record.port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()


def body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


# -- settings -------------------------------------------------------------------------------


def test_monitoring_settings_are_validated_with_their_check_ids() -> None:
    def ids(**raw: Any) -> set[str]:
        return {p.id.rsplit(".", 1)[1] for p in conf.validate({"REMOTE": "/x", **raw})}

    assert ids(MAIL_TO=["ops"]) == {"E060"}
    assert ids(BASE_URL="example.com") == {"E061"}
    assert ids(PING_URL="ftp://hc/x") == {"E062"}
    assert ids(PING_TIMEOUT=0) == {"E063"}
    assert ids(MAX_BACKUP_AGE=0) == {"E064"}
    assert ids(MAX_BACKUP_AGE={"nosuchalias": 60}) == {"E064"}
    assert ids(MAX_VERIFY_AGE={"pg": -1}) == {"E065"}
    assert ids(SCHEDULES={"n": {"task": BACKUP, "every": 60, "ping_url": "hc/x"}}) == {"E066"}
    assert ids(WATCHDOG_INTERVAL=1) == {"E067"}
    assert ids(MAIL_ON_FAILURE="no") == {"E003"}
    assert (
        ids(
            MAIL_TO=["ops@example.com"],
            BASE_URL="https://example.com",
            PING_URL="https://hc-ping.com/abc",
            PING_TIMEOUT=2.5,
            MAX_BACKUP_AGE={"*": 86400, "media": None},
            MAX_VERIFY_AGE=7 * 86400,
            SCHEDULES={"n": {"task": BACKUP, "every": 60, "ping_url": "https://hc/x"}},
        )
        == set()
    )


def test_deploy_check_warns_when_failure_mail_goes_to_nobody(
    settings: Any, drc_config: Any
) -> None:
    from django.core import checks

    def deploy_ids() -> list[str]:
        return [
            m.id
            for m in checks.run_checks(
                include_deployment_checks=True, tags=["django_rclone_celery"]
            )
        ]

    settings.ADMINS = []
    assert "django_rclone_celery.W060" in deploy_ids()
    assert "django_rclone_celery.W060" not in [
        m.id for m in checks.run_checks(tags=["django_rclone_celery"])
    ]
    drc_config(MAIL_TO=["ops@example.com"])
    assert "django_rclone_celery.W060" not in deploy_ids()
    drc_config(MAIL_TO=None, MAIL_ON_FAILURE=False)
    assert "django_rclone_celery.W060" not in deploy_ids()
    drc_config(MAIL_ON_FAILURE=True)
    settings.ADMINS = [("Ops", "ops@example.com")]
    assert "django_rclone_celery.W060" not in deploy_ids()


def test_redacted_ping_urls_keep_no_token() -> None:
    cases = {
        f"https://hc-ping.com/{PING_TOKEN}/start": "https://hc-ping.com/***/start",
        "https://user:pa55@checks.example.com:8443/ping/k3y?token=abc": (
            "https://***@checks.example.com:8443/ping/***?***"
        ),
        "http://127.0.0.1:9/api/push/Xy12abcDEF?status=up": "http://127.0.0.1:9/api/push/***?***",
        "https://hc-ping.com/fqOOd6-F4MMNuCEnzTU01w/nightly-db": (
            "https://hc-ping.com/***/nightly-db"
        ),
    }
    for url, logged in cases.items():
        assert notify.redact_url(url) == logged
    assert notify.ping_url("https://h/p?rid=1", "fail") == "https://h/p/fail?rid=1"
    assert notify.ping_url("https://h/p/", "start") == "https://h/p/start"
    assert notify.ping_url("https://h/p", "success") == "https://h/p"


# -- failure mail and pings from a real worker ----------------------------------------------


def test_worker_runs_ping_and_a_failed_run_mails_once(
    task_app: Any,
    workers: Any,
    remote_dir: Path,
    drc_config: Any,
    mailbox: Mailbox,
    pings: Pings,
) -> None:
    """Success: start + success pings, no mail. Failure: start + fail pings, one mail.
    The global PING_URL answers only after the 0.5 s timeout: the runs still succeed,
    and the worker log shows it redacted."""
    populate("pg")
    drc_config(
        MAIL_TO=["ops@example.com"],
        BASE_URL="https://backups.example.com",
        PING_URL=pings.url(f"/slow/{PING_TOKEN}?key={PING_TOKEN}"),
        PING_TIMEOUT=0.5,
    )
    worker = workers.start(settings=mailbox.settings())

    ok = task_app.send_task(BACKUP, kwargs={"database": "pg"}).get(timeout=120)
    assert ok["status"] == "succeeded"
    wait_for(lambda: len(pings.seen) >= 2, what="two pings", pool=workers)
    assert pings.paths() == [
        f"/slow/{PING_TOKEN}/start?key={PING_TOKEN}",
        *[f"/slow/{PING_TOKEN}?key={PING_TOKEN}"],
    ]
    assert mailbox.messages == []

    name = ok["name"]
    for path in (remote_dir / "db").iterdir():  # the backup disappears from the remote
        path.unlink()
    failed = task_app.send_task(RESTORE, kwargs={"database": "pg", "input_path": name})
    with pytest.raises(Exception) as caught:
        failed.get(timeout=120)
    assert type(caught.value).__name__ == "BackupNotFound"
    wait_for(lambda: mailbox.messages, what="the failure mail", pool=workers)
    wait_for(lambda: len(pings.seen) >= 4, what="four pings", pool=workers)
    time.sleep(1)  # anything more would have come by now
    run = BackupRun.objects.get(task_id=failed.id)
    [mail] = mailbox.messages
    assert mail["To"] == "ops@example.com"
    assert mail["Subject"] == "[test] db_restore of database 'pg' failed"
    text = body(mail)
    assert "Operation: db_restore" in text
    assert "Database:  pg" in text
    assert f"Stage:     {run.stage}" in text
    assert run.stage
    assert f"Error:     BackupNotFound: backup {name!r} does not exist" in text
    link = f"https://backups.example.com/admin/django_rclone_celery/backuprun/{run.pk}/change/"
    assert f"Run:       {link}" in text
    assert Client().get(link.removeprefix("https://backups.example.com")).status_code == 302

    assert pings.paths()[2:] == [
        f"/slow/{PING_TOKEN}/start?key={PING_TOKEN}",
        f"/slow/{PING_TOKEN}/fail?key={PING_TOKEN}",
    ]
    assert "BackupNotFound" in pings.seen[3][1]
    assert pings.methods == {"POST"}
    log = worker.log()
    assert "health-check ping http://127.0.0.1:" in log
    assert "/slow/***/fail?*** failed: TimeoutError: timed out" in log
    assert PING_TOKEN not in log


def test_an_in_process_command_that_fails_mails_once_and_pings(
    remote_dir: Path, drc_config: Any, mailbox: Mailbox, pings: Pings
) -> None:
    """manage.py without a worker goes through the same run guard: one mail, start + fail."""
    populate("pg")
    drc_config(MAIL_TO=["ops@example.com"], PING_URL=pings.url("/check"))
    call_command("dbbackup", "-d", "pg", verbosity=0)
    assert pings.paths() == ["/check/start", "/check"]
    assert mailbox.messages == []

    with pytest.raises(CommandError, match="does not exist"):
        call_command("dbrestore", "-d", "pg", "--noinput", "-i", "pg-2000-01-01-000000.dump.zst")
    run = BackupRun.objects.filter(operation="db_restore").latest("created")
    assert run.status == "failed"
    assert run.worker  # recorded like any run: host and pid
    [mail] = mailbox.messages
    assert mail["Subject"] == "[test] db_restore of database 'pg' failed"
    assert "Operation: db_restore" in body(mail)
    assert pings.paths()[2:] == ["/check/start", "/check/fail"]


def test_transient_retries_mail_once_for_the_final_failure(
    task_app: Any,
    workers: Any,
    drc_config: Any,
    mailbox: Mailbox,
    pings: Pings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three attempts (TASK_MAX_RETRIES=2): three start pings, one fail ping, one mail."""
    populate("pg")
    for key, value in {
        "TYPE": "s3",
        "PROVIDER": "Other",
        "ENV_AUTH": "false",
        "ACCESS_KEY_ID": "x",
        "SECRET_ACCESS_KEY": "y",
        "ENDPOINT": f"http://127.0.0.1:{free_port()}",
    }.items():
        monkeypatch.setenv(f"RCLONE_CONFIG_DEAD_{key}", value)
    drc_config(
        REMOTE="dead:bucket/backups",
        RCLONE_FLAGS=["--retries", "1", "--low-level-retries", "1", "--contimeout", "1s"],
        PING_URL=pings.url("/hc/check"),
        MAIL_TO=["ops@example.com"],
    )
    workers.start(
        annotations={BACKUP: {"retry_backoff": 1, "retry_backoff_max": 2}},
        settings=mailbox.settings(),
    )
    result = task_app.send_task(BACKUP, kwargs={"database": "pg"})
    with pytest.raises(Exception, match="connection refused"):
        result.get(timeout=120)
    wait_for(lambda: mailbox.messages, what="the failure mail", pool=workers)
    time.sleep(1)
    assert BackupRun.objects.get(task_id=result.id).attempts == 3
    assert pings.paths() == ["/hc/check/start"] * 3 + ["/hc/check/fail"]
    [mail] = mailbox.messages
    assert "Attempts:  3" in body(mail)


class FlakyProxy:
    """A TCP proxy on loopback: while ``broken``, it hangs up on every connection
    (rclone sees a transient error); then it forwards to ``upstream``."""

    def __init__(self, upstream: int) -> None:
        import socket

        self.upstream = upstream
        self.broken = True
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.broken:
                conn.close()
                continue
            back = socket.create_connection(("127.0.0.1", self.upstream))
            for a, b in ((conn, back), (back, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(2)

    def close(self) -> None:
        self.listener.close()


def test_a_retry_that_succeeds_mails_nobody(
    task_app: Any,
    workers: Any,
    s3_remote: Any,
    drc_config: Any,
    mailbox: Mailbox,
    pings: Pings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first attempt meets a dead S3 endpoint, the retry reaches moto: no mail,
    two start pings and one success ping."""
    populate("pg")
    proxy = FlakyProxy(int(s3_remote.s3.endpoint.rsplit(":", 1)[1]))
    for key in ("TYPE", "PROVIDER", "ENV_AUTH", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "REGION"):
        monkeypatch.setenv(f"RCLONE_CONFIG_FLAKY_{key}", os.environ[f"RCLONE_CONFIG_MOTO_{key}"])
    monkeypatch.setenv("RCLONE_CONFIG_FLAKY_FORCE_PATH_STYLE", "true")
    monkeypatch.setenv("RCLONE_CONFIG_FLAKY_ENDPOINT", f"http://127.0.0.1:{proxy.port}")
    drc_config(
        REMOTE=f"flaky:{s3_remote.bucket}/backups",
        RCLONE_FLAGS=["--retries", "1", "--low-level-retries", "1", "--contimeout", "1s"],
        PING_URL=pings.url("/hc/check"),
        MAIL_TO=["ops@example.com"],
    )
    try:
        # No jitter: the retry comes 2 s after the first failure, time to mend the proxy.
        workers.start(
            annotations={BACKUP: {"retry_backoff": 2, "retry_jitter": False}},
            settings=mailbox.settings(),
        )
        result = task_app.send_task(BACKUP, kwargs={"database": "pg"})
        wait_for(
            lambda: BackupRun.objects.filter(task_id=result.id, status="failed").exists(),
            what="the first attempt's failure",
            interval=0.05,
            pool=workers,
        )
        proxy.broken = False
        assert result.get(timeout=120)["status"] == "succeeded"
    finally:
        proxy.close()
    assert BackupRun.objects.get(task_id=result.id).attempts == 2
    wait_for(lambda: len(pings.seen) >= 3, what="three pings", pool=workers)
    time.sleep(1)
    assert pings.paths() == ["/hc/check/start", "/hc/check/start", "/hc/check"]
    assert mailbox.messages == []


def test_a_run_whose_worker_died_is_mailed_when_the_next_run_finds_it(
    task_app: Any,
    workers: Any,
    remote_dir: Path,
    drc_config: Any,
    mailbox: Mailbox,
    pings: Pings,
) -> None:
    """A restore's pool process is killed: its row stays "running", nobody is told.
    The next run on the database takes the lease, marks it failed, and mails it."""
    from django_rclone_celery.operations import backup_database
    from tests.helpers.databases import make_big_table
    from tests.helpers.tasks import SLOW_STREAM

    make_big_table("pg", "drc_big", 20_000)
    drc_config(COMPRESSION="none")
    backup_database("pg")
    drc_config(**SLOW_STREAM, MAIL_TO=["ops@example.com"], PING_URL=pings.url("/hc/c"))
    worker = workers.start(settings=mailbox.settings())
    result = task_app.send_task(RESTORE, kwargs={"database": "pg"})
    wait_for(
        lambda: BackupRun.objects.filter(
            task_id=result.id, stage="restore", bytes_done__gt=0
        ).exists(),
        what="the restore streaming",
        pool=workers,
    )
    [child] = worker.pool_children()
    os.kill(child, signal.SIGKILL)
    with pytest.raises(Exception, match="Worker"):
        result.get(timeout=60)
    assert mailbox.messages == []  # nothing could tell yet
    cleanup = task_app.send_task("django_rclone_celery.db_cleanup", kwargs={"database": "pg"})
    assert cleanup.get(timeout=120)["status"] == "succeeded"
    wait_for(lambda: mailbox.messages, what="the mail about the dead run", pool=workers)
    time.sleep(1)
    [mail] = mailbox.messages
    assert mail["Subject"] == "[test] db_restore of database 'pg' failed"
    assert "Error:     abandoned: its worker died" in body(mail)
    assert pings.paths() == ["/hc/c/start", "/hc/c/start", "/hc/c/fail", "/hc/c"]


def test_failure_mail_holds_no_password_and_can_be_turned_off(
    mailbox: Mailbox, drc_config: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Django's mail settings to ADMINS; database passwords and URL
    credentials are scrubbed even from a recorded error that holds them."""
    monkeypatch.setitem(connections.settings["pg"], "PASSWORD", PASSWORD)
    settings.EMAIL_HOST_PASSWORD = "smtp-Secret-42"  # no EMAIL_HOST_USER: no SMTP login
    settings.ADMINS = [("Ops", "ops@example.com"), ("Dev", "dev@example.com")]
    now = timezone.now()
    row = BackupRun.objects.create(
        operation="db_backup",
        database="pg",
        slot="task:t1",
        task_id="t1",
        status="failed",
        stage="dump",
        attempts=1,
        started=now,
        finished=now,
        error=f"ProcessError: pg_dump said password {PASSWORD} for "
        f"postgresql://app:{PASSWORD}@db/app was wrong (smtp-Secret-42)\nsecond line",
    )
    assert notify.mail_failure(row)
    [mail] = mailbox.messages
    assert mail["To"] == "ops@example.com, dev@example.com"
    text = body(mail)
    assert PASSWORD not in text
    assert "smtp-Secret-42" not in text
    assert "postgresql://***@db/app" in text
    assert "second line" not in text  # the error in one line
    assert "Run:       #" in text  # no BASE_URL, no Sites framework: the run's id
    drc_config(MAIL_ON_FAILURE=False)
    assert not notify.mail_failure(row)
    assert len(mailbox.messages) == 1


def test_failure_mail_links_through_the_sites_framework_without_base_url(
    mailbox: Mailbox, settings: Any
) -> None:
    from django.db import connection

    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django.contrib.sites"]
    settings.SITE_ID = 1
    settings.ADMINS = [("Ops", "ops@example.com")]
    from django.contrib.sites.models import Site

    with connection.schema_editor() as editor:
        editor.create_model(Site)
    try:
        Site.objects.update_or_create(pk=1, defaults={"domain": "shop.example.com"})
        Site.objects.clear_cache()
        row = _run("db_backup", "default", timezone.now(), status="failed", error="E: x")
        assert notify.mail_failure(row)
        link = f"https://shop.example.com/admin/django_rclone_celery/backuprun/{row.pk}/change/"
        assert f"Run:       {link}" in body(mailbox.messages[0])
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Site)
        # Installing the app re-ran the admin's autodiscovery, which registered Site.
        from django.contrib import admin

        if admin.site.is_registered(Site):
            admin.site.unregister(Site)


# -- the watchdog, run by a real beat and worker -----------------------------------------------


def _start_beat(workers: Any, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "beat.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "beat",
            "-S",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--loglevel=INFO",
            "--max-interval=1",
        ],
        cwd=ROOT,
        env=workers.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_watchdog_alerts_once_when_backups_stop_and_once_on_recovery(
    task_app: Any,
    workers: Any,
    remote_dir: Path,
    drc_config: Any,
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    """No backup schedule runs (its beat is "stopped"); the watchdog's does, every 2 s."""
    from django_rclone_celery.schedules import sync_periodic_tasks

    populate("pg")
    drc_config(MAX_BACKUP_AGE={"pg": 6}, WATCHDOG_INTERVAL=2, MAIL_TO=["ops@example.com"])
    report = sync_periodic_tasks()
    assert report.created == ["watchdog"]
    workers.start(settings=mailbox.settings())
    first = task_app.send_task(BACKUP, kwargs={"database": "pg"}).get(timeout=120)
    assert first["status"] == "succeeded"
    beat = _start_beat(workers, tmp_path)
    try:

        def overdue() -> list[dict[str, Any]]:
            return [s for s in workers.signals() if s["signal"] == "backup_overdue"]

        wait_for(overdue, timeout=60, what="the overdue alert", pool=workers)
        [alert] = overdue()
        assert (alert["target"], alert["database"], alert["kind"]) == ("pg", "pg", "backup")
        assert alert["recovered"] is False
        assert alert["limit"] == 6
        assert alert["age"] > 6
        assert Watch.objects.get(target="pg", kind="backup").overdue
        ticks = (tmp_path / "beat.log").read_text().count("django_rclone_celery.watchdog")
        wait_for(
            lambda: (
                (tmp_path / "beat.log").read_text().count("django_rclone_celery.watchdog")
                >= ticks + 3
            ),
            timeout=30,
            what="three more watchdog ticks",
            pool=workers,
        )
        assert len(overdue()) == 1  # once per incident, not per tick

        again = task_app.send_task(BACKUP, kwargs={"database": "pg"}).get(timeout=120)
        assert again["status"] == "succeeded"
        wait_for(lambda: len(overdue()) == 2, timeout=30, what="the recovery", pool=workers)
        recovered = overdue()[1]
        assert recovered["recovered"] is True
        assert recovered["age"] < 6
        wait_for(lambda: len(mailbox.messages) == 2, timeout=10, what="two mails", pool=workers)
        subjects = [m["Subject"] for m in mailbox.messages]
        assert subjects == [
            "[test] backup of database 'pg' overdue",
            "[test] backup of database 'pg' recovered",
        ]
        assert "has no successful backup" not in body(mailbox.messages[0])
        assert "the newest successful backup is" in body(mailbox.messages[0])
    finally:
        _stop(beat)
    assert not Watch.objects.get(target="pg", kind="backup").overdue


def test_watchdog_state_changes_only_once_per_incident(
    drc_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The alert fires on the change only, whoever runs the watchdog and how often."""
    drc_config(MAX_BACKUP_AGE={"pg": 60}, MAX_VERIFY_AGE={"pg": 60})
    old = timezone.now() - timedelta(seconds=120)
    _run("db_backup", "pg", old)
    with caplog.at_level("WARNING", logger="django_rclone_celery"):
        alerts = watch()
    assert "backup watchdog: database 'pg' has no successful restore drill (limit 60 s)" in (
        caplog.text
    )
    assert [(a.target, a.kind, a.recovered, a.age is None) for a in alerts] == [
        ("pg", "backup", False, False),
        ("pg", "verify", False, True),  # never drilled
    ]
    assert watch() == []
    assert watch() == []
    _run("db_verify", "pg", timezone.now(), result={"restored": True})
    assert [(a.kind, a.recovered) for a in watch()] == [("verify", True)]
    assert watch() == []


def test_the_watchdog_schedule_comes_with_a_limit_and_yields_to_one_of_yours(
    drc_config: Any,
) -> None:
    from django_rclone_celery.schedules import load_specs

    def watchdogs() -> list[tuple[str, str, int | None]]:
        return [(s.name, s.task, s.every) for s in load_specs() if s.name == "watchdog"]

    assert watchdogs() == []  # no limit, no watchdog
    drc_config(MAX_VERIFY_AGE=86400, WATCHDOG_INTERVAL=120)
    assert watchdogs() == [("watchdog", "django_rclone_celery.watchdog", 120)]
    drc_config(
        SCHEDULES={"watchdog": {"task": "django_rclone_celery.watchdog", "every": 60}},
    )
    assert watchdogs() == [("watchdog", "django_rclone_celery.watchdog", 60)]


# -- backupstatus --------------------------------------------------------------------------------


def _run(
    operation: str,
    database: str,
    finished: Any,
    *,
    status: str = "succeeded",
    size: int | None = 1234,
    error: str = "",
    result: dict[str, Any] | None = None,
) -> BackupRun:
    """A finished run as the ledger records it, at a chosen time."""
    import uuid

    task_id = uuid.uuid4().hex
    return BackupRun.objects.create(
        operation=operation,
        database=database,
        slot=f"task:{task_id}",
        task_id=task_id,
        status=status,
        attempts=1,
        started=finished - timedelta(seconds=3),
        finished=finished,
        size=size if status == "succeeded" else None,
        error=error,
        result=result,
    )


def _status_json(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    try:
        call_command("backupstatus", "--json")
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(capsys.readouterr().out)


def test_backupstatus_exit_status_and_json_fields(
    drc_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    drc_config(MAX_BACKUP_AGE={"*": 3600, "media": None}, MAX_VERIFY_AGE={"pg": 86400})
    now = timezone.now()
    for alias in ("default", "gis", "maria"):
        _run("db_backup", alias, now - timedelta(minutes=5))
    backup = _run("db_backup", "pg", now - timedelta(minutes=10), size=4096)
    drill = _run("db_verify", "pg", now - timedelta(minutes=8), result={"restored": True})
    _run("db_verify", "pg", now - timedelta(minutes=7), result={"restored": False})

    code, data = _status_json(capsys)
    assert code == 0
    assert data["ok"] is True
    by_target = {t["target"]: t for t in data["targets"]}
    assert list(by_target) == [*connections.settings, "media"]
    pg = by_target["pg"]
    assert set(pg) == {
        "target",
        "state",
        "ok",
        "last_backup",
        "last_verified",
        "last_restore",
        "last_failure",
        "max_backup_age",
        "max_verify_age",
        "backup_fresh",
        "verify_fresh",
        "failing",
    }
    assert pg["last_backup"]["run"] == backup.pk
    assert pg["last_backup"]["size"] == 4096
    assert 590 < pg["last_backup"]["age"] < 700
    assert pg["last_verified"]["run"] == drill.pk  # a verify without --restore is no drill
    assert (pg["max_backup_age"], pg["max_verify_age"]) == (3600, 86400)
    assert (pg["state"], pg["failing"], pg["last_failure"]) == ("ok", False, None)
    assert by_target["media"]["max_backup_age"] is None  # turned off for media

    # A failed backup after the last success: failing, exit 2.
    _run("db_backup", "pg", now - timedelta(minutes=1), status="failed", error="RcloneError: x\ny")
    code, data = _status_json(capsys)
    assert code == 2
    pg = {t["target"]: t for t in data["targets"]}["pg"]
    assert (pg["state"], pg["failing"], pg["last_failure"]["error"]) == (
        "failing",
        True,
        "RcloneError: x",
    )
    # A newer success clears "failing"; then an old backup makes it late.
    _run("db_backup", "pg", now)
    assert _status_json(capsys)[0] == 0
    drc_config(MAX_BACKUP_AGE={"*": 3600, "media": None}, MAX_VERIFY_AGE={"pg": 60})
    code, data = _status_json(capsys)
    assert code == 2
    pg = {t["target"]: t for t in data["targets"]}["pg"]
    assert (pg["state"], pg["backup_fresh"], pg["verify_fresh"]) == ("late", True, False)


def test_backupstatus_text_and_one_line_on_stderr(drc_config: Any) -> None:
    from django.conf import settings as django_settings

    drc_config(MAX_BACKUP_AGE={"pg": 3600})
    # manage.py in its own process, on this test's databases (tests.worker_settings).
    config = {
        "databases": {alias: connections[alias].settings_dict["NAME"] for alias in connections},
        "django_rclone": dict(django_settings.DJANGO_RCLONE),
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "DRC_WORKER_CONFIG": json.dumps(config),
        "PYTHONPATH": str(ROOT),
    }

    def backupstatus() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", "backupstatus"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    proc = backupstatus()
    assert proc.returncode == 2, proc.stderr
    assert "pg: late" in proc.stdout
    assert "backup:   never, limit 1.0 h" in proc.stdout
    assert proc.stderr.strip().splitlines() == ["CommandError: not fresh: pg (late)"]
    _run("db_backup", "pg", timezone.now())
    proc = backupstatus()
    assert proc.returncode == 0, proc.stderr
    assert "pg: ok" in proc.stdout
    assert proc.stderr == ""
    # A ledger that cannot be read: status 1 and one line, no traceback.
    config["databases"]["default"] = "/nonexistent-drc-dir/ledger.sqlite3"
    env["DRC_WORKER_CONFIG"] = json.dumps(config)
    proc = backupstatus()
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "CommandError: cannot read the run history: unable to open database file"
    ]


# -- metrics and the admin -----------------------------------------------------------------------


def _families(text: str) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.mark.parametrize("with_client", [True, False], ids=["prometheus_client", "fallback"])
def test_metrics_view_is_valid_prometheus_text(
    with_client: bool, drc_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    drc_config(MAX_BACKUP_AGE={"pg": 3600, "media": 60})
    monkeypatch.setitem(connections.settings["pg"], "PASSWORD", PASSWORD)
    now = timezone.now()
    backup = _run("db_backup", "pg", now - timedelta(minutes=2), size=5_000_000)
    drill = _run("db_verify", "pg", now - timedelta(minutes=1), result={"restored": True})
    _run("db_backup", "pg", now - timedelta(hours=3), status="failed", error=f"x {PASSWORD}")
    _run("media_backup", "", now - timedelta(hours=2), status="failed", error="y")
    if not with_client:
        monkeypatch.setitem(sys.modules, "prometheus_client", None)  # not installed
    response = Client().get("/metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert PASSWORD not in text
    found = _families(text)
    p = "django_rclone_celery_"

    def value(name: str, **labels: str) -> float:
        family = found[p + name.removesuffix("_total")]
        [sample] = [s for s in family.samples if s.name == p + name and s.labels == labels]
        return float(sample.value)

    assert value("last_backup_timestamp_seconds", target="pg") == pytest.approx(
        backup.finished.timestamp()
    )
    assert value("last_backup_size_bytes", target="pg") == 5_000_000
    assert value("last_backup_duration_seconds", target="pg") == 3
    assert value("last_verify_timestamp_seconds", target="pg") == pytest.approx(
        drill.finished.timestamp()
    )
    assert value("time_to_restore_seconds", target="pg") == 3
    assert found[p + "failures"].type == "counter"
    assert value("failures_total", target="pg", operation="db_backup") == 1
    assert value("failures_total", target="media", operation="media_backup") == 1
    assert value("fresh", target="pg", kind="backup") == 1
    assert value("fresh", target="media", kind="backup") == 0
    assert value("max_age_seconds", target="pg", kind="backup") == 3600
    assert value("ok", target="pg") == 1
    assert value("ok", target="media") == 0  # its newest backup failed
    assert not [
        s
        for s in found[p + "last_backup_timestamp_seconds"].samples
        if s.labels == {"target": "maria"}
    ]  # never backed up: no sample, not a zero


def test_admin_list_opens_with_the_summary_and_shows_errors(drc_config: Any) -> None:
    from django.contrib.auth.models import User

    drc_config(MAX_BACKUP_AGE={"pg": 60, "default": 3600})
    now = timezone.now()
    _run("db_backup", "pg", now - timedelta(hours=1))
    _run("db_backup", "default", now - timedelta(minutes=1))
    _run("media_backup", "", now, status="failed", error="RcloneError: rclone exited 3\nmore")
    client = Client()
    client.force_login(User.objects.create_superuser("root", "r@example.com", "x"))
    response = client.get("/admin/django_rclone_celery/backuprun/")
    assert response.status_code == 200
    page = response.content.decode()
    summary = page.split('id="drc-freshness"', 1)[1].split("</table>", 1)[0]
    rows = {
        target: summary.split(f'<th scope="row">{target}</th>', 1)[1].split("</tr>", 1)[0]
        for target in ("default", "pg", "media")
    }
    assert "● green" in rows["default"]
    assert "● late" in rows["pg"]
    assert "● failing" in rows["media"]
    assert "media_backup: RcloneError: rclone exited 3" in rows["media"]
    assert '<td class="field-error_display">RcloneError: rclone exited 3</td>' in page
    assert [s.state for s in status() if s.target in ("default", "pg", "media")] == [
        "ok",
        "late",
        "failing",
    ]


# -- the docs' recipes ---------------------------------------------------------------------------

DOCS = ROOT / "docs"


def test_metrics_urls_example_serves_the_metrics(settings: Any) -> None:
    import runpy
    import types

    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.urls import clear_url_caches, path

    module = types.ModuleType("metrics_urls_example")
    module.__dict__.update(runpy.run_path(str(DOCS / "examples" / "metrics_urls.py")))
    # A project's URLconf has the admin too (staff_member_required logs in there).
    module.urlpatterns.append(path("admin/", admin.site.urls))
    settings.ROOT_URLCONF = module
    clear_url_caches()
    try:
        open_view = Client().get("/backups/metrics")
        assert open_view.status_code == 200
        assert "django_rclone_celery_ok{" in open_view.content.decode()
        assert Client().get("/backups/metrics-staff").status_code == 302  # to the login page
        staff = Client()
        staff.force_login(User.objects.create_user("s", password="x", is_staff=True))
        assert staff.get("/backups/metrics-staff").status_code == 200
    finally:
        clear_url_caches()


def test_alert_rules_in_the_docs_parse_and_name_served_metrics() -> None:
    import re

    import yaml

    from django_rclone_celery.views import PREFIX, families

    served = set()
    for family in families():
        served.add(PREFIX + family.name + ("_total" if family.type == "counter" else ""))
    text = (DOCS / "monitoring.md").read_text()
    [block] = re.findall(r"```yaml\n(.*?)```", text, re.S)
    rules = yaml.safe_load(block)["groups"][0]["rules"]
    assert len(rules) == 5
    named = set(re.findall(r"django_rclone_celery_\w+", block))
    assert named
    assert named <= served, named - served
    documented = set(re.findall(r"`(django_rclone_celery_\w+)`", text))
    assert documented == served
