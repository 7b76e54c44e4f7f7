"""The bookshop project. Importing the Celery app here makes every ``@shared_task``
bind to it as soon as Django starts (otherwise ``.delay()`` goes to a default app
that ignores the ``CELERY_*`` settings)."""

from __future__ import annotations

# --8<-- [start:import]
from .celery import app as celery_app

__all__ = ["celery_app"]
# --8<-- [end:import]
