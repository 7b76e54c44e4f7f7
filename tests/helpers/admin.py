"""The admin: logged-in staff clients and the "Queued ..." messages of its pages."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import Permission, User
from django.test import Client

START = "admin:django_rclone_celery_backuprun_start"
QUEUED = re.compile(r"Queued (.+?) as task <a href=\"[^\"]+\">([0-9a-f]{32})</a>\.")


def staff(username: str, *codenames: str) -> Client:
    user = User.objects.create_user(username, password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def queued(response: Any) -> list[tuple[str, str]]:
    """(what, task id) for every "Queued …" message on the page."""
    return [m for msg in response.context["messages"] for m in QUEUED.findall(str(msg))]
