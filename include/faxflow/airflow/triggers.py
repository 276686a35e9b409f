"""Deferrable waits for group jobs: Slurm jobs over SSH, and local ``faxflow job`` processes.

Both triggers bound themselves (``dag.test()`` ignores defer timeouts): a Slurm job that no Slurm view
knows for ``missing_grace_seconds`` is reported ``lost``, ``max_bad_answers`` failed or unparsable polls
in a row end the wait with ``error``, and ``max_wait_seconds`` caps the whole wait. All Slurm triggers of
one SSH connection in a triggerer share one poller (:mod:`faxflow.slurm.poller`): one ``sacct`` per
interval for every watched job.

While a job runs, both triggers copy the new lines of its stdout/stderr into the task log (progress lines
``FAXFLOW_PROGRESS …``, kernel compilation), at most :data:`LOG_CHUNK_BYTES` per file and poll. When the
job ends they copy the rest and say so in the event (``logs_streamed``), so the operator does not print
the same lines again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time
from collections.abc import AsyncIterator
from typing import Any, Optional

from airflow.triggers.base import BaseTrigger, TriggerEvent

from faxflow.slurm import commands
from faxflow.slurm import poller as shared_poller

logging.getLogger("asyncssh").setLevel(logging.WARNING)
log = logging.getLogger(__name__)


#: Shortest time between deferring and the trigger's event. The worker that deferred may take seconds to
#: exit on a busy machine; if the event re-queues the task first, the scheduler takes the late "worker
#: finished" report for a state changed externally and fails the task (seen with clears that redo one step).
DEFERRAL_SETTLE_SECONDS = 10.0


def settle_until() -> float:
    """When a trigger deferred now may fire at the earliest."""
    return time.time() + DEFERRAL_SETTLE_SECONDS


async def settle(not_before: Optional[float]) -> None:
    """Wait until ``not_before`` (epoch seconds) before firing an event (see :data:`DEFERRAL_SETTLE_SECONDS`)."""
    if not_before is not None:
        await asyncio.sleep(max(0.0, not_before - time.time()))


#: Most bytes of one log file copied per poll (a chatty job is shown in pieces, never blocks the loop).
LOG_CHUNK_BYTES = 64 * 1024


class LogFollower:
    """Follows a job's log files by byte offset and hands out complete new lines.

    :param paths: label (``stdout``/``stderr``) → file path
    :param read: ``await read(path, offset, limit) -> bytes`` (empty if the file does not exist yet)
    :param emit: called with ``(label, line)`` for every new line
    """

    def __init__(self, paths: dict[str, str], read, emit):
        self.paths = {label: path for label, path in (paths or {}).items() if path}
        self.offsets = {label: 0 for label in self.paths}
        self._read = read
        self._emit = emit

    async def follow(self, final: bool = False) -> None:
        """Copy new complete lines; with ``final`` also the last line without a newline, until files end."""
        for label, path in self.paths.items():
            while True:
                data = await self._read(path, self.offsets[label], LOG_CHUNK_BYTES)
                complete = data if final and len(data) < LOG_CHUNK_BYTES else data[:data.rfind(b"\n") + 1]
                for line in complete.decode("utf-8", "replace").splitlines():
                    self._emit(label, line)
                self.offsets[label] += len(complete)
                if not final or len(data) < LOG_CHUNK_BYTES or not complete:
                    break


def remote_log_reader(run):
    """A :class:`LogFollower` reader over SSH: ``run(command) -> CommandResult`` of the shared connection."""

    async def read(path: str, offset: int, limit: int) -> bytes:
        quoted = shlex.quote(commands.check_path(path))
        result = await run(f"if [ -f {quoted} ]; then tail -c +{int(offset) + 1} -- {quoted} "
                           f"| head -c {int(limit)}; fi")
        return result.stdout.encode("utf-8") if result.ok else b""

    return read


def _read_local(path: str, offset: int, limit: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(limit)
    except OSError:
        return b""


async def local_log_reader(path: str, offset: int, limit: int) -> bytes:
    return await asyncio.to_thread(_read_local, path, offset, limit)


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
    :param log_paths: label → remote log file of the job, copied into the task log while it runs
    :param not_before: fire no event before this time (epoch seconds; see :data:`DEFERRAL_SETTLE_SECONDS`)
    """

    def __init__(self, ssh_conn_id: str, job_id: str, job_name: str = "", poll_interval: float = 30.0,
                 missing_grace_seconds: float = 300.0, max_bad_answers: int = 5,
                 max_wait_seconds: Optional[float] = None, command_timeout: float = 120.0,
                 log_paths: Optional[dict[str, str]] = None, not_before: Optional[float] = None):
        super().__init__()
        self.log_paths = dict(log_paths or {})
        self.not_before = not_before
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
            "command_timeout": self.command_timeout, "log_paths": self.log_paths, "not_before": self.not_before})

    def _event(self, status: str, message: str, job: Optional[dict] = None) -> TriggerEvent:
        payload = {"status": status, "job_id": self.job_id, "job_name": self.job_name, "message": message}
        if job:
            payload.update(state=job["state"], exit_code=job["exit_code"], signal=job["signal"],
                           elapsed=job["elapsed"], reason=job["reason"], source=job["source"])
        return TriggerEvent(payload)

    def _log_line(self, label: str, line: str) -> None:
        self.log.info("[job %s %s] %s", self.job_id, label, line)

    async def _follow(self, follower: Optional[LogFollower], final: bool = False) -> bool:
        """Copy new log lines; False if the files could not be read (they are then printed at the end)."""
        if follower is None:
            return False
        try:
            await follower.follow(final)
            return True
        except Exception as error:  # noqa: BLE001 - the log copy is best effort, the job state is what counts
            self.log.debug("job %s: could not read its log: %s", self.job_id, error)
            return False

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        missing_since: Optional[float] = None
        bad = 0
        last_state = None
        connect = connector(self.ssh_conn_id, self.command_timeout)
        follower = None
        async for result in shared_poller.watch(self.ssh_conn_id, self.job_id, connect,
                                                interval=self.poll_interval, command_timeout=self.command_timeout):
            if follower is None and self.log_paths:
                poller = shared_poller.get_poller(self.ssh_conn_id, connect, command_timeout=self.command_timeout)
                follower = LogFollower(self.log_paths, remote_log_reader(poller.run), self._log_line)
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
                streamed = await self._follow(follower, final=True)
                await settle(self.not_before)
                event = self._event("done", f"job ended {status.state.value}", status.to_dict())
                event.payload["logs_streamed"] = streamed
                yield event
                return
            if status.state.value == "RUNNING":
                await self._follow(follower)

    async def on_kill(self) -> None:
        """The user marked/cleared the deferred task: cancel the Slurm job."""
        connect = connector(self.ssh_conn_id, self.command_timeout)
        runner = await connect()
        try:
            result = await runner.run(commands.scancel([self.job_id]))
            self.log.info("scancel %s: exit %s %s", self.job_id, result.exit_status, result.stderr.strip())
        finally:
            await runner.close()


