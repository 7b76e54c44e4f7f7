"""PyMySQL stands in for mysqlclient, so the ``mysql`` extra works as installed.

The extra installs PyMySQL (pure Python: no compiler, no libmysqlclient), but
Django's MySQL backend imports mysqlclient's module, ``MySQLdb``, and fails
without it. When a MySQL/MariaDB database is configured and mysqlclient is
absent, PyMySQL is installed under that name. This runs when Django creates
this app's config: after the settings are read, before any app's models are
imported (defining a model already loads the database backend).
"""

from __future__ import annotations

import importlib.util

from django.conf import settings


def use_pymysql() -> bool:
    """Install PyMySQL as ``MySQLdb`` if needed; True if it was."""
    databases = getattr(settings, "DATABASES", {}) or {}
    if not any("mysql" in str(db.get("ENGINE", "")) for db in databases.values()):
        return False
    if importlib.util.find_spec("MySQLdb") is not None:
        return False  # mysqlclient (or a project's own install_as_MySQLdb) wins
    try:
        import pymysql
    except ImportError:
        return False  # neither driver: Django's own error names mysqlclient
    pymysql.install_as_MySQLdb()
    return True
