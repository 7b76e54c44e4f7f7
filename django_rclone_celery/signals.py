"""Signals. Only the operations layer sends them, so they fire the same way
from a management command, a Celery worker or the admin.

django-rclone's eight signals keep their names and kwargs; every signal
also gets ``run_id``. ``sender`` is the operation's name (``"db_backup"``,
``"db_restore"``, ``"media_backup"``, ``"media_restore"``, ``"db_cleanup"``...).

===================  ==================================  ===============================
signal               when                                kwargs
===================  ==================================  ===============================
pre_db_backup        before the dump starts (may veto)    database, run_id
post_db_backup       after the backup is published        database, path, size, run_id
pre_db_restore       before anything is changed (veto)    database, from_database, path,
                                                          run_id
post_db_restore      after the swap                       database, from_database, path,
                                                          run_id
pre_media_backup     before ``rclone sync`` (veto)        run_id
post_media_backup    after the sync                       run_id, copied, replaced, deleted,
                                                          bytes
pre_media_restore    before ``rclone sync`` (veto)        run_id
post_media_restore   after the sync                       run_id, copied, replaced, deleted,
                                                          bytes
pre_stage            before each stage (veto)             operation, stage, database, run_id
post_stage           after a stage succeeded              operation, stage, database, run_id
stage_failed         a stage raised                       operation, stage, database, run_id,
                                                          exception
backup_overdue       a target is overdue or recovers      target, database, kind,
                                                          recovered, age, limit, last
===================  ==================================  ===============================

``pre_*`` signals use ``send()``: a receiver that raises stops the operation.
``backup_overdue`` is sent by the watchdog task (``sender="watchdog"``),
once when a target's newest successful backup (``kind="backup"``) or restore
drill (``kind="verify"``) gets older than its limit, and once with
``recovered=True`` when it is within it again. ``target`` is the alias or
``"media"`` (``database`` is None then); ``age`` is in seconds (None: never),
``limit`` in seconds, ``last`` the newest one's finish time or None.

``post_*``, ``backup_overdue`` and ``stage_failed`` use ``send_robust()``: a failing receiver is
logged and cannot turn a finished backup into a failure.
"""

from __future__ import annotations

from django.dispatch import Signal

pre_db_backup = Signal()
post_db_backup = Signal()
pre_db_restore = Signal()
post_db_restore = Signal()
pre_media_backup = Signal()
post_media_backup = Signal()
pre_media_restore = Signal()
post_media_restore = Signal()

pre_stage = Signal()
post_stage = Signal()
stage_failed = Signal()

backup_overdue = Signal()
