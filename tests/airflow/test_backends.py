"""The backend seam: a backend registered from outside faxflow is run end to end by the group operator."""

import asyncio
import inspect
import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import TaskDeferred

from faxflow import backends
from faxflow.airflow import operators
from faxflow.airflow.triggers import LocalJobTrigger


class InstantBackend:
    """A test-only scheduler: a job 'runs' by writing its outputs, exit code and log at submission."""

    submitted: list = []

    def __init__(self, operator):
        self.op, self.spec = operator, operator.spec
        self.dir = Path(self.spec["log_dir"])

    def submit(self, resources):
        stem = self.dir / f"{self.spec['job_name']}.{len(self.submitted)}"
        (stem.with_suffix(".out")).write_text('FAXFLOW_PROGRESS {"done": 1, "total": 1}\n')
        stem.with_suffix(".err").write_text("")
        stem.with_suffix(".heartbeat").touch()
        summary = Path(self.op._group_json())
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps({"productions": ["p0"], "failures": []}))
        stem.with_suffix(".exit").write_text("0\n")
        self.submitted.append(resources)
        return {"backend": "instant", "job_id": str(len(self.submitted)), "job_name": self.spec["job_name"],
                "stdout": str(stem.with_suffix(".out")), "stderr": str(stem.with_suffix(".err")),
                "exit_file": str(stem.with_suffix(".exit")), "heartbeat_file": str(stem.with_suffix(".heartbeat"))}

    def status_event(self, job):
        return None

    def find_live(self):
        return None

    def trigger(self, job):
        return LocalJobTrigger(exit_file=job["exit_file"], pid=0, heartbeat_file=job["heartbeat_file"],
                               job_name=job["job_name"], poll_interval=0.05, max_wait_seconds=30,
                               log_paths={"stdout": job["stdout"]})

    def tail(self, path, lines):
        return "\n".join(Path(path).read_text().splitlines()[-lines:])

    def read_json(self, path):
        return json.loads(Path(path).read_text())

    def cancel(self, job):
        pass

    def close(self):
        pass


class Store(dict):
    def set(self, key, value):
        self[key] = value


def test_a_registered_backend_runs_end_to_end(tmp_path):
    backends.register("instant", InstantBackend)
    spec = {"group": 0, "job_name": "ff_seam_g0000", "variant": "v", "backend": "instant",
            "manifest": "/unused", "output_root": str(tmp_path), "variant_dir": str(tmp_path / "v"),
            "log_dir": str(tmp_path), "force": False}
    operator = operators.FaxflowGroupOperator(task_id="run", spec=spec, cluster={"time_limit_minutes": 5})
    context = {"task_state_store": Store(), "ti": None}
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)

    async def wait():
        async for event in deferred.value.trigger.run():
            return event.payload

    result = operator.execute_complete(context, asyncio.run(wait()))
    assert (result["state"], result["productions"], result["job_id"]) == ("COMPLETED", 1, "1")
    assert InstantBackend.submitted[0]["time_limit_minutes"] == 5


def test_operator_never_branches_on_the_backend_name():
    source = inspect.getsource(operators)
    assert '"slurm"' not in source.replace('spec.get("backend", "slurm")', "") and '"local"' not in source
    with pytest.raises(ValueError, match="unknown backend 'pbs'.*local, slurm"):
        backends.create("pbs", None)
