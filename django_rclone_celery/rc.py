"""rclone's remote control on a private socket: small rclone calls without an rclone start each.

Every rclone start costs about 60 ms of CPU (the Go runtime and every
backend's set-up), as much as comparing thousands of files. A media backup
makes a few small calls beside its copy: the history listing goes to the copy
itself, run with its remote control on (:func:`serve_flags`); the point's
upload and the move of the deletions go to one ``rclone rcd`` (:func:`daemon`).
Both listen on Unix sockets in a private (0700) directory, so only this user
can reach them, which is why they need no password of their own.

A database backup's listing, manifest and moves go to an ``rclone rcd``
started beside its dump (:func:`private_daemon`): after the stream, no call
waits for an rclone start. On Linux it listens on an abstract socket, which
has no file, so a backup killed at any moment leaves nothing behind; any
local user could reach such a socket, so every call carries a random
password, given to rclone in its environment.

Each call is exact: one listing, one file copied, one file moved; never a
``_filter``, which rclone ignores when it does not know a key (a move would
then take everything). Where no server takes a call (an rclone without socket
support, a server that has ended or wants a password, remote-control flags of
the user's own), the call runs its own rclone process instead.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import process
from .exceptions import RcloneError
from .process import Started
from .rclone import Entry, Rclone, join, quiet_gc, split

logger = logging.getLogger("django_rclone_celery")

READY_TIMEOUT = 10.0  # seconds for a server to listen; then the calls run rclone each
# Above this many files, one ``rclone move --files-from-raw`` moves them with
# rclone's own concurrency instead of one call per file.
MOVE_CALLS_MAX = 64
# A dump (or a --jobs stream) that compresses to no more than this is held in
# memory and written by the run's daemon in one call, as the manifest is: no
# ``rclone rcat`` starts for it. With many small databases each saves a start.
SMALL_UPLOAD = 1 << 20
USER = "drc"  # the login of a private daemon; its password is new each time
ABSTRACT = "\0"  # a socket path starting so is in Linux's abstract namespace
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Control:
    """Small rclone calls, through the server on ``path`` while it answers.

    ``server`` is the process serving there (``rclone rcd``, or any rclone
    command run with :func:`serve_flags`); ``None`` runs rclone for each call.
    """

    def __init__(
        self, rclone: Rclone, server: Started | None, path: str, *, password: str = ""
    ) -> None:
        self._rclone = rclone
        self._server = server
        self._path = path
        self._headers: dict[str, str] = {}
        if password:
            login = base64.b64encode(f"{USER}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {login}"
        self._ready: bool | None = None if server is not None else False
        self._lock = threading.Lock()  # the first calls may come from two threads

    @classmethod
    def direct(cls, rclone: Rclone) -> Control:
        """Calls that each run their own rclone process (no server)."""
        return cls(rclone, None, "")

    # Calls ---------------------------------------------------------------
    def list_dir(self, path: str) -> list[Entry]:
        """A directory's files and directories, without times; a missing one is empty."""
        listed = self._list(path, {"noModTime": True, "noMimeType": True})
        if listed is not None:
            return listed
        return self._rclone.lsjson(path, modtime=False, dirs=True)

    def list_files(self, path: str) -> list[Entry]:
        """A directory's files, with times (``rclone lsjson --files-only``); missing: empty."""
        listed = self._list(path, {"filesOnly": True, "noMimeType": True})
        if listed is not None:
            return listed
        return self._rclone.lsjson(path)

    def _list(self, path: str, opt: dict[str, bool]) -> list[Entry] | None:
        """The listing through the server; None if it did not take the call."""
        if not self._up():
            return None
        try:
            listed = self._call(
                "operations/list", {"fs": path, "remote": "", "opt": opt}, safe=True
            )
        except RcloneError as exc:
            if exc.not_found:
                return []
            return None  # perhaps a server on its way out: rclone itself will say
        if listed is None:
            return None
        return [Entry.from_json(item) for item in listed.get("list") or []]

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` (small: a manifest, a dump of at most ``SMALL_UPLOAD``) as the
        file ``path``: no local file."""
        directory, name = split(path)
        if self._up() and _plain(name):
            boundary = uuid.uuid4().hex
            body = b"".join(
                [
                    f"--{boundary}\r\n".encode(),
                    f'Content-Disposition: form-data; name="file0"; filename="{name}"\r\n'.encode(),
                    b"Content-Type: application/octet-stream\r\n\r\n",
                    data,
                    f"\r\n--{boundary}--\r\n".encode(),
                ]
            )
            try:
                done = self._call(
                    "operations/uploadfile",
                    {"fs": directory, "remote": ""},
                    body=(body, f"multipart/form-data; boundary={boundary}"),
                )
            except RcloneError as exc:
                # rclone itself says what went wrong as every other call does (one
                # line, an exit status that tells a transient error); the remote
                # control's answer does not: an unreachable S3 reads "is a file not
                # a directory". Writing again is harmless: the same bytes, one name.
                logger.debug("rclone remote control could not write %s (%s)", path, exc)
                done = None
            if done is not None:
                return
        self._rclone.put_bytes(path, data)

    def move_file(self, src: str, dst: str) -> None:
        """Move (rename) the file ``src`` to ``dst``, as ``rclone moveto`` does."""
        if self._up():
            (src_fs, src_name), (dst_fs, dst_name) = split(src), split(dst)
            params = {
                "srcFs": src_fs,
                "srcRemote": src_name,
                "dstFs": dst_fs,
                "dstRemote": dst_name,
            }
            if self._call("operations/movefile", params) is not None:
                return
        self._rclone.moveto(src, dst)

    def put_file(self, local: Path, directory: str, name: str) -> None:
        """Upload the local file ``local`` as ``name`` into the rclone directory ``directory``."""
        if self._up():
            done = self._call(
                "operations/copyfile",
                {
                    "srcFs": str(local.parent),
                    "srcRemote": local.name,
                    "dstFs": directory,
                    "dstRemote": name,
                },
            )
            if done is not None:
                return
        self._rclone.put_bytes(join(directory, name), local.read_bytes())

    def move_files(self, src: str, dst: str, files: Sequence[str]) -> None:
        """Move ``files`` (paths relative to ``src``) to the same paths under ``dst``."""
        if not files:
            return
        left = list(files)
        # A name that is not UTF-8 cannot travel in JSON; rclone reads raw lists.
        if self._up() and len(left) <= MOVE_CALLS_MAX and _all_utf8(left):
            while left:
                params = {"srcFs": src, "srcRemote": left[0], "dstFs": dst, "dstRemote": left[0]}
                if self._call("operations/movefile", params) is None:
                    break
                left.pop(0)
        self._rclone.transfer("move", src, dst, left)

    # The server ------------------------------------------------------------
    def _up(self) -> bool:
        with self._lock:
            if self._ready is None:
                self._ready = self._wait()
            return self._ready

    def _wait(self) -> bool:
        assert self._server is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._listening():
                return True
            if not self._server.running():
                logger.debug("no rclone remote control on %s: running rclone instead", self._path)
                return False
            time.sleep(0.002)
        logger.debug("rclone remote control did not listen in time: running rclone instead")
        return False

    def _listening(self) -> bool:
        if not self._path.startswith(ABSTRACT):
            return os.path.exists(self._path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self._path)
            except OSError:
                return False
        return True

    def _call(
        self,
        method: str,
        params: dict[str, Any],
        *,
        safe: bool = False,
        body: tuple[bytes, str] | None = None,
    ) -> dict[str, Any] | None:
        """The call's result, or None if the server did not take the call (it had
        ended, or wants a password): nothing was done, and rclone itself may do it.

        A server that ends during a call may have done it: that raises, unless
        the call is ``safe`` (it changes nothing, so rclone may be asked again).
        ``body`` (content and its type) goes with ``params`` in the query string.
        """
        argv = (self._rclone.binary, "rc", method)
        url = "/" + method
        if body is None:
            content, kind = json.dumps(params).encode(), "application/json"
        else:
            (content, kind), url = body, f"{url}?{urllib.parse.urlencode(params)}"
        headers = {**self._headers, "Content-Type": kind}
        for attempt in range(500):  # the socket exists a moment before it listens
            connection = _UnixConnection(self._path)
            try:
                connection.request("POST", url, content, headers)
                response = connection.getresponse()
                data = response.read()
                status = response.status
                break
            except (OSError, http.client.HTTPException) as exc:
                # A server that ends (a command serving while it runs) closes
                # its socket; a call it never took did nothing.
                never_taken = isinstance(exc, (ConnectionRefusedError, FileNotFoundError))
                ended = self._server is None or not self._server.running()
                if never_taken and not ended and attempt < 499:
                    time.sleep(0.002)  # not listening yet: ask again
                    continue
                if safe or (never_taken and ended):
                    self._ready = False
                    return None
                raise RcloneError(argv, None, f"rclone remote control: {exc}") from None
            finally:
                connection.close()
        try:
            result = json.loads(data or b"{}")
        except ValueError:
            result = {"error": data.decode("utf-8", "replace")}
        if status == 200 and isinstance(result, dict):
            return result
        if status in (401, 403):  # a later rclone may ask for one even on a socket
            logger.debug("rclone remote control wants a password: running rclone instead")
            self._ready = False
            return None
        message = str(result.get("error") if isinstance(result, dict) else result)
        assert self._server is not None
        raise RcloneError(argv, _returncode(status, message), self._server.redact(message))


def _returncode(status: int, message: str) -> int:
    """The exit status ``rclone`` would have given, so the same error checks apply."""
    if "directory not found" in message:
        return 3
    if status == 404 or "object not found" in message:
        return 4
    return 1


def _plain(name: str) -> bool:
    """A name a multipart header carries as it is (ours are; anything else goes to rclone)."""
    return name.isascii() and name.isprintable() and not any(c in name for c in '"\\/')


def _all_utf8(names: Sequence[str]) -> bool:
    try:
        for name in names:
            name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def usable(rclone: Rclone) -> bool:
    """False when the user's rclone flags or environment set up a remote control of
    their own (two servers on one address cannot both start), or when the program
    starts go to a test's runner (a server started around it would escape it)."""
    if process.substituted():
        return False
    if any(flag.split("=")[0].startswith("--rc") for flag in rclone.flags):
        return False
    return not any(key.startswith("RCLONE_RC") for key in os.environ)


@contextmanager
def sockets() -> Iterator[Path]:
    """A private directory for the sockets of one operation, removed afterwards."""
    directory = tempfile.mkdtemp(prefix="drc-rc-")
    if len(directory) + len("/rcd.sock") > _SOCKET_PATH_MAX:
        os.rmdir(directory)
        directory = tempfile.mkdtemp(prefix="drc-rc-", dir="/tmp")
    try:
        yield Path(directory)
    finally:
        with suppress(OSError):
            shutil.rmtree(directory)


def serve_flags(rclone: Rclone, path: Path) -> list[str]:
    """Flags that make an rclone command serve its remote control on ``path`` while it runs."""
    if not usable(rclone):
        return []
    return ["--rc", "--rc-addr", f"unix://{path}", "--rc-no-auth"]


def attach(rclone: Rclone, server: Started, path: Path) -> Control:
    """Calls to ``server``, a command started with :func:`serve_flags` ``(path)``."""
    return Control(rclone, server if usable(rclone) else None, str(path))


@contextmanager
def daemon(rclone: Rclone, path: Path) -> Iterator[Control]:
    """Start ``rclone rcd`` on ``path`` now; a call waits for it only when first made."""
    if not usable(rclone):
        yield Control(rclone, None, str(path))
        return
    # Its calls are small: collecting garbage only near the limit saves a
    # fifth of its CPU, most of which goes to starting.
    command = quiet_gc(rclone.command("rcd", "--rc-addr", f"unix://{path}", "--rc-no-auth"))
    with process.started(command, error=RcloneError) as server:
        yield Control(rclone, server, str(path))


# The daemon of a shared_daemon() block, and what its rclone is (binary, config, flags).
_shared: tuple[tuple[str, str | None, tuple[str, ...]], Control] | None = None


def _identity(rclone: Rclone) -> tuple[str, str | None, tuple[str, ...]]:
    return rclone.binary, rclone.config, tuple(rclone.flags)


@contextmanager
def shared_daemon(rclone: Rclone) -> Iterator[Control]:
    """A :func:`private_daemon` that every ``private_daemon`` of the same rclone inside
    the block uses instead of starting its own: several backups at once (``--all``)."""
    global _shared
    with private_daemon(rclone) as calls:
        _shared = (_identity(rclone), calls)
        try:
            yield calls
        finally:
            _shared = None


@contextmanager
def private_daemon(rclone: Rclone) -> Iterator[Control]:
    """Start ``rclone rcd`` now on a socket that leaves no file (see the module doc).

    Elsewhere than Linux, :func:`daemon` in a private directory of its own.
    Inside :func:`shared_daemon` for the same rclone, that one.
    """
    shared = _shared
    if shared is not None and shared[0] == _identity(rclone):
        yield shared[1]
        return
    if not sys.platform.startswith("linux"):
        with sockets() as place, daemon(rclone, place / "rcd.sock") as calls:
            yield calls
        return
    if not usable(rclone):
        yield Control.direct(rclone)
        return
    address = f"drc-rcd-{uuid.uuid4().hex}"
    password = secrets.token_hex(32)
    command = quiet_gc(rclone.command("rcd", "--rc-addr", f"unix://@{address}"))
    command = replace(
        command,
        env={**command.env, "RCLONE_RC_USER": USER},
        secret_env={**command.secret_env, "RCLONE_RC_PASS": password},
    )
    with process.started(command, error=RcloneError) as server:
        yield Control(rclone, server, ABSTRACT + address, password=password)
