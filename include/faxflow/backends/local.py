"""The local backend: a group is a detached ``faxflow job`` process, watched through its exit and heartbeat
files (never its pid, so any PID namespace sees the same), cancelled through its verified process group.
Outputs, manifests and logs are all on this machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

from faxflow.airflow.triggers import settle_until
from faxflow.backends.base import Backend
from faxflow.slurm import commands


class LocalBackend(Backend):
    """Groups as detached ``faxflow job`` processes on this machine (:mod:`faxflow.airflow.local_jobs`)."""

    name = "local"

    # -- plan, prepare, collect, report -----------------------------------------------------------
    def locate(self, local_root: Path) -> dict:
        return {"output_root": str(local_root)}

    def prepare(self, variant: str, info: dict) -> list[dict]:
        log_dir = self.log_dir()
        log_dir.mkdir(parents=True, exist_ok=True)
        return [{"manifest": group["slice"], "log_dir": str(log_dir)} for group in info["groups"]]

    def log_dir(self) -> Path:
        """Where this run's job logs go: ``<local_root>/<campaign>/airflow/<run_key>/jobs``."""
        plan = self.plan_info
        return Path(plan["local_root"]) / plan["campaign"] / "airflow" / plan["run_key"] / "jobs"

    def index_path(self) -> str:
        return self.plan_info["manifest"]

    def run_faxflow(self, args: list[str], spec: Optional[dict] = None) -> tuple[int, str, str]:
        from faxflow.airflow.local_jobs import faxflow_command

        done = subprocess.run([*faxflow_command(), *args], capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr

    def read_bytes(self, path: str, max_bytes: int = 16 * 1024 * 1024) -> Optional[bytes]:
        try:
            with open(path, "rb") as handle:
                return handle.read(max_bytes)
        except FileNotFoundError:
            return None

    def fetch(self, paths: list[str], local_dir: Path) -> list[Path]:
        return [Path(path) for path in paths]

    # -- a group's job ----------------------------------------------------------------------------
    def status_event(self, job: dict) -> Optional[dict]:
        from faxflow.airflow.local_jobs import heartbeat_fresh, local_job_event

        event = local_job_event(job["exit_file"], int(job["pid"]), job["job_name"])
        if event is not None:
            return event
        alive = heartbeat_fresh(job.get("heartbeat_file", ""))
        return {"status": "active", "state": "RUNNING"} if alive else None

    def job_args(self) -> list[str]:
        """``faxflow job …`` arguments of this group."""
        spec = self.spec
        args = ["job", "--manifest", spec["manifest"], "--digest", spec["digest"],
                "--group", str(int(spec["group"])), "--output-root", spec["output_root"]]
        return [*args, "--force"] if spec.get("force") else args

    def submit(self, resources: dict) -> dict:
        from faxflow.airflow.local_jobs import launch

        spec = self.spec
        job = launch(self.job_args(), log_dir=Path(spec["log_dir"]), name=commands.check_name(spec["job_name"]))
        return {"backend": self.name, "job_id": str(job.pid), "job_name": spec["job_name"], "host": "localhost",
                **job.to_dict()}

    def trigger(self, job: dict):
        from faxflow.airflow.triggers import LocalJobTrigger

        return LocalJobTrigger(exit_file=job["exit_file"], pid=int(job["pid"]), heartbeat_file=job["heartbeat_file"],
                               job_name=job["job_name"], poll_interval=min(self.op.poll_interval, 1.0),
                               max_wait_seconds=self.op.max_wait_seconds,
                               log_paths={"stdout": job["stdout"], "stderr": job["stderr"]},
                               not_before=settle_until())

    def tail(self, path: str, lines: int) -> str:
        try:
            with open(path, "rb") as handle:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - 256 * 1024))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cancel(self, job: dict) -> None:
        from faxflow.airflow.local_jobs import kill_local_job

        kill_local_job(int(job["pid"]), job["exit_file"])
