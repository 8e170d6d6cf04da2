"""One process at a time holds a job.

``job_lock(job_id)`` takes an exclusive ``flock`` on ``COMPOUND_HOME/locks/<job id>.lock`` without waiting:
a second process that asks for the same job gets ``JobBusyError`` naming the holder's pid and start time.
The operating system releases the lock when the holder ends, however it ends (``kill -9`` included), so a
stale lock cannot block a resume. The lock is re-entrant within a process (the CLI holds it while the
table runs and the output is written). Job ids are checked first: letters, digits, ``.``, ``_`` and ``-``
only, so an id can never name a path outside the locks folder. Without ``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from compound.core.errors import CompoundError, ConfigurationError
from compound.core.settings import get_settings

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_held: dict[str, tuple[int, int]] = {}  # job id -> (file descriptor, depth) in this process
_guard = threading.Lock()


class JobBusyError(CompoundError):
    """Another process is running this job."""


def check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
        raise ConfigurationError(
            f"job id {job_id!r} is not allowed: use 1 to 100 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit"
        )
    return job_id


def _path(job_id: str):
    folder = get_settings().home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{check_job_id(job_id)}.lock"


@contextmanager
def job_lock(job_id: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with _guard:
        if job_id in _held:
            fd, depth = _held[job_id]
            _held[job_id] = (fd, depth + 1)
        else:
            fd = os.open(_path(job_id), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise JobBusyError(
                    f"job {job_id} is being run by another process ({holder}); wait for it to finish, or stop "
                    f"that process and run: compound table --resume {job_id}"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
            _held[job_id] = (fd, 1)
    try:
        yield
    finally:
        with _guard:
            fd, depth = _held[job_id]
            if depth > 1:
                _held[job_id] = (fd, depth - 1)
            else:
                del _held[job_id]
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def job_running(job_id: str) -> bool:
    """Whether some process holds the job's lock now."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return False
    if job_id in _held:
        return True
    try:
        path = _path(job_id)
    except ConfigurationError:
        return False
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
