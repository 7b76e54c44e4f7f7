"""How a command reports a failure: one line, never a traceback."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from django.db import OperationalError

from django_rclone_celery.exceptions import BackupNotFound
from django_rclone_celery.management.base import OperationCommand


def fails_with(exc: BaseException) -> None:
    raise exc


def test_an_error_of_ours_is_its_message() -> None:
    with pytest.raises(CommandError, match=r"^no backup named 'x'$"):
        OperationCommand().run_operation(fails_with, exc=BackupNotFound("no backup named 'x'"))


def test_a_database_error_is_one_line() -> None:
    exc = OperationalError("attempt to write a readonly database\nsecond line")
    with pytest.raises(CommandError) as raised:
        OperationCommand().run_operation(fails_with, exc=exc)
    assert str(raised.value) == "database error: attempt to write a readonly database"


def test_anything_else_is_not_hidden() -> None:
    with pytest.raises(ZeroDivisionError):
        OperationCommand().run_operation(fails_with, exc=ZeroDivisionError())
