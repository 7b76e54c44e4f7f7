from __future__ import annotations

from django.apps import AppConfig


class DjangoRcloneCeleryConfig(AppConfig):
    name = "django_rclone_celery"
    verbose_name = "Backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, conf  # noqa: F401  (registers checks and the settings reset)
