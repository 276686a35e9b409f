"""Deferrable waits for group jobs: Slurm jobs over SSH, and local ``faxflow job`` processes.

Both triggers bound themselves (``dag.test()`` ignores defer timeouts): a Slurm job that no Slurm view
knows for ``missing_grace_seconds`` is reported ``lost``, ``max_bad_answers`` failed or unparsable polls
in a row end the wait with ``error``, and ``max_wait_seconds`` caps the whole wait. All Slurm triggers of
one SSH connection in a triggerer share one poller (:mod:`faxflow.slurm.poller`): one ``sacct`` per
interval for every watched job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator, Optional

from airflow.triggers.base import BaseTrigger, TriggerEvent

from faxflow.slurm import commands
from faxflow.slurm import poller as shared_poller

logging.getLogger("asyncssh").setLevel(logging.WARNING)
log = logging.getLogger(__name__)


def _default_connector(ssh_conn_id: str, command_timeout: float):
    return lambda: shared_poller.connect_ssh(ssh_conn_id, command_timeout)


#: ``connector(ssh_conn_id, command_timeout) -> (() -> awaitable AsyncRunner)``; tests replace it with a fake.
connector = _default_connector


class SlurmJobTrigger(BaseTrigger):
    """Wait until a Slurm job is finished, lost or unobservable.

    :param ssh_conn_id: Airflow SSH connection of the login node (also the poller sharing key)
    :param job_id: the submitted job id
    :param job_name: deterministic job name (for the log)
    :param poll_interval: seconds between polls (the shared poller uses the smallest of its watchers'
        intervals, with ±10 % jitter)
    :param missing_grace_seconds: how long a job may be absent from sacct/squeue/scontrol before it is lost
    :param max_bad_answers: consecutive failed or unparsable polls before giving up
    :param max_wait_seconds: give up after this long (None: no cap besides the others)
    :param command_timeout: seconds for one status query
    """

    def __init__(self, ssh_conn_id: str, job_id: str, job_name: str = "", poll_interval: float = 30.0,
                 missing_grace_seconds: float = 300.0, max_bad_answers: int = 5,
                 max_wait_seconds: Optional[float] = None, command_timeout: float = 120.0):
        super().__init__()
        self.ssh_conn_id = ssh_conn_id
        self.job_id = commands.check_job_id(job_id)
        self.job_name = job_name
        self.poll_interval = float(poll_interval)
        self.missing_grace_seconds = float(missing_grace_seconds)
        self.max_bad_answers = int(max_bad_answers)
        self.max_wait_seconds = None if max_wait_seconds is None else float(max_wait_seconds)
        self.command_timeout = float(command_timeout)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("faxflow.airflow.triggers.SlurmJobTrigger", {
            "ssh_conn_id": self.ssh_conn_id, "job_id": self.job_id, "job_name": self.job_name,
            "poll_interval": self.poll_interval, "missing_grace_seconds": self.missing_grace_seconds,
            "max_bad_answers": self.max_bad_answers, "max_wait_seconds": self.max_wait_seconds,
            "command_timeout": self.command_timeout})

    def _event(self, status: str, message: str, job: Optional[dict] = None) -> TriggerEvent:
        payload = {"status": status, "job_id": self.job_id, "job_name": self.job_name, "message": message}
        if job:
            payload.update(state=job["state"], exit_code=job["exit_code"], signal=job["signal"],
                           elapsed=job["elapsed"], reason=job["reason"], source=job["source"])
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        missing_since: Optional[float] = None
        bad = 0
        last_state = None
        connect = connector(self.ssh_conn_id, self.command_timeout)
        async for result in shared_poller.watch(self.ssh_conn_id, self.job_id, connect,
                                                interval=self.poll_interval, command_timeout=self.command_timeout):
            now = time.monotonic()
            if self.max_wait_seconds is not None and now - started > self.max_wait_seconds:
                yield self._event("timeout", f"still {last_state or 'unknown'} after {self.max_wait_seconds:.0f} s")
                return
            if result.error is not None or (result.status is None and result.bad_lines):
                bad += 1
                self.log.warning("job %s: bad answer %d/%d: %s", self.job_id, bad, self.max_bad_answers,
                                 result.error or f"{result.bad_lines} unparsable line(s)")
                if bad >= self.max_bad_answers:
                    yield self._event("error", f"{bad} failed status polls in a row; last: "
                                               f"{result.error or 'unparsable output'}")
                    return
                continue
            bad = 0
            if result.status is None:
                missing_since = missing_since or now
                if now - missing_since >= self.missing_grace_seconds:
                    yield self._event("lost", f"no Slurm view (sacct, squeue, scontrol) has shown the job for "
                                              f"{now - missing_since:.0f} s")
                    return
                continue
            missing_since = None
            status = result.status
            if status.state.value != last_state:
                self.log.info("Slurm job %s (%s): %s%s", self.job_id, self.job_name, status.state.value,
                              f" ({status.reason})" if status.reason and status.reason != "None" else "")
                last_state = status.state.value
            if status.state.terminal:
                yield self._event("done", f"job ended {status.state.value}", status.to_dict())
                return

    async def on_kill(self) -> None:
        """The user marked/cleared the deferred task: cancel the Slurm job."""
        connect = connector(self.ssh_conn_id, self.command_timeout)
        runner = await connect()
        try:
            result = await runner.run(commands.scancel([self.job_id]))
            self.log.info("scancel %s: exit %s %s", self.job_id, result.exit_status, result.stderr.strip())
        finally:
            await runner.close()


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class LocalJobTrigger(BaseTrigger):
    """Wait for a local ``faxflow job`` process to write its exit-code file.

    :param exit_file: file the wrapper writes the exit code to (atomically) when the job ends
    :param pid: process id of the wrapper (session leader), for "lost" detection and cancellation
    :param job_name: for the log
    :param poll_interval: seconds between checks
    :param max_wait_seconds: give up after this long
    """

    def __init__(self, exit_file: str, pid: int, job_name: str = "", poll_interval: float = 1.0,
                 max_wait_seconds: Optional[float] = None):
        super().__init__()
        self.exit_file = exit_file
        self.pid = int(pid)
        self.job_name = job_name
        self.poll_interval = float(poll_interval)
        self.max_wait_seconds = None if max_wait_seconds is None else float(max_wait_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("faxflow.airflow.triggers.LocalJobTrigger", {
            "exit_file": self.exit_file, "pid": self.pid, "job_name": self.job_name,
            "poll_interval": self.poll_interval, "max_wait_seconds": self.max_wait_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from faxflow.airflow.local_jobs import local_job_event

        started = time.monotonic()
        gone_checks = 0
        while True:
            event = local_job_event(self.exit_file, self.pid, self.job_name)
            if event is not None:
                yield TriggerEvent(event)
                return
            if not _pid_alive(self.pid) and not Path(self.exit_file).exists():
                gone_checks += 1
                if gone_checks >= 3:
                    yield TriggerEvent({"status": "lost", "job_id": str(self.pid), "job_name": self.job_name,
                                        "message": "the local job process ended without writing its exit code"})
                    return
            if self.max_wait_seconds is not None and time.monotonic() - started > self.max_wait_seconds:
                yield TriggerEvent({"status": "timeout", "job_id": str(self.pid), "job_name": self.job_name,
                                    "message": f"still running after {self.max_wait_seconds:.0f} s"})
                return
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        from faxflow.airflow.local_jobs import kill_local_job

        kill_local_job(self.pid)
