"""Media backup and restore: guarded syncs between ``MEDIA_ROOT`` and the remote, with history.

The guards are decided before anything is deleted, from rclone's own report
of the sync (``--combined`` or ``--differ``/``--missing-on-*``, so the
comparison is rclone's):

* an empty or missing source is refused unless ``allow_empty``;
* more deletions than ``MEDIA_MAX_DELETE`` (or ``max_delete``) are refused.

A restore plans with ``--dry-run`` and changes only the planned files. A
backup's report comes from its ``rclone copy``, which deletes nothing and
moves what it replaces into a version folder; the deletions follow, as moves
into the same folder, only if the guards allow them. One pass over the tree
instead of two, with the other rclone processes started during it (see
:func:`_sync`), keeps a backup near a bare ``rclone sync`` (``bench/media.py``).
The new state is then recorded as a point (see :mod:`media_history`), so every
kept point can be restored exactly.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from tempfile import TemporaryDirectory

from django.conf import settings as django_settings

from .. import media_history, rc, retention, signals
from ..conf import Settings, get_settings, max_delete_limit
from ..exceptions import ConfigurationError, InvalidBackup, SyncRefused
from ..floor.run import ProgressCallback, Run
from ..media_history import Point
from ..rclone import Entry, Rclone, join, read_report, report_args
from ..results import MediaCleanupResult, MediaPointInfo, MediaResult

logger = logging.getLogger("django_rclone_celery")

MaxDelete = int | str | None


def media_root() -> str:
    root = str(getattr(django_settings, "MEDIA_ROOT", "") or "")
    if not root:
        raise ConfigurationError("MEDIA_ROOT is empty: there is no media directory to back up")
    return root


def media_dir(settings: Settings) -> str:
    return join(settings.remote, settings.media_backup_dir)


def history_dir(settings: Settings) -> str:
    return join(settings.remote, settings.media_backup_dir + media_history.HISTORY_SUFFIX)


@dataclass(frozen=True, kw_only=True)
class MediaPlan:
    """What a sync will do, decided before it does anything."""

    source: str
    destination: str
    copy: list[str]  # only in the source
    replace: list[str]  # in both, different
    delete: list[str]  # only in the destination
    files: dict[str, int]  # the destination's files afterwards, path -> size (-1: unknown)
    destination_files: int  # the destination's files before
    bytes: int  # what the copies and replacements move
    point: str | None = None  # restore --at: the point restored
    # restore: source directory -> the planned copies and replacements read from it
    groups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        return bool(self.copy or self.replace or self.delete)


def _guard(plan: MediaPlan, allow_empty: bool, max_delete: MaxDelete, settings: Settings) -> None:
    """Refuse, before anything changes, a sync from an empty source or over the deletion limit."""
    if not plan.files:
        if not allow_empty:
            raise SyncRefused(_empty_message(plan.source, plan.destination, plan.destination_files))
        return  # an intended empty source deletes everything: a limit cannot apply
    limit_setting = settings.media_max_delete if max_delete is None else max_delete
    limit = max_delete_limit(limit_setting, plan.destination_files)
    if len(plan.delete) > limit:
        raise SyncRefused(
            f"refusing to sync {plan.source} to {plan.destination}: it would delete "
            f"{len(plan.delete)} of the {plan.destination_files} files there, more than the "
            f"limit of {limit} (MEDIA_MAX_DELETE={limit_setting!r}); nothing was deleted. "
            "Pass --max-delete (max_delete=) to allow it for this run."
        )


def _empty_message(source: str, destination: str, files: int | None) -> str:
    count = "" if files is None else f" ({files})"
    return (
        f"refusing to sync from {source}: it holds no files, so every file in "
        f"{destination}{count} would be deleted; nothing was changed. Check REMOTE, "
        "MEDIA_BACKUP_DIR and MEDIA_ROOT; pass --allow-empty (allow_empty=True) if an "
        "empty source is intended."
    )


def _any_file(root: str) -> bool:
    return any(names for _, _, names in os.walk(root))


def _sizes(root: str, paths: list[str], known: dict[str, int]) -> dict[str, int]:
    sizes = {}
    for path in paths:
        size = known.get(path)
        if size is None:
            try:
                size = os.stat(os.path.join(root, path)).st_size
            except OSError:
                size = -1  # gone since the plan, or a name rclone encodes
        sizes[path] = size
    return sizes


# rclone flags that change which local files rclone sees, so a walk would not match.
_VIEW_FLAGS = (
    "include",
    "exclude",
    "filter",
    "files-from",
    "min-size",
    "max-size",
    "min-age",
    "max-age",
    "max-depth",
    "ignore-case",
    "copy-links",
    "links",
    "one-file-system",
    "local-",
    "metadata-include",
    "metadata-exclude",
    "metadata-filter",
)


def _walk_is_rclones_view(settings: Settings) -> bool:
    """True when the local files rclone sees are exactly what :func:`_walk` finds.

    Not so with filter or link flags (in ``RCLONE_FLAGS`` or in rclone's
    ``RCLONE_*`` environment variables): then rclone lists every file itself.
    """
    for flag in settings.rclone_flags:
        name = flag.split("=")[0]
        if name in ("-L", "-l", "-x") or name.lstrip("-").startswith(_VIEW_FLAGS):
            return False
    for key in os.environ:
        if key.startswith("RCLONE_"):
            name = key[len("RCLONE_") :].lower().replace("_", "-")
            if name.startswith(_VIEW_FLAGS):
                return False
    return True


def _unchanged(
    rclone: Rclone,
    mirror: str,
    marks: dict[str, list[str]],
    known: dict[str, int],
    recent: set[str],
) -> list[str]:
    """The unchanged files: walked, and not reported by rclone (deleted or gone, new, changed).

    A file rclone found unchanged has the mirror's time, older than this run. One
    that is not older may have been written after rclone looked: only the mirror
    says whether it holds it (then with the mirror's size, which a restore gets).
    """
    reported = {path for paths in marks.values() for path in paths}
    unchanged = [path for path in known if path not in reported]
    unsure = [path for path in unchanged if path in recent]
    if unsure:
        stored = rclone.sizes(mirror, unsure)
        for path in unsure:
            if path in stored:
                known[path] = stored[path]
        unchanged = [path for path in unchanged if path not in recent or path in stored]
    return unchanged


def _walk(root: str, since: float) -> tuple[dict[str, int], set[str]]:
    """Every local file's size, read while rclone works (its report has none), and the
    files modified at or after ``since``."""
    sizes: dict[str, int] = {}
    recent: set[str] = set()
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    sizes[prefix + entry.name] = stat.st_size
                    if stat.st_mtime >= since:
                        recent.add(prefix + entry.name)
            except OSError:
                continue
    return sizes, recent


def _walk_and_encode(root: str, since: float) -> tuple[dict[str, int], set[str], str]:
    sizes, recent = _walk(root, since)
    return sizes, recent, media_history.encode_files(sizes)


def _marks(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for mark, path in pairs:
        found[mark].append(path)
    return found


# Backup ---------------------------------------------------------------------
def _backup_plan(
    root: str, destination: str, marks: dict[str, list[str]], known: dict[str, int]
) -> MediaPlan:
    files = _sizes(root, marks["="] + marks["+"] + marks["*"], known)
    return MediaPlan(
        source=root,
        destination=destination,
        copy=marks["+"],
        replace=marks["*"],
        delete=marks["-"],
        files=files,
        destination_files=len(marks["="]) + len(marks["*"]) + len(marks["-"]),
        bytes=sum(max(files[p], 0) for p in marks["+"] + marks["*"]),
    )


def _local_root() -> str:
    root = media_root()
    if not Path(root).is_dir():
        raise ConfigurationError(f"MEDIA_ROOT {root!r} is not a directory")
    return root


def plan_backup(
    *, allow_empty: bool = False, max_delete: MaxDelete = None, settings: Settings | None = None
) -> MediaPlan:
    """What ``backup_media`` would do (changing nothing); raises :class:`SyncRefused` if a
    guard would refuse it."""
    settings = settings or get_settings()
    root = _local_root()
    destination = media_dir(settings)
    marks = _marks(Rclone(settings).changes("sync", root, destination))
    plan = _backup_plan(root, destination, marks, {})
    _guard(plan, allow_empty, max_delete, settings)
    return plan


def _unchanged_point(state: Point, history: list[Entry]) -> Point | None:
    """The latest point, if it already describes ``state`` (the media's files and bytes).

    Only when no run synced after the point without recording one (its version
    folder would be newer). The caller makes sure the sync changed nothing.
    """
    latest = media_history.points(e.name for e in history if not e.is_dir)
    folders = [e.name for e in history if e.is_dir and media_history.STAMP.fullmatch(e.name)]
    if not latest or any(name > latest[0].name for name in folders):
        return None
    if (latest[0].files, latest[0].size) != (state.files, state.size):
        return None
    return latest[0]


def _sync(
    rclone: Rclone,
    root: str,
    destination: str,
    allow_empty: bool,
    max_delete: MaxDelete,
    settings: Settings,
) -> tuple[MediaPlan, Point]:
    """Copy, decide the guards, then record the point and move the deletions aside.

    Every rclone start costs about as much as comparing thousands of files, so
    the small calls around the copy go to rclone's remote control (see
    :mod:`..rc`): the history listing to the copy itself while it runs, the
    point's upload and the move of the deletions to one ``rclone rcd``,
    started during the copy when the walk shows the media changed.
    """
    history = history_dir(settings)
    name = media_history.stamp(datetime.now(timezone.utc))
    versions = join(history, name)
    fast = _walk_is_rclones_view(settings)
    with (
        TemporaryDirectory(prefix="drc-media-") as lists,
        rc.sockets() as sockets,
        ExitStack() as later,
    ):
        calls: rc.Control | None = None
        listing: list[Entry] | None = None
        # Copy first: it deletes nothing, and what it replaces goes to the version folder.
        copy_args = ("copy", root, destination, "--backup-dir", versions)
        if fast:
            started = time.time()
            served = sockets / "copy.sock"
            with (
                rclone.start(
                    *copy_args, *report_args(lists), *rc.serve_flags(rclone, served)
                ) as copy,
                ThreadPoolExecutor(max_workers=1) as pool,
            ):
                # The walk, and the record's file list, while rclone starts and copies.
                walking = pool.submit(_walk_and_encode, root, started)
                # Asked as soon as the copy listens: a small tree's copy soon ends
                # (then rclone lists it, in a process of its own).
                listing = rc.attach(rclone, copy, served).list_dir(history)
                known, recent, encoded = walking.result()
                if _unchanged_point(_point(name, known), listing) is None:
                    # Changes likely: the daemon starts while the copy runs (not
                    # before the walk: three start-ups at once slow the copy).
                    calls = later.enter_context(rc.daemon(rclone, sockets / "rcd.sock"))
                copy.finish()
            marks = _marks(read_report(lists))
            marks["="] = _unchanged(rclone, destination, marks, known, recent)
        else:
            calls = later.enter_context(rc.daemon(rclone, sockets / "rcd.sock"))
            known, recent, encoded = {}, set(), ""
            marks = _marks(rclone.changes(*copy_args, dry_run=False))
        plan = _backup_plan(root, destination, marks, known)
        try:
            _guard(plan, allow_empty, max_delete, settings)
        except SyncRefused as exc:
            if plan.copy or plan.replace:
                raise SyncRefused(
                    f"{exc} The {len(plan.copy)} new and {len(plan.replace)} changed files "
                    "were uploaded (the replaced versions are kept)."
                ) from exc
            raise
        point = _point(name, plan.files)
        if not plan.changes:
            if listing is None:
                assert calls is not None  # started above when the copy could not list
                listing = calls.list_dir(history)
            latest = _unchanged_point(point, listing)
            if latest is not None:
                return plan, latest
        if calls is None:  # the walk saw no change, the copy did
            calls = later.enter_context(rc.daemon(rclone, sockets / "rcd.sock"))
        # As walked (and no size taken from the mirror since): the file list is encoded.
        same = fast and not recent and plan.files == known
        record = Path(lists, point.record)
        record.write_bytes(
            media_history.encode(plan.files, _counts(plan), encoded=encoded if same else None)
        )
        calls.put_file(record, history, point.record)
        # Deleted from the mirror by moving them beside what the copy replaced,
        # after the point (which does not list them): until they move, the
        # mirror still has them for the older points.
        calls.move_files(destination, versions, plan.delete)
    return plan, point


def _point(name: str, files: dict[str, int]) -> Point:
    return Point(
        name=name,
        created=media_history.parse_stamp(name),
        files=len(files),
        size=sum(max(s, 0) for s in files.values()),
    )


def backup_media(
    *,
    allow_empty: bool = False,
    max_delete: MaxDelete = None,
    clean: bool = False,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
) -> MediaResult:
    """Mirror ``MEDIA_ROOT`` to ``REMOTE/MEDIA_BACKUP_DIR``, keeping what it replaces or deletes.

    Records a media point, unless nothing changed since the latest one; with
    ``clean``, applies media retention afterwards.
    """
    settings = settings or get_settings()
    root = _local_root()
    run = Run.start("media_backup", None, run_id, progress)
    destination = media_dir(settings)
    signals.pre_media_backup.send(sender="media_backup", run_id=run.run_id)
    with run.stage("sync"):
        if not allow_empty and not _any_file(root):
            raise SyncRefused(_empty_message(root, destination, None))
        plan, point = _sync(Rclone(settings), root, destination, allow_empty, max_delete, settings)
    logger.info(
        "media backup: %d copied, %d replaced, %d deleted, %d bytes; point %s",
        len(plan.copy),
        len(plan.replace),
        len(plan.delete),
        plan.bytes,
        point.name,
    )
    cleaned = cleanup_media(run_id=run.run_id, settings=settings).deleted if clean else []
    counts = _counts(plan)
    signals.post_media_backup.send_robust(sender="media_backup", run_id=run.run_id, **counts)
    return MediaResult(
        operation="media_backup",
        source=root,
        destination=destination,
        duration=run.elapsed,
        run_id=run.run_id,
        files=point.files,
        size=point.size,
        point=point.name,
        cleaned=cleaned,
        copied=len(plan.copy),
        replaced=len(plan.replace),
        deleted=len(plan.delete),
        bytes=plan.bytes,
    )


def _counts(plan: MediaPlan) -> dict[str, int]:
    return {
        "copied": len(plan.copy),
        "replaced": len(plan.replace),
        "deleted": len(plan.delete),
        "bytes": plan.bytes,
    }


# Restore --------------------------------------------------------------------
def _point_files(
    rclone: Rclone, settings: Settings, point: Point
) -> tuple[dict[str, str], dict[str, int]]:
    """Where each of ``point``'s files is kept, and their sizes."""
    history = history_dir(settings)
    record = media_history.decode(rclone.get_bytes(join(history, point.record)), point.name)
    folders: dict[str, dict[str, int]] = defaultdict(dict)
    for stored, size in rclone.sizes(history).items():
        folder, _, path = stored.partition("/")
        if path and media_history.STAMP.fullmatch(folder):
            folders[folder][path] = size
    where = media_history.locate(point.name, record, {k: set(v) for k, v in folders.items()})
    mirror = media_dir(settings)
    in_mirror = rclone.sizes(mirror)
    sources: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for path, size in record.items():
        kept = where[path]
        found = in_mirror.get(path) if kept is None else folders[kept][path]
        if found is None or (size >= 0 and found != size):
            kept_in = "the mirror" if kept is None else f"version folder {kept}"
            raise InvalidBackup(
                f"media point {point.name} cannot be rebuilt: {path!r} is "
                f"{'missing from' if found is None else 'a different size in'} {kept_in}"
            )
        sources[path] = mirror if kept is None else join(history, kept)
        sizes[path] = found
    return sources, sizes


def plan_restore(
    *,
    at: str | datetime | None = None,
    allow_empty: bool = False,
    max_delete: MaxDelete = None,
    settings: Settings | None = None,
) -> MediaPlan:
    """What ``restore_media`` would do; raises :class:`SyncRefused` if a guard refuses it."""
    settings = settings or get_settings()
    root = media_root()
    rclone = Rclone(settings)
    mirror = media_dir(settings)
    listed = media_history.points(
        e.name for e in rclone.lsjson(history_dir(settings), modtime=False)
    )
    point: Point | None = None
    if at is not None or listed:
        # Without ``at``, the latest point: the mirror may hold more than it (the
        # uploads of a backup refused over its deletions).
        point = media_history.select(listed, "latest" if at is None else at)
        sources, sizes = _point_files(rclone, settings, point)
    else:  # no points: a mirror written by django-rclone, or before history existed
        sizes = rclone.sizes(mirror)
        sources = dict.fromkeys(sizes, mirror)
    local = set(rclone.sizes(root))
    groups: dict[str, list[str]] = defaultdict(list)
    for path, source in sources.items():
        groups[source].append(path)
    copy: list[str] = []
    replace: list[str] = []
    planned: dict[str, list[str]] = {}
    for source, paths in groups.items():
        # rclone compares each file (size, time) as a sync would.
        marks = _marks(rclone.changes("copy", source, root, files=paths))
        copy += marks["+"]
        replace += marks["*"]
        if marks["+"] or marks["*"]:
            planned[source] = marks["+"] + marks["*"]
    plan = MediaPlan(
        source=mirror if point is None else f"{history_dir(settings)} (point {point.name})",
        destination=root,
        copy=sorted(copy),
        replace=sorted(replace),
        delete=sorted(local - set(sizes)),
        files=sizes,
        destination_files=len(local),
        bytes=sum(sizes[p] for p in copy + replace),
        point=None if point is None else point.name,
        groups=planned,
    )
    _guard(plan, allow_empty, max_delete, settings)
    return plan


def restore_media(
    *,
    at: str | datetime | None = None,
    allow_empty: bool = False,
    max_delete: MaxDelete = None,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
) -> MediaResult:
    """Make ``MEDIA_ROOT`` exactly the mirror, or with ``at`` exactly that media point.

    Local files not in it are deleted, within the guards (:func:`plan_restore`
    shows the plan first; ``manage.py mediarestore`` asks with it).
    """
    settings = settings or get_settings()
    root = media_root()
    run = Run.start("media_restore", None, run_id, progress)
    signals.pre_media_restore.send(sender="media_restore", run_id=run.run_id)
    rclone = Rclone(settings)
    with run.stage("sync"):
        plan = plan_restore(
            at=at, allow_empty=allow_empty, max_delete=max_delete, settings=settings
        )
        Path(root).mkdir(parents=True, exist_ok=True)
        for source, paths in plan.groups.items():
            rclone.transfer("copy", source, root, paths)
        if plan.delete:
            # After the copies: a failed copy leaves the local files in place.
            rclone.transfer("delete", root, "", plan.delete)
    logger.info(
        "media restore: %d copied, %d replaced, %d deleted, %d bytes",
        len(plan.copy),
        len(plan.replace),
        len(plan.delete),
        plan.bytes,
    )
    counts = _counts(plan)
    signals.post_media_restore.send_robust(sender="media_restore", run_id=run.run_id, **counts)
    return MediaResult(
        operation="media_restore",
        source=plan.source,
        destination=root,
        duration=run.elapsed,
        run_id=run.run_id,
        files=len(plan.files),
        size=sum(plan.files.values()),
        point=plan.point,
        copied=len(plan.copy),
        replaced=len(plan.replace),
        deleted=len(plan.delete),
        bytes=plan.bytes,
    )


# Listing and retention ------------------------------------------------------
def list_media(*, settings: Settings | None = None) -> list[Entry]:
    """The files of the mirror (the latest state)."""
    settings = settings or get_settings()
    return Rclone(settings).lsjson(media_dir(settings), recursive=True)


def list_media_points(*, settings: Settings | None = None) -> list[MediaPointInfo]:
    """The kept media points, newest first."""
    settings = settings or get_settings()
    entries = Rclone(settings).lsjson(history_dir(settings), modtime=False)
    return [
        MediaPointInfo(name=p.name, time=p.created, files=p.files, size=p.size)
        for p in media_history.points(e.name for e in entries)
    ]


def cleanup_media(
    *,
    keep: int | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> MediaCleanupResult:
    """Drop the media points no retention rule keeps, and the versions only they needed.

    The rules and settings are the database ones (``DB_CLEANUP_KEEP*``, see
    :mod:`retention`); ``keep`` overrides ``DB_CLEANUP_KEEP``. The mirror is
    never touched. Every kept point's record is read first: one that cannot
    be read stops the cleanup before anything is deleted.
    """
    settings = settings or get_settings()
    policy = retention.Policy.from_settings(settings, keep=keep)
    run = Run.start("media_cleanup", None, run_id, progress)
    rclone = Rclone(settings)
    history = history_dir(settings)
    with run.stage("cleanup"):
        stored = rclone.sizes(history)
        outcome = retention.plan(
            media_history.points(stored),
            policy,
            now or datetime.now(timezone.utc),
        )
        folders: dict[str, set[str]] = defaultdict(set)
        versions: dict[str, int] = {}
        for name, size in stored.items():
            folder, _, path = name.partition("/")
            if path and media_history.STAMP.fullmatch(folder):
                folders[folder].add(path)
                versions[name] = size
        needed: set[str] = set()
        for kept in outcome.kept:
            record = media_history.decode(
                rclone.get_bytes(join(history, kept.backup.record)), kept.backup.name
            )
            for path, where in media_history.locate(kept.backup.name, record, folders).items():
                if where is not None:
                    needed.add(f"{where}/{path}")
        stale = sorted(set(versions) - needed)
        victims = [p.record for p in outcome.deleted] + stale
        if not dry_run and victims:
            rclone.transfer("delete", history, "", victims)
            rclone.transfer("rmdirs", history, "", None, "--leave-root")  # emptied folders
    return MediaCleanupResult(
        kept=[k.backup.name for k in outcome.kept],
        deleted=[p.name for p in outcome.deleted],
        versions_deleted=len(stale),
        bytes_freed=sum(versions[v] for v in stale),
        run_id=run.run_id,
        reasons={k.backup.name: list(k.reasons) for k in outcome.kept},
        dry_run=dry_run,
    )
