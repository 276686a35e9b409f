"""Test 5: jobs that finished while nobody watched, and that slurmctld has already purged (short
MinJobAge), are still classified from accounting (sacct): COMPLETED and FAILED, by the trigger's shared
poller and by the sync client; a new try whose stored job has ended submits again (a second sbatch in sacct)."""

from __future__ import annotations

import asyncio

import pytest

from .test_campaign_support import airflow_ready, unique, wait_for  # noqa: F401 - fixtures used as test arguments

pytestmark = pytest.mark.cluster


async def _first_event(trigger, timeout: float):
    async def first():
        async for event in trigger.run():
            return event.payload
    return await asyncio.wait_for(first(), timeout)


def test_purged_jobs_are_classified_from_accounting(sandbox_factory, airflow_ready, monkeypatch):
    from faxflow.airflow.operators import JOB_KEY, FaxflowGroupOperator
    from faxflow.airflow.triggers import SlurmJobTrigger
    from faxflow.slurm.client import SlurmClient

    sb = sandbox_factory(min_job_age=2, warmup=False)
    monkeypatch.setenv("AIRFLOW_CONN_FAXFLOW_SHORTAGE", sb.airflow_connection_json())
    name = unique("lost")
    ok = sb.sbatch(f"--output={sb.remote_root}/ok_%j.out", wrap="echo fine", name=f"{name}_ok")
    bad = sb.sbatch(f"--output={sb.remote_root}/bad_%j.out", wrap="echo broken; exit 4", name=f"{name}_bad")
    assert sb.wait_job(ok, 60) == "COMPLETED" and sb.wait_job(bad, 60) == "FAILED"
    # nobody watched; wait until slurmctld has forgotten both (squeue/scontrol: invalid job id)
    wait_for(lambda: all(sb.slurm("scontrol", "show", "job", j).returncode != 0 for j in (ok, bad)), 120,
             "slurmctld to purge the finished jobs", interval=0.5)
    for job in (ok, bad):
        assert sb.ssh(["squeue", "-h", "-t", "all", "-j", job]).returncode != 0

    # the shared poller (one sacct for both) behind two triggers
    async def both():
        triggers = [SlurmJobTrigger(ssh_conn_id="faxflow_shortage", job_id=j, poll_interval=1,
                                    missing_grace_seconds=30, command_timeout=30) for j in (ok, bad)]
        return await asyncio.gather(*(_first_event(t, 60) for t in triggers))

    ok_event, bad_event = asyncio.run(both())
    assert (ok_event["status"], ok_event["state"], ok_event["exit_code"]) == ("done", "COMPLETED", 0), ok_event
    assert (bad_event["status"], bad_event["state"], bad_event["exit_code"]) == ("done", "FAILED", 4), bad_event
    assert ok_event["source"] == bad_event["source"] == "sacct"

    # the sync client (operator re-attach path) sees the same
    with SlurmClient("faxflow_shortage") as client:
        assert client.status(ok).state.value == "COMPLETED"
        failed = client.status(bad)
        assert (failed.state.value, failed.exit_code) == ("FAILED", 4)

    # a new try (Clear) whose stored job finished while nobody watched does not reuse it: a new sbatch
    class Store(dict):
        def set(self, key, value):
            self[key] = value

    from airflow.sdk.exceptions import TaskDeferred

    script = sb.remote_root / f"{name}_again.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --job-name={name}_ok\n#SBATCH --output={sb.remote_root}/again_%j.out\n"
                      "echo again\n")
    script.chmod(0o755)
    spec = {"group": 0, "job_name": f"{name}_ok", "variant": "va", "backend": "slurm",
            "manifest": f"{sb.remote_root}/m.json", "output_root": f"{sb.remote_root}/outputs",
            "variant_dir": f"{sb.remote_root}/outputs/va", "script": str(script),
            "slurm_log_dir": str(sb.remote_root)}
    store = Store({JOB_KEY: {"backend": "slurm", "job_id": ok, "job_name": f"{name}_ok",
                             "stdout": f"{sb.remote_root}/ok_{ok}.out"}})
    op = FaxflowGroupOperator(task_id="run", spec=spec, cluster={"ssh_conn_id": "faxflow_shortage",
                                                                 "mem_per_cpu_mb": 100, "time_limit_minutes": 2})
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": None, "task_state_store": store})
    again = deferred.value.trigger.job_id
    assert again not in (ok, bad) and store[JOB_KEY]["job_id"] == again
    assert sb.wait_job(again, 60) == "COMPLETED"
    expected = sorted([f"{name}_ok", f"{name}_ok", f"{name}_bad"])

    def accounted():  # slurmdbd records a finished job a moment after squeue stops showing it
        cp = sb.slurm("sacct", "-a", "-X", "-n", "-P", "-S", "2020-01-01", "--format=JobName")
        return sorted(n for n in cp.stdout.split() if n.startswith(name)) == expected
    wait_for(accounted, 30, "sacct to list both submissions of the group and the failed job", interval=0.5)
