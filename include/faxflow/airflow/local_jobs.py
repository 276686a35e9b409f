"""The local backend's "jobs": ``faxflow job`` as a detached process that records its exit code in a file.

A group runs as ``sh -c '<faxflow job …> >OUT 2>ERR; echo $? >EXIT.tmp && mv EXIT.tmp EXIT'`` in its own
session, so the Airflow task can defer (and give its worker slot back) while the group runs, exactly
like a Slurm job; :class:`~faxflow.airflow.triggers.LocalJobTrigger` waits for the exit file.

Whether a job still runs is told by files only, never by its pid: the wrapper touches a heartbeat file
every :data:`HEARTBEAT_SECONDS`, so a triggerer or worker in another PID namespace (another container,
``unshare --pid``) sees the same truth. A job whose heartbeat is older than :data:`HEARTBEAT_STALE_SECONDS`
and that wrote no exit code is lost. The pid is used only to cancel, after checking that it really is
this job's wrapper.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

#: How often a running local job touches its heartbeat file.
HEARTBEAT_SECONDS = 5
#: A heartbeat this old (and no exit code) means the job is gone (machine reboot, killed wrapper).
HEARTBEAT_STALE_SECONDS = 6 * HEARTBEAT_SECONDS


@dataclass(frozen=True)
class LocalJob:
    pid: int
    stdout: str
    stderr: str
    exit_file: str
    heartbeat_file: str

    def to_dict(self) -> dict:
        return asdict(self)


def faxflow_command() -> list[str]:
    """How to call this installation's ``faxflow``: the console script next to the interpreter, else PATH."""
    beside = Path(sys.executable).with_name("faxflow")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("faxflow")
    if found:
        return [found]
    return [sys.executable, "-m", "faxflow.cli"]


def launch(args: Sequence[str], *, log_dir: Path, name: str) -> LocalJob:
    """Start ``faxflow <args>`` detached; return where its output and exit code will appear.

    :param args: faxflow arguments (``["job", "--manifest", …]``)
    :param log_dir: directory for ``<name>.<id>.out/.err/.exit``
    :param name: job name (validated by the caller; used in file names)
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = log_dir / f"{name}.{time.strftime('%Y%m%dT%H%M%S')}.{uuid.uuid4().hex[:6]}"
    out, err, exit_file, heartbeat = (f"{stem}.out", f"{stem}.err", f"{stem}.exit", f"{stem}.heartbeat")
    Path(heartbeat).touch()
    command = " ".join(shlex.quote(part) for part in [*faxflow_command(), *args])
    beat = shlex.quote(heartbeat)
    script = (f"(while :; do touch {beat}; sleep {HEARTBEAT_SECONDS}; done) & beat=$!; "
              f"{command} >{shlex.quote(out)} 2>{shlex.quote(err)}; code=$?; kill $beat; "
              f"echo $code >{shlex.quote(exit_file + '.tmp')} && mv {shlex.quote(exit_file + '.tmp')} "
              f"{shlex.quote(exit_file)}")
    process = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    threading.Thread(target=process.wait, daemon=True, name=f"reap-{process.pid}").start()
    return LocalJob(pid=process.pid, stdout=out, stderr=err, exit_file=exit_file, heartbeat_file=heartbeat)


def read_exit_code(exit_file: str) -> Optional[int]:
    try:
        return int(Path(exit_file).read_text().strip())
    except (OSError, ValueError):
        return None


def local_job_event(exit_file: str, pid: int, job_name: str) -> Optional[dict]:
    """A trigger-event payload if the job has ended (its exit file exists), else None.

    Exit codes above 128 from the shell mean "killed by signal N-128" and map to FAILED with that signal.
    """
    code = read_exit_code(exit_file)
    if code is None:
        return None
    sig = code - 128 if code > 128 else 0
    state = "COMPLETED" if code == 0 else "FAILED"
    return {"status": "done", "job_id": str(pid), "job_name": job_name, "state": state,
            "exit_code": 0 if sig else code, "signal": sig, "elapsed": "", "reason": "", "source": "local",
            "message": f"local job ended with exit code {code}"}


def heartbeat_fresh(heartbeat_file: str, now: Optional[float] = None) -> bool:
    """True while the job's wrapper keeps touching its heartbeat file."""
    try:
        age = (time.time() if now is None else now) - os.stat(heartbeat_file).st_mtime
    except OSError:
        return False
    return age <= HEARTBEAT_STALE_SECONDS


def _is_wrapper_of(pid: int, exit_file: str) -> bool:
    """Is ``pid`` (in this PID namespace) the wrapper that will write ``exit_file``?"""
    try:
        return exit_file.encode() in Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except OSError:
        return False


def kill_local_job(pid: int, exit_file: str, grace_seconds: float = 5.0) -> None:
    """SIGTERM the job's process group, SIGKILL after a grace period.

    Only a session leader whose command line is this job's wrapper is signalled: in another PID namespace
    the same number may be someone else's process.
    """
    if not _is_wrapper_of(pid, exit_file):
        return
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return
    if group != pid:  # not the session we started: never signal someone else's group
        return
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
