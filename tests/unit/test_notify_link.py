"""A failure mail's link to the run's admin page (``notify.run_link``).

Without the admin, without ``ROOT_URLCONF`` or with one that does not import,
the mail goes out without a link: building it never raises.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import clear_url_caches

from django_rclone_celery.conf import get_settings
from django_rclone_celery.models import BackupRun
from django_rclone_celery.notify import run_link


@pytest.fixture(autouse=True)
def fresh_resolver() -> Any:
    clear_url_caches()
    yield
    clear_url_caches()


def test_the_link_is_the_runs_admin_page_under_base_url(drc_config: Any) -> None:
    drc_config(BASE_URL="https://ops.example.com")
    link = run_link(BackupRun(pk=7), get_settings())
    assert link == "https://ops.example.com/admin/django_rclone_celery/backuprun/7/change/"


def test_no_root_urlconf_gives_no_link(settings: Any, drc_config: Any) -> None:
    drc_config(BASE_URL="https://ops.example.com")
    del settings.ROOT_URLCONF
    assert run_link(BackupRun(pk=7), get_settings()) is None


def test_a_urlconf_that_does_not_import_gives_no_link(settings: Any, drc_config: Any) -> None:
    drc_config(BASE_URL="https://ops.example.com")
    settings.ROOT_URLCONF = "tests.no_such_urls_module"
    assert run_link(BackupRun(pk=7), get_settings()) is None