class LocalJobTrigger(BaseTrigger):
    """Wait for a local ``faxflow job`` process to write its exit-code file.

    :param exit_file: file the wrapper writes the exit code to (atomically) when the job ends
    :param pid: process id of the wrapper (session leader), for cancellation only
    :param heartbeat_file: file the wrapper touches while it runs (liveness, whatever the PID namespace)
    :param job_name: for the log
    :param poll_interval: seconds between checks
    :param max_wait_seconds: give up after this long
    :param log_paths: label → log file of the job, copied into the task log while it runs
    :param not_before: fire no event before this time (epoch seconds; see :data:`DEFERRAL_SETTLE_SECONDS`)
    """

    def __init__(self, exit_file: str, pid: int, heartbeat_file: str, job_name: str = "",
                 poll_interval: float = 1.0, max_wait_seconds: Optional[float] = None,
                 log_paths: Optional[dict[str, str]] = None, not_before: Optional[float] = None):
        super().__init__()
        self.log_paths = dict(log_paths or {})
        self.not_before = not_before
        self.heartbeat_file = heartbeat_file
        self.exit_file = exit_file
        self.pid = int(pid)
        self.job_name = job_name
        self.poll_interval = float(poll_interval)
        self.max_wait_seconds = None if max_wait_seconds is None else float(max_wait_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("faxflow.airflow.triggers.LocalJobTrigger", {
            "exit_file": self.exit_file, "pid": self.pid, "heartbeat_file": self.heartbeat_file,
            "job_name": self.job_name,
            "poll_interval": self.poll_interval, "max_wait_seconds": self.max_wait_seconds,
            "log_paths": self.log_paths, "not_before": self.not_before})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from faxflow.airflow.local_jobs import heartbeat_fresh, local_job_event

        started = time.monotonic()
        follower = LogFollower(self.log_paths, local_log_reader,
                               lambda label, line: self.log.info("[job %s %s] %s", self.job_name, label, line))
        while True:
            event = await asyncio.to_thread(local_job_event, self.exit_file, self.pid, self.job_name)
            if event is not None:
                await follower.follow(final=True)
                await settle(self.not_before)
                yield TriggerEvent({**event, "logs_streamed": True})
                return
            await follower.follow()
            alive = await asyncio.to_thread(heartbeat_fresh, self.heartbeat_file)
            if not alive and not await asyncio.to_thread(os.path.exists, self.exit_file):
                yield TriggerEvent({"status": "lost", "job_id": str(self.pid), "job_name": self.job_name,
                                    "message": f"the local job's heartbeat ({self.heartbeat_file}) stopped and it "
                                               "wrote no exit code"})
                return
            if self.max_wait_seconds is not None and time.monotonic() - started > self.max_wait_seconds:
                yield TriggerEvent({"status": "timeout", "job_id": str(self.pid), "job_name": self.job_name,
                                    "message": f"still running after {self.max_wait_seconds:.0f} s"})
                return
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        from faxflow.airflow.local_jobs import kill_local_job

        kill_local_job(self.pid, self.exit_file)
