"""One lock per record, so two identical runs never compute the same thing.

Policy: the second run does not wait.  It says which process holds the configuration
(pid, host, start time) and exits 2; rerun it once the first has finished, and it skips
the finished record.  Waiting would hide a stuck or forgotten run for hours.

The lock is `<record>.lock`, created exclusively (``O_CREAT | O_EXCL``, atomic on local
file systems and NFSv3+) and holding ``{"pid", "host", "started"}``.  A lock whose process
is gone (same host, no such pid) was left by a killed run: it is taken over.  A lock held
from another host cannot be checked, so it is reported with the command that removes it.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
from pathlib import Path

from realdata.errors import UserError


def lock_path(record_path) -> Path:
    record_path = Path(record_path)
    return record_path.with_name(record_path.name + ".lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _holder(path: Path) -> dict | None:
    """The lock's contents; None when it is unreadable (being written, or damaged)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


def _stale(holder: dict | None) -> bool:
    return holder is not None and holder.get("host") == socket.gethostname() and not _alive(holder["pid"])


def _create(path: Path) -> bool:
    """Create the lock with our pid and host; False if it already exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, handle)
    return True


def acquire(record_path) -> Path:
    """Take the lock of `record_path` or raise a UserError naming its holder."""
    path = lock_path(record_path)
    for _ in range(2):  # a second try after removing a stale lock
        if _create(path):
            return path
        holder = _holder(path)
        if not _stale(holder):
            break
        path.unlink(missing_ok=True)  # its process was killed: take it over
    who = (f"process {holder['pid']} on {holder.get('host')} (since {holder.get('started')})" if holder
           else "another process")
    raise UserError(f"{who} is already computing {Path(record_path).name}; rerun when it has finished (the "
                    f"finished record is then skipped), or delete {path} if that process is gone.")


def release(path: Path) -> None:
    """Remove our lock (only ours: a lock taken over by another run stays)."""
    holder = _holder(path)
    if holder is not None and holder["pid"] == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def record_lock(record_path):
    """Hold the lock of `record_path` for the duration of the block."""
    path = acquire(record_path)
    try:
        yield path
    finally:
        release(path)
