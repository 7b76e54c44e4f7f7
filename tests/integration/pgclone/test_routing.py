"""pgclone's pure parts: keys, settings and option resolution, pg_restore error policy."""

from __future__ import annotations

import pytest
from django.db import connections

from django_rclone_celery.pgclone.hooks import routed

# Keys -------------------------------------------------------------------


# Settings -----------------------------------------------------------------


# Dump arguments -------------------------------------------------------------


# pg_restore errors ------------------------------------------------------------


# Hook routing --------------------------------------------------------------


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_routing_points_default_and_the_alias_at_the_target_only() -> None:
    live = connections["pg"].settings_dict["NAME"]
    default_wrapper = connections["default"]
    others = {alias: connections[alias].settings_dict["NAME"] for alias in ("gis", "maria")}
    with routed("pg", "postgres"):
        assert connections["pg"].settings_dict["NAME"] == "postgres"
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone()[0] == "postgres"
        with connections["pg"].cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone()[0] == "postgres"
        assert {a: connections[a].settings_dict["NAME"] for a in others} == others
    assert connections["default"] is default_wrapper
    assert connections["pg"].settings_dict["NAME"] == live
    assert connections.settings["pg"]["NAME"] == live
    with connections["pg"].cursor() as cursor:
        cursor.execute("SELECT current_database()")
        assert cursor.fetchone()[0] == live
