"""django-rclone's own commands, to make backups the way it does."""

from __future__ import annotations

from django.db import connections


def legacy_dump_argv(alias: str) -> tuple[str, ...]:
    """The dump command django-rclone runs, spelled out by hand (its defaults)."""
    s = connections[alias].settings_dict
    if alias == "default":
        return ("sqlite3", s["NAME"], ".dump")
    if alias == "maria":
        return (
            "mysqldump",
            f"--host={s['HOST']}",
            f"--port={s['PORT']}",
            f"--user={s['USER']}",
            "--single-transaction",
            s["NAME"],
        )
    return (
        "pg_dump",
        "--format=custom",
        "--host",
        s["HOST"],
        "--port",
        str(s["PORT"]),
        "--username",
        s["USER"],
        f"--dbname={s['NAME']}",
    )
