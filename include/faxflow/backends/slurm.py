"""The Slurm backend: sbatch over SSH, one shared sacct poller in the triggerer, scancel.

The SSH transport is :class:`faxflow.slurm.client.SlurmClient` (sync, tasks) and
:mod:`faxflow.slurm.poller` (async, triggerer); the scheduler's command lines come from
:mod:`faxflow.slurm.commands`; prepare is :mod:`faxflow.backends.slurm_prepare`. This module only maps the
backend interface onto them. Outputs live under ``<remote_root>/outputs`` on the cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from faxflow.backends.base import Backend
from faxflow.slurm import commands
from faxflow.slurm.script import RemoteLayout, minutes_to_slurm

#: Largest output file (report, catalog) brought back from the cluster.
MAX_FETCH_BYTES = 256 * 1024 * 1024


class SlurmBackend(Backend):
    """Groups as Slurm batch jobs on a login node reached over SSH (:mod:`faxflow.slurm`)."""

    name = "slurm"
    location = "cluster"

    def __init__(self, cluster: dict, *, plan_info: Optional[dict] = None, operator: Any = None):
        super().__init__(cluster, plan_info=plan_info, operator=operator)
        resolved = self.plan_info.get("remote_root")
        if self.cluster["remote_root"].startswith("$") and resolved:
            self.cluster["remote_root"] = resolved  # the plan resolved $HOME/$SCRATCH on the cluster
        self.ssh_conn_id = operator.ssh_conn_id if operator is not None else self.cluster["ssh_conn_id"]
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from faxflow.slurm.client import SlurmClient

            timeout = self.op.command_timeout if self.op is not None else 60.0
            self._client = SlurmClient(self.ssh_conn_id, command_timeout=timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- plan, prepare, collect, report -----------------------------------------------------------
    def locate(self, local_root: Path) -> dict:
        from faxflow.backends.slurm_prepare import resolved_remote_root

        root = resolved_remote_root(self.client, self.cluster["remote_root"])
        return {"output_root": commands.check_path(self.planned_output_root({"remote_root": root}, "")),
                "remote_root": root}

    @staticmethod
    def planned_output_root(cluster: dict, local_root: str) -> str:
        return f"{cluster['remote_root'].rstrip('/')}/outputs"

    def prepare(self, variant: str, info: dict) -> list[dict]:
        from faxflow.backends.slurm_prepare import prepare_groups

        return prepare_groups(self.client, self.cluster, self.plan_info, variant, info)

    def _layout(self) -> RemoteLayout:
        plan = self.plan_info
        return RemoteLayout(self.cluster["remote_root"], plan["campaign"], plan["run_key"], plan["output_root"])

    def index_path(self) -> str:
        return f"{self._layout().manifest_path(self.plan_info['manifest_name'])}/index.json"

    def run_faxflow(self, args: list[str], spec: Optional[dict] = None) -> tuple[int, str, str]:
        if spec is not None:
            python_env = spec.get("python_env")
        else:
            from faxflow.backends.slurm_prepare import ensure_remote_faxflow

            python_env = ensure_remote_faxflow(self.client, self.cluster)
        result = self.client.run(commands.faxflow(args, python_env=python_env,
                                                  env_setup=self.cluster.get("env_setup") or ()), timeout=1800)
        return result.exit_status, result.stdout, result.stderr

    def read_bytes(self, path: str, max_bytes: int = 16 * 1024 * 1024) -> Optional[bytes]:
        return self.client.read_bytes(commands.check_path(path), max_bytes=max_bytes)

    def fetch(self, paths: list[str], local_dir: Path) -> list[Path]:
        fetched = []
        for path in paths:
            data = self.read_bytes(path, MAX_FETCH_BYTES)
            if data is None:
                raise FileNotFoundError(f"the cluster has no {path}")
            target = local_dir / Path(path).name
            target.write_bytes(data)
            fetched.append(target)
        return fetched

    # -- a group's job ----------------------------------------------------------------------------
    @staticmethod
    def job_hints(job: dict) -> list[str]:
        """On the login node: the job's accounting and the end of its log (none for unsafe values)."""
        try:
            return [commands.sacct([job.get("job_id", "")]), commands.tail(job.get("stdout", ""))]
        except ValueError:
            return []

    def job_info(self, job_id: str) -> dict:
        name = self.spec["job_name"]
        return {"backend": self.name, "job_id": job_id, "job_name": name, "host": self.ssh_conn_id,
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
        from faxflow.airflow.triggers import SlurmJobTrigger, settle_until

        interval = self.op.poll_interval
        return SlurmJobTrigger(ssh_conn_id=self.ssh_conn_id, job_id=job["job_id"], job_name=job["job_name"],
                               poll_interval=interval,
                               missing_grace_seconds=self.op.missing_grace_seconds or max(120.0, 4 * interval),
                               max_bad_answers=self.op.max_bad_answers, max_wait_seconds=self.op.max_wait_seconds,
                               command_timeout=self.op.command_timeout,
                               log_paths={"stdout": job["stdout"], "stderr": job["stderr"]},
                               not_before=settle_until())

    def tail(self, path: str, lines: int) -> str:
        return self.client.tail(path, lines)

    def cancel(self, job: dict) -> None:
        self.client.cancel([job["job_id"]])
