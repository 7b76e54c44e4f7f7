"""Per-database lease locks.

In Redis (the default: ``LOCK_URL``, else the Celery broker), a lease is
``SET key token NX PX ttl``: only one holder at a time, and it expires by
itself if its holder dies. The holder renews it from a heartbeat thread while
it works and releases it with a compare-and-delete, so a holder whose lease
already expired can never free somebody else's lock.

``LOCK_URL = "file:///some/dir"`` uses ``flock`` on one file per target
instead: no server, one host only; the kernel drops the lock when its holder
dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from types import TracebackType
from typing import Any

from .conf import get_settings
from .exceptions import ConfigurationError

logger = logging.getLogger("django_rclone_celery")

KEY_PREFIX = "django_rclone_celery:lock:"

# KEYS[1] = lock key, ARGV[1] = token [, ARGV[2] = ttl in ms]
_RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""
_RENEW = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("pexpire", KEYS[1], ARGV[2])
end
return 0
"""


def lock_url() -> str:
    """``DJANGO_RCLONE["LOCK_URL"]``, else the Celery broker's URL when it is Redis."""
    url = get_settings().lock_url
    if url:
        return url
    from celery import current_app

    broker = str(current_app.conf.broker_url or "")
    # A broker list ("redis://a;redis://b") fails over; the lock uses the first.
    broker = broker.split(";")[0].strip()
    if broker.startswith(("redis://", "rediss://", "unix://")):
        return broker
    raise ConfigurationError(
        "the database locks need Redis: set DJANGO_RCLONE['LOCK_URL'] "
        f"(the Celery broker {broker.split('://')[0] or 'default'!r} is not Redis)"
    )


@lru_cache(maxsize=4)
def _client(url: str) -> Any:
    import redis

    # redis-py pools notice a fork and reconnect, so one client per URL is safe
    # in prefork pool children.
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)


def client() -> Any:
    return _client(lock_url())


def lock_key(target: str) -> str:
    """The key shared by every operation on ``target`` (a database alias or "media").

    It carries the project's namespace, so two projects sharing a Redis never
    serialise each other's ``default`` runs.
    """
    return f"{KEY_PREFIX}{project_namespace()}:{target}"


def project_namespace() -> str:
    """``NAMESPACE``, else the top package of the settings module (``mysite``)."""
    from django.conf import settings as django_settings

    configured = get_settings().namespace
    if configured:
        return configured
    # The environment first: under override_settings the holder has no SETTINGS_MODULE.
    module = os.environ.get("DJANGO_SETTINGS_MODULE") or getattr(
        django_settings, "SETTINGS_MODULE", None
    )
    return str(module or "project").split(".", 1)[0]


def lease(target: str, ttl: float | None = None) -> Lease | FileLease:
    """A lease on ``target`` from the configured backend."""
    url = lock_url()
    if url.startswith("file://"):
        return FileLease(target, url[len("file://") :], ttl)
    return Lease(target, ttl, redis=_client(url))


class Lease:
    """One attempt to hold the Redis lock on ``target``."""

    def __init__(self, target: str, ttl: float | None = None, *, redis: Any = None) -> None:
        self.target = target
        self.key = lock_key(target)
        self.ttl_ms = int((ttl if ttl is not None else get_settings().lock_ttl) * 1000)
        self.token = uuid.uuid4().hex
        self.redis = redis if redis is not None else client()
        self.held = False

    def acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        self.held = bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.held

    def renew(self) -> bool:
        """Push the expiry forward; False if the lease was lost (expired, taken)."""
        ok = bool(self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))
        if not ok:
            self.held = False
        return ok

    def release(self) -> bool:
        """Free the lock if it is still ours."""
        self.held = False
        return bool(self.redis.eval(_RELEASE, 1, self.key, self.token))

    def holder(self) -> str | None:
        """The token of whoever holds the lock now, if anyone."""
        return current_holder(self.target, redis=self.redis)

    def owner_alive(self, token: str) -> bool:
        """Whether the holder of ``token`` still holds the lock *and is alive*.

        A lease outlives a killed holder by up to its TTL, so holding it proves
        nothing; renewing it does. This watches the key for up to one TTL: a
        live holder's heartbeat pushes the expiry forward within a third of
        it, a dead holder's lease runs out.
        """
        deadline = time.monotonic() + self.ttl_ms / 1000 + 1
        last: int | None = None
        while True:
            pipe = self.redis.pipeline()
            pipe.get(self.key)
            pipe.pttl(self.key)
            value, pttl = pipe.execute()
            if isinstance(value, bytes):
                value = value.decode()
            if value != token:
                return False
            if last is not None and pttl > last:
                return True
            last = pttl
            if time.monotonic() > deadline:
                return False  # held but never renewed: a stalled holder
            time.sleep(min(0.25, self.ttl_ms / 12000))


