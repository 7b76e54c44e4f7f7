"""The run history in the admin, and buttons that queue runs.

The changelist lists runs (read-only). Runs are started from a small page,
"Start a run" (pick a database, press "Back up now", "Clean up", "Media
backup" or "Restore…"), or by actions on selected runs, which repeat them for
the same databases. Every run is queued after the request's transaction
commits and the task id is reported at once. Restores need the
``run_restore`` permission and go through a confirmation page that names the
database being overwritten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connections, router
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from .conf import get_settings
from .drills import drill_status
from .enqueue import enqueue_on_commit
from .exceptions import DjangoRcloneCeleryError
from .management.base import human_size
from .models import BackupRun, Operation, Status
from .monitoring import MEDIA, first_line, status
from .operations.restore import resolve_backup
from .registry import OPERATIONS

LABELS = {op.name: op.label for op in OPERATIONS}

POSTGRES_VENDOR = "postgresql"


def _backup_name(run: BackupRun) -> str:
    return str((run.result or {}).get("name") or run.path.rsplit("/", 1)[-1])


def copy_name(alias: str) -> str:
    """A fresh local copy name for ``alias``'s database, like pgclone's ``:name`` keys."""
    from django.utils import timezone

    base = str(connections.settings[alias].get("NAME") or alias)
    stamp = timezone.now().strftime("%Y%m%d%H%M%S")
    return f"{base[:40]}_copy_{stamp}"


def describe_database(alias: str) -> str:
    """What an alias points at, for a human about to overwrite it (never the password)."""
    conf = connections.settings[alias]
    vendor = connections[alias].display_name
    where = conf.get("HOST") or ""
    if where and conf.get("PORT"):
        where += f":{conf['PORT']}"
    return f"{vendor} database {conf.get('NAME')!s}" + (f" on {where}" if where else "")


class StartRunForm(forms.Form):
    database = forms.ChoiceField(label="Database")
    keep = forms.IntegerField(
        label="Keep (clean up)",
        min_value=1,
        required=False,
        help_text="How many of the newest backups 'Clean up' keeps.",
    )
    copy_as = forms.RegexField(
        label="Copy name (pgclone copy)",
        regex=r"^[A-Za-z0-9_]{1,63}$",
        required=False,
        help_text="PostgreSQL only: 'Copy now' makes a local copy that 'pgclone restore "
        ":name' brings back. Empty: a dated name.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["database"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(alias, alias) for alias in connections.settings]
        self.fields["keep"].initial = get_settings().db_cleanup_keep


class RestoreConfirmForm(forms.Form):
    database = forms.CharField(widget=forms.HiddenInput)
    input_path = forms.CharField(widget=forms.HiddenInput)
    confirm = forms.CharField(label="Type the database alias to confirm", required=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("confirm") and data.get("confirm") != data.get("database"):
            raise forms.ValidationError("The alias typed does not match the database.")
        return data


if TYPE_CHECKING:
    RunAdminBase = admin.ModelAdmin[BackupRun]
else:  # ModelAdmin is generic only in the stubs
    RunAdminBase = admin.ModelAdmin


@admin.register(BackupRun)
class BackupRunAdmin(RunAdminBase):
    list_display = (
        "created",
        "operation",
        "database",
        "status",
        "stage",
        "error_display",
        "progress",
        "size_display",
        "duration_display",
        "restore_time",
        "task_id",
    )
    list_filter = ("status", "operation", "database")
    search_fields = ("task_id", "database", "path", "slot")
    date_hierarchy = "created"
    change_list_template = "admin/django_rclone_celery/backuprun/change_list.html"
    actions = [
        "backup_now",
        "media_backup",
        "clean_up",
        "copy_now",
        "verify_backups",
        "restore_backup",
    ]

    # --- read-only history -----------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: BackupRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: BackupRun | None = None) -> bool:
        return False

    def has_backup_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.run_backup")

    def has_restore_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.run_restore")

    @admin.display(description="progress")
    def progress(self, run: BackupRun) -> str:
        if run.status != "running" or not run.bytes_done:
            return ""
        text = human_size(run.bytes_done)
        if run.bytes_total:
            text += f" / {human_size(run.bytes_total)}"
        return text

    @admin.display(description="error")
    def error_display(self, run: BackupRun) -> str:
        """A failed run's error, its first line (the full text is on the run's page)."""
        if run.status != Status.FAILED:
            return ""
        return first_line(run.error, limit=160)

    @admin.display(description="size", ordering="size")
    def size_display(self, run: BackupRun) -> str:
        return human_size(run.size) if run.size is not None else ""

    @admin.display(description="duration")
    def duration_display(self, run: BackupRun) -> str:
        seconds = run.duration
        if seconds is None:
            return ""
        minutes, secs = divmod(round(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

    @admin.display(description="time to restore")
    def restore_time(self, run: BackupRun) -> str:
        seconds = run.result.get("restore_seconds") if isinstance(run.result, dict) else None
        return f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else ""

    # --- queueing --------------------------------------------------------------------

    def queue(self, request: HttpRequest, operation: str, **kwargs: Any) -> str | None:
        """Queue one run after commit and tell the user its task id."""
        what = LABELS.get(operation, operation)
        target = f" of {kwargs['database']!r}" if kwargs.get("database") else ""
        try:
            task_id = enqueue_on_commit(operation, using=router.db_for_write(BackupRun), **kwargs)
        except DjangoRcloneCeleryError as exc:
            self.message_user(request, f"Could not queue the {what}{target}: {exc}", messages.ERROR)
            return None
        link = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        self.message_user(
            request,
            format_html(
                'Queued {}{} as task <a href="{}?{}">{}</a>.',
                what,
                target,
                link,
                urlencode({"q": task_id}),
                task_id,
            ),
            messages.SUCCESS,
        )
        return task_id

    @staticmethod
    def _databases(queryset: QuerySet[BackupRun]) -> list[str]:
        found = queryset.exclude(database="").values_list("database", flat=True).distinct()
        return sorted(alias for alias in found if alias in connections.settings)

    @admin.action(description="Back up now (the selected runs' databases)", permissions=["backup"])
    def backup_now(self, request: HttpRequest, queryset: QuerySet[BackupRun]) -> None:
        databases = self._databases(queryset)
        if not databases:
            self.message_user(request, "The selected runs name no database.", messages.WARNING)
        for alias in databases:
            self.queue(request, "db_backup", database=alias, clean=False)

    @admin.action(description="Media backup", permissions=["backup"])
    def media_backup(self, request: HttpRequest, queryset: QuerySet[BackupRun]) -> None:
        self.queue(request, "media_backup")

    @admin.action(
        description="Clean up old backups (the selected runs' databases)", permissions=["backup"]
    )
    def clean_up(self, request: HttpRequest, queryset: QuerySet[BackupRun]) -> None:
        keep = get_settings().db_cleanup_keep
        databases = self._databases(queryset)
        if not databases:
            self.message_user(request, "The selected runs name no database.", messages.WARNING)
        for alias in databases:
            self.queue(request, "db_cleanup", database=alias, keep=keep)

    def queue_copy(self, request: HttpRequest, alias: str, name: str | None = None) -> None:
        if connections[alias].vendor != POSTGRES_VENDOR:
            self.message_user(
                request, f"pgclone copy needs PostgreSQL; {alias!r} is not.", messages.WARNING
            )
            return
        self.queue(request, "pgclone_copy", database=alias, dump_key=f":{name or copy_name(alias)}")

    @admin.action(
        description="Copy now with pgclone (the selected runs' PostgreSQL databases)",
        permissions=["backup"],
    )
    def copy_now(self, request: HttpRequest, queryset: QuerySet[BackupRun]) -> None:
        databases = self._databases(queryset)
        if not databases:
            self.message_user(request, "The selected runs name no database.", messages.WARNING)
        for alias in databases:
            self.queue_copy(request, alias)

    @admin.action(description="Verify the selected backups", permissions=["backup"])
    def verify_backups(self, request: HttpRequest, queryset: QuerySet[BackupRun]) -> None:
        runs = queryset.filter(operation=Operation.DB_BACKUP, status=Status.SUCCEEDED)
        chosen = [run for run in runs if run.database in connections.settings]
        if not chosen:
            self.message_user(
                request, "Select succeeded database backups to verify.", messages.WARNING
            )
        for run in chosen:
            self.queue(request, "db_verify", database=run.database, input_path=_backup_name(run))

    @admin.action(description="Restore from the selected backup…", permissions=["restore"])
    def restore_backup(
        self, request: HttpRequest, queryset: QuerySet[BackupRun]
    ) -> HttpResponse | None:
        runs = list(queryset[:2])
        run = runs[0] if len(runs) == 1 else None
        if run is None or run.operation != Operation.DB_BACKUP or run.status != Status.SUCCEEDED:
            self.message_user(
                request, "Select exactly one succeeded database backup.", messages.WARNING
            )
            return None
        query = urlencode({"database": run.database, "input_path": _backup_name(run)})
        return HttpResponseRedirect(f"{self._url('restore')}?{query}")

    # --- pages -----------------------------------------------------------------------

    def _url(self, page: str) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{page}")

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("start/", self.admin_site.admin_view(self.start_view), name=f"{info}_start"),
            path("restore/", self.admin_site.admin_view(self.restore_view), name=f"{info}_restore"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {
            "can_start_runs": self.has_backup_permission(request)
            or self.has_restore_permission(request),
            "freshness": self._freshness(),
            "restore_drills": drill_status(),
        }
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    @staticmethod
    def _freshness() -> list[dict[str, Any]] | None:
        """The summary above the list: each target's state, newest backup and drill."""
        try:
            found = status()
        except (DjangoRcloneCeleryError, DatabaseError):
            return None  # the list itself still shows; backupstatus names the problem
        return [
            {
                "target": item.target,
                "state": item.state,
                "backup": item.last_backup,
                "verified": item.last_verified,
                "failure": item.last_failure,
                "is_media": item.target == MEDIA,
            }
            for item in found
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "changelist_url": self._url("changelist"),
            **extra,
        }

    def start_view(self, request: HttpRequest) -> HttpResponse:
        can_backup = self.has_backup_permission(request)
        can_restore = self.has_restore_permission(request)
        if not (can_backup or can_restore):
            raise PermissionDenied
        form = StartRunForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            run = request.POST.get("run", "")
            alias = form.cleaned_data["database"]
            if run == "db_restore":
                if not can_restore:
                    raise PermissionDenied
                return HttpResponseRedirect(
                    f"{self._url('restore')}?{urlencode({'database': alias})}"
                )
            if not can_backup:
                raise PermissionDenied
            if run == "db_backup":
                self.queue(request, "db_backup", database=alias, clean=False)
            elif run == "db_cleanup":
                keep = form.cleaned_data["keep"] or get_settings().db_cleanup_keep
                self.queue(request, "db_cleanup", database=alias, keep=keep)
            elif run == "media_backup":
                self.queue(request, "media_backup")
            elif run == "db_verify":
                self.queue(request, "db_verify", database=alias)
            elif run == "pgclone_copy":
                self.queue_copy(request, alias, form.cleaned_data["copy_as"] or None)
            else:
                self.message_user(request, f"Unknown run {run!r}.", messages.ERROR)
                return HttpResponseRedirect(self._url("start"))
            return HttpResponseRedirect(self._url("changelist"))
        context = self._context(
            request,
            "Start a run",
            form=form,
            can_backup=can_backup,
            can_restore=can_restore,
        )
        return TemplateResponse(request, "admin/django_rclone_celery/backuprun/start.html", context)

    def restore_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_restore_permission(request):
            raise PermissionDenied
        params = request.POST if request.method == "POST" else request.GET
        alias = params.get("database", "")
        if alias not in connections.settings:
            self.message_user(request, f"Unknown database {alias!r}.", messages.ERROR)
            return HttpResponseRedirect(self._url("start"))
        try:
            name, size = resolve_backup(alias, params.get("input_path") or None, get_settings())
        except DjangoRcloneCeleryError as exc:
            self.message_user(request, f"Cannot restore {alias!r}: {exc}", messages.ERROR)
            return HttpResponseRedirect(self._url("start"))
        form = RestoreConfirmForm(
            request.POST if request.method == "POST" else None,
            initial={"database": alias, "input_path": name},
        )
        if request.method == "POST" and form.is_valid():
            self.queue(request, "db_restore", database=alias, input_path=name)
            return HttpResponseRedirect(self._url("changelist"))
        context = self._context(
            request,
            f"Restore database {alias!r}?",
            form=form,
            database=alias,
            target=describe_database(alias),
            backup=name,
            size=human_size(size) if size is not None else None,
        )
        return TemplateResponse(
            request, "admin/django_rclone_celery/backuprun/restore_confirmation.html", context
        )
