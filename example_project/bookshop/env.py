"""Configuration from environment variables, with embedded defaults that need no server.

``DATABASE_URL`` picks the database (SQLite, PostgreSQL or MariaDB/MySQL),
``REDIS_URL`` the Celery broker, ``BACKUP_REMOTE`` the rclone remote. Unset, the
project runs on SQLite, a local-directory remote and kombu's filesystem broker,
all under ``BOOKSHOP_VAR`` (default: ``example_project/var/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("BOOKSHOP_VAR") or PROJECT_DIR / "var").resolve()
# Made here: the SQLite database lives in it whichever broker is configured.
VAR.mkdir(parents=True, exist_ok=True)

_ENGINES = {
    "sqlite": "django.db.backends.sqlite3",
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "postgis": "django.contrib.gis.db.backends.postgis",
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
}


def parse_database_url(url: str) -> dict[str, Any]:
    """A ``DATABASES`` entry from ``scheme://user:password@host:port/name``.

    ``sqlite:///relative.db`` and ``sqlite:////absolute.db`` are files.
    """
    parts = urlsplit(url)
    engine = _ENGINES.get(parts.scheme)
    if engine is None:
        raise ValueError(
            f"DATABASE_URL scheme {parts.scheme!r} is not one of {', '.join(sorted(_ENGINES))}"
        )
    if parts.scheme == "sqlite":
        name = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
        if not name:
            raise ValueError("DATABASE_URL sqlite:/// needs a file name")
        return {"ENGINE": engine, "NAME": name, "OPTIONS": {"timeout": 30}}
    config: dict[str, Any] = {
        "ENGINE": engine,
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
    if not config["NAME"]:
        raise ValueError("DATABASE_URL needs a database name after the last '/'")
    if engine.endswith("mysql"):
        config["OPTIONS"] = {"charset": "utf8mb4"}
    return config


def database() -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL")
    if url:
        return parse_database_url(url)
    return parse_database_url(f"sqlite:///{VAR / 'bookshop.sqlite3'}")


def celery() -> dict[str, Any]:
    """Broker and result backend: Redis when ``REDIS_URL`` is set, else files under VAR."""
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        # --8<-- [start:redis]
        # Longer than the longest task's hard time limit (TASK_TIME_LIMIT, 6 h 5 min),
        # or Redis hands a still-running backup to a second worker.
        options = {"visibility_timeout": 6 * 3600 + 600}
        return {
            "broker_url": redis_url,
            "result_backend": redis_url,
            "broker_transport_options": options,
            "result_backend_transport_options": options,
        }
        # --8<-- [end:redis]
    queue = VAR / "broker" / "queue"
    processed = VAR / "broker" / "processed"
    results = VAR / "broker" / "results"
    control = VAR / "broker" / "control"
    for folder in (queue, processed, results, control):
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": "filesystem://",
        # kombu's own filesystem transport can lose a message: see broker.py.
        "broker_transport": "bookshop.broker:Transport",
        "broker_transport_options": {
            # One folder for in and out: producer and worker share the queue.
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(processed),
            "control_folder": str(control),  # fanout (remote control); default is the cwd
            "store_processed": False,
            "polling_interval": 0.2,
        },
        "result_backend": results.as_uri(),
    }


def lock_url() -> str | None:
    """Where the per-database locks live: the Redis broker, else lease files under VAR."""
    if os.environ.get("REDIS_URL"):
        return None  # None: use the Celery broker
    locks = VAR / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    return locks.as_uri()


def remote() -> str:
    return os.environ.get("BACKUP_REMOTE") or str(VAR / "remote")
