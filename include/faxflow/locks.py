"""Exclusive locks on outputs: one writer per group, one writer per shared simulation production.

A lock is an ``fcntl`` lock on a file that also names its holder (pid, host, since). The kernel
releases it when the holder dies, however it dies, so a lock never outlives its writer
(``docs/reliability.md``, one runner per output).
"""

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from faxflow.errors import StorageError


class OutputLockedError(StorageError):
    """Another process is writing these outputs."""


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "an unknown process"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"


@contextmanager
def exclusive(path: Path, what: str, *, wait_seconds: float = 0.0, poll_seconds: float = 0.2):
    """Hold the lock ``path`` for the block; wait up to ``wait_seconds``, then raise naming the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    waited = f" after waiting {wait_seconds:.0f} s" if wait_seconds else ""
                    raise OutputLockedError(f"{what} is being written by {_holder(path)}{waited} "
                                            f"(lock {path})") from None
                time.sleep(poll_seconds)
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, holder.encode(), 0)
        yield
    finally:
        os.close(descriptor)
