from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DjangoRcloneCeleryConfig(AppConfig):
    name = "django_rclone_celery"
    verbose_name = "Backups"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name: str, app_module: Any) -> None:
        super().__init__(app_name, app_module)
        # Before any app's models are imported: defining a model already loads
        # the database backend, so ready() would be too late for PyMySQL.
        from .drivers import use_pymysql

        use_pymysql()

    def ready(self) -> None:
        from . import checks, conf  # noqa: F401  (registers the checks; settings reset)
        from .schedules import install_schedules

        post_migrate.connect(
            install_schedules, sender=self, dispatch_uid="django_rclone_celery.install_schedules"
        )
