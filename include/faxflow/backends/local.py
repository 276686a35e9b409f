"""The local backend: a group is a detached ``faxflow job`` process, watched through its exit and heartbeat
files (never its pid, so any PID namespace sees the same), cancelled through its verified process group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from faxflow.airflow.triggers import settle_until
from faxflow.slurm import commands


class LocalBackend:
    """Groups as detached ``faxflow job`` processes on this machine (:mod:`faxflow.airflow.local_jobs`)."""

    name = "local"

    def __init__(self, operator: Any):
        self.op = operator
        self.spec = operator.spec

    def close(self) -> None:
        pass

    def status_event(self, job: dict) -> Optional[dict]:
        from faxflow.airflow.local_jobs import heartbeat_fresh, local_job_event

        event = local_job_event(job["exit_file"], int(job["pid"]), job["job_name"])
        if event is not None:
            return event
        alive = heartbeat_fresh(job.get("heartbeat_file", ""))
        return {"status": "active", "state": "RUNNING"} if alive else None

    def find_live(self) -> Optional[str]:
        return None  # a local job is only known through the stored pid

    def submit(self, resources: dict) -> dict:
        from faxflow.airflow.local_jobs import launch

        spec = self.spec
        args = ["job", "--manifest", spec["manifest"], "--digest", spec["digest"],
                "--group", str(int(spec["group"])),
                "--output-root", spec["output_root"]]
        if spec.get("force"):
            args.append("--force")
        job = launch(args, log_dir=Path(spec["log_dir"]), name=commands.check_name(spec["job_name"]))
        return {"backend": "local", "job_id": str(job.pid), "job_name": spec["job_name"], "host": "localhost",
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

    def read_json(self, path: str) -> Optional[dict]:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return None

    def cancel(self, job: dict) -> None:
        from faxflow.airflow.local_jobs import kill_local_job

        kill_local_job(int(job["pid"]), job["exit_file"])
