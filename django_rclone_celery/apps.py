from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DjangoRcloneCeleryConfig(AppConfig):
    name = "django_rclone_celery"
    verbose_name = "Backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import celery_checks, checks, conf, preflight  # noqa: F401  (checks, settings reset)
        from .schedules import install_schedules

        post_migrate.connect(
            install_schedules, sender=self, dispatch_uid="django_rclone_celery.install_schedules"
        )
