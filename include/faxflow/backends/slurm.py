"""The Slurm backend: sbatch over SSH, one shared sacct poller in the triggerer, scancel.

The SSH transport is :class:`faxflow.slurm.client.SlurmClient` (sync, tasks) and
:mod:`faxflow.slurm.poller` (async, triggerer); the scheduler's command lines come from
:mod:`faxflow.slurm.commands`. This module only maps the backend interface onto them.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from faxflow.airflow.triggers import settle_until
from faxflow.slurm.script import minutes_to_slurm


class SlurmBackend:
    """Groups as Slurm batch jobs on a login node reached over SSH (:mod:`faxflow.slurm`)."""

    name = "slurm"

    def __init__(self, operator: Any):
        from faxflow.slurm.client import SlurmClient

        self.op = operator
        self.spec = operator.spec
        self.client = SlurmClient(operator.ssh_conn_id, command_timeout=operator.command_timeout)

    def close(self) -> None:
        self.client.close()

    def job_info(self, job_id: str) -> dict:
        name = self.spec["job_name"]
        return {"backend": "slurm", "job_id": job_id, "job_name": name, "host": self.op.ssh_conn_id,
                "stdout": f"{self.spec['slurm_log_dir']}/{name}_{job_id}.out",
                "stderr": f"{self.spec['slurm_log_dir']}/{name}_{job_id}.err"}

    def status_event(self, job: dict) -> Optional[dict]:
        """A finished-job event for a stored job, ``"active"`` if it still runs, None if unknown."""
        status = self.client.status(job["job_id"])
        if status is None:
            return None
        if status.state.active:
            return {"status": "active", "state": status.state.value}
        return {"status": "done", "job_id": job["job_id"], "job_name": job["job_name"],
                "state": status.state.value, "exit_code": status.exit_code, "signal": status.signal,
                "elapsed": status.elapsed, "reason": status.reason, "source": status.source,
                "message": f"job ended {status.state.value}"}

    def find_live(self) -> Optional[str]:
        live = self.client.find_live_by_name(self.spec["job_name"])
        return live.raw_id or live.array_master if live else None

    def submit(self, resources: dict) -> dict:
        options = {"time": minutes_to_slurm(int(resources["time_limit_minutes"])),
                   "mem-per-cpu": int(resources["mem_per_cpu_mb"])}
        submission = self.client.submit(self.spec["script"], options=options)
        return self.job_info(submission.job_id)

    def trigger(self, job: dict):
        from faxflow.airflow.triggers import SlurmJobTrigger

        interval = self.op.poll_interval
        return SlurmJobTrigger(ssh_conn_id=self.op.ssh_conn_id, job_id=job["job_id"], job_name=job["job_name"],
                               poll_interval=interval,
                               missing_grace_seconds=self.op.missing_grace_seconds or max(120.0, 4 * interval),
                               max_bad_answers=self.op.max_bad_answers, max_wait_seconds=self.op.max_wait_seconds,
                               command_timeout=self.op.command_timeout,
                               log_paths={"stdout": job["stdout"], "stderr": job["stderr"]},
                               not_before=settle_until())

    def tail(self, path: str, lines: int) -> str:
        return self.client.tail(path, lines)

    def read_json(self, path: str) -> Optional[dict]:
        data = self.client.read_bytes(path, max_bytes=4 * 1024 * 1024)
        return json.loads(data) if data else None

    def cancel(self, job: dict) -> None:
        self.client.cancel([job["job_id"]])