def current_holder(target: str, *, redis: Any = None) -> str | None:
    value = (redis if redis is not None else client()).get(lock_key(target))
    return value.decode() if isinstance(value, bytes) else value


class FileLease:
    """The same contract as :class:`Lease` with ``flock`` on a local file."""

    def __init__(self, target: str, directory: str, ttl: float | None = None) -> None:
        self.target = target
        self.path = os.path.join(directory, re.sub(r"[^A-Za-z0-9_.-]", "_", target) + ".lock")
        self.ttl_ms = int((ttl if ttl is not None else get_settings().lock_ttl) * 1000)
        self.token = uuid.uuid4().hex
        self.held = False
        self._fd: int | None = None
        os.makedirs(directory, exist_ok=True)

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.token.encode(), 0)
        self._fd, self.held = fd, True
        return True

    def renew(self) -> bool:
        return self.held  # the kernel keeps the lock while the process lives

    def release(self) -> bool:
        if self._fd is None:
            return False
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd, self.held = None, False
        return True

    def holder(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(fd, 64, 0).decode() or None
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None  # nobody holds it (a dead holder's token may still be written)
        finally:
            os.close(fd)

    def owner_alive(self, token: str) -> bool:
        # The kernel frees a dead holder's lock at once.
        return self.holder() == token


class Heartbeat:
    """Renews a lease every third of its TTL on a daemon thread; a lease is held or lost.

    A renewal that finds the key gone (a broker restarted without persistence)
    takes it back at once if nobody else holds it. If somebody else does, or
    no renewal got through for a whole TTL (the key may have expired and been
    taken meanwhile), ``lost`` is set and ``on_lost(reason)`` is called once:
    the run guard stops the run. :meth:`confirm` does the same check
    synchronously, for the moments that must not happen without the lease
    (publishing, swapping).
    """

    def __init__(
        self, lease: Lease | FileLease, on_lost: Callable[[str], None] | None = None
    ) -> None:
        self.lease = lease
        self.on_lost = on_lost
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._check = threading.Lock()
        self._last_ok = time.monotonic()
        self._thread = threading.Thread(
            target=self._loop, name=f"lease-heartbeat-{lease.target}", daemon=True
        )

    def _loop(self) -> None:
        interval = self.lease.ttl_ms / 3000
        while not self._stop.wait(interval):
            if not self.confirm():
                return

    def confirm(self) -> bool:
        """Renew now; True while the lease is ours (re-taken if it had vanished)."""
        with self._check:
            if self.lost.is_set():
                return False
            try:
                ok = self.lease.renew() or self._retake()
            except Exception:  # a Redis blip: the lease stands until its TTL runs out
                if time.monotonic() - self._last_ok < self.lease.ttl_ms / 1000:
                    logger.warning(
                        "could not renew the lock on %s", self.lease.target, exc_info=True
                    )
                    return True
                return self._lose("the lock service was unreachable for a whole lease TTL")
            if ok:
                self._last_ok = time.monotonic()
                return True
            return self._lose("another run took it")

    def _retake(self) -> bool:
        # SET NX with our own token: only if the key is free (it vanished).
        if not self.lease.acquire():
            return False
        logger.warning("the lock on %s had vanished; took it back", self.lease.target)
        return True

    def _lose(self, why: str) -> bool:
        reason = f"lost the lock on {self.lease.target!r} while working: {why}"
        logger.error("%s", reason)
        self.lost.set()
        if self.on_lost:
            self.on_lost(reason)
        return False

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
