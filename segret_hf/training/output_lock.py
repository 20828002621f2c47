"""One training run per output directory, and a mark on directories whose run did not finish.

Two runs started into the same fresh directory would both pass the "must be empty" check and then write
over each other's checkpoints, weights and metrics. The run therefore creates `.segret-train.lock` (its pid,
host and start time) atomically before writing anything, and removes it only after its final save; while
it exists, another run into that directory is refused.

A lock whose process is gone (same host, pid no longer running) is stale: its run was killed or failed, so
the directory may hold checkpoints but an incomplete final model. A new run takes such a directory over
only when told what to do with it: `--resume_from_checkpoint` to continue, `--overwrite_output_dir` to start
over. A directory holding nothing but a stale lock is taken over silently (its run failed before writing).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = ".segret-train.lock"


class OutputLockError(ValueError):
    """The output directory is in use by another run, or holds an interrupted one; the message says which."""


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock: enough to tell whether it still runs (on this host) and to name it in messages."""

    pid: int
    host: str
    started: str

    @classmethod
    def this_process(cls) -> LockOwner:
        return cls(os.getpid(), socket.gethostname(), datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"

    def is_running(self) -> bool | None:
        """True or False on this host; None on another host, where the pid says nothing."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a live process of another user
            return True
        return True


def _read_owner(path: Path) -> LockOwner | None:
    """The lock's owner, or None when the file is being written (or was left unreadable)."""
    try:
        return LockOwner(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, TypeError):
        return None


def _create(path: Path, owner: LockOwner) -> bool:
    """Create the lock file with `owner` in it; False when it already exists (someone else holds it)."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(asdict(owner), handle)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _other_entries(output_dir: Path) -> list[str]:
    return sorted(entry.name for entry in output_dir.iterdir() if entry.name != LOCK_NAME)


def check_available(output_dir: Path, resuming: bool, overwrite: bool) -> LockOwner | None:
    """Raise OutputLockError when a live run holds the directory, or an interrupted one that the flags do not
    allow taking over; return the interrupted run's owner (None when the directory is not locked).

    `resuming` / `overwrite` are the run's `--resume_from_checkpoint` / `--overwrite_output_dir`: either allows
    taking over the lock of an interrupted run.
    """
    path = output_dir / LOCK_NAME
    try:
        holder = _read_owner(path)
    except FileNotFoundError:
        return None
    running = holder.is_running() if holder is not None else True
    if running is not False:
        who = holder.describe() if holder is not None else "a run that is starting"
        unknown = " (on another host, so whether it still runs cannot be checked here)" if running is None else ""
        raise OutputLockError(
            f"Another training run ({who}){unknown} is writing into {str(output_dir)!r}. Wait for it to finish "
            f"or choose another --output_dir; if no run uses the directory any more, delete {str(path)!r}."
        )
    leftovers = _other_entries(output_dir)
    if leftovers and not (resuming or overwrite):
        checkpoints = sorted((name for name in leftovers if name.startswith("checkpoint-")), key=_step)
        resume = f" {str(output_dir / checkpoints[-1])!r}" if checkpoints else " CHECKPOINT"
        raise OutputLockError(
            f"{str(output_dir)!r} holds a training run that did not finish ({holder.describe()}): its final model "
            f"may be missing or incomplete. Pass --resume_from_checkpoint{resume} to continue it, "
            "--overwrite_output_dir to start over in it, or choose another --output_dir."
        )
    return holder


def _step(checkpoint_name: str) -> int:
    suffix = checkpoint_name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def acquire(output_dir: Path, resuming: bool, overwrite: bool) -> LockOwner:
    """Take the directory's lock for this process, or raise OutputLockError (see :func:`check_available`)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    owner = LockOwner.this_process()
    if _create(output_dir / LOCK_NAME, owner):
        return owner
    interrupted = check_available(output_dir, resuming, overwrite)
    if interrupted is not None:
        logger.warning("Taking over %s from an interrupted run (%s).", output_dir, interrupted.describe())
        (output_dir / LOCK_NAME).unlink(missing_ok=True)
    if not _create(output_dir / LOCK_NAME, owner):
        raise OutputLockError(
            f"Another training run took {str(output_dir)!r} at the same moment; choose another --output_dir."
        )
    return owner


def release(output_dir: Path, owner: LockOwner) -> None:
    """Remove the lock if `owner` still holds it."""
    path = output_dir / LOCK_NAME
    try:
        if _read_owner(path) == owner:
            path.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def output_lock(output_dir: Path, resuming: bool, overwrite: bool) -> Iterator[LockOwner]:
    """Hold the lock for the block: released when it completes, kept (marking the run unfinished) on failure.

    A failure before the run wrote anything into the directory releases the lock, and removes the directory
    if taking the lock created it, so a refused or failed start leaves nothing behind.
    """
    created = not output_dir.exists()
    owner = acquire(output_dir, resuming, overwrite)
    before = _other_entries(output_dir)
    try:
        yield owner
    except BaseException:
        if _other_entries(output_dir) == before:
            release(output_dir, owner)
            if created and not any(output_dir.iterdir()):
                output_dir.rmdir()
        raise
    release(output_dir, owner)
