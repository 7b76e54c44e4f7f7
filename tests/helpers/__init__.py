"""Helpers for the tests, by concept: import them from here, never from a conftest.

``tests.helpers.databases``  test data per alias: ``populate``, ``damage``, ``snapshot``,
                             ``staging_leftovers``, ``make_big_table``, ``drop_table``,
                             ``db_params``.
``tests.helpers.processes``  ``/proc`` readers (``cmdline``, ``all_cmdlines``, ``find_pids``) and
                             ``python_program``; ``RecordingRunner`` fakes the process gateway.
``tests.helpers.network``    ``free_port``, ``wait_for_port``.
``tests.helpers.remotes``    ``remote_files``, ``MotoS3``, ``S3Remote``.
``tests.helpers.prompts``    ``Prompts`` (scripted ``input()``), ``Terminal`` (a tty stdin).
``tests.helpers.workers``    ``RedisServer``, ``Workers``, ``wait_for`` and the Redis DB numbers.
``tests.helpers.tasks``      task names and settings shared by the Celery tests.
``tests.helpers.admin``      logged-in admin clients and the "Queued ..." messages.
``tests.helpers.legacy``     the dump commands django-rclone runs.

Fixtures stay in ``tests/conftest.py`` (request them by name).
"""
