"""Tests 7 and 8 on the real Slurm, through the group operator and its trigger (as Airflow runs them):
idempotent re-submission while the job is pending, and cancellation on kill."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from .test_campaign_support import (  # noqa: F401 - fixtures used as test arguments
    Campaign,
    airflow_ready,
    base_config,
    cluster_env,
    sacct_jobs,
    squeue_jobs,
    unique,
    wait_for,
)

pytestmark = pytest.mark.cluster

#: keeps a group's Slurm job running for a while (only inside Slurm jobs: prepare's remote commands skip it)
SLOW_JOB = 'if [ -n "${SLURM_JOB_ID:-}" ]; then sleep 300; fi'


class Store:
    """Stand-in for Airflow's ``task_state_store`` (survives task re-runs, like the real one)."""

    def __init__(self):
        self.data = {}

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value):
        self.data[key] = value


def prepared(campaign: Campaign, variant: str = "va"):
    """Plan and prepare the campaign on the cluster (the DAG's plan and prepare tasks); return the specs."""
    from faxflow.airflow import tasks
    from faxflow.config import load_campaign

    plan_info = tasks.plan_campaign(str(campaign.path), f"manual__{campaign.name}", {})
    cluster = load_campaign(campaign.path).variant(variant).settings["cluster"]
    return tasks.prepare_variant(plan_info, variant, cluster), cluster


def defer(op, context):
    """Run ``op.execute``; it must defer. Returns the trigger."""
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    return deferred.value.trigger


async def _first_event(trigger, timeout: float):
    async def first():
        async for event in trigger.run():
            return event.payload
    return await asyncio.wait_for(first(), timeout)


def first_event(trigger, timeout: float = 120.0) -> dict:
    return asyncio.run(_first_event(trigger, timeout))


@contextlib.contextmanager
def partition_down(sb):
    """Jobs are accepted but stay PENDING (Reason PartitionDown) until the block ends."""
    partition = sb.env.get("SANDBOX_PARTITION", "debug")
    sb.slurm("scontrol", "update", f"PartitionName={partition}", "State=DOWN", check=True)
    try:
        yield
    finally:
        sb.slurm("scontrol", "update", f"PartitionName={partition}", "State=UP", check=True)


def test_resubmit_reattaches_to_pending_job(cluster_env):
    from faxflow.airflow.operators import FaxflowGroupOperator

    sb = cluster_env
    name = unique("idem")
    campaign = Campaign(base_config(name, sb, groups=1, variants=("va",)))
    specs, cluster = prepared(campaign)
    spec = specs[0]
    store = Store()

    def attempt(state_store):
        op = FaxflowGroupOperator(task_id="run", spec=spec, cluster=cluster)
        return defer(op, {"ti": None, "task_state_store": state_store})

    with partition_down(sb):
        first = attempt(store)
        wait_for(lambda: [j for j in squeue_jobs(sb, spec["job_name"]) if j[2] == "PENDING"], 20,
                 "the job to be PENDING")
        # the task is run again (retry, worker crash, cleared) while its job is still pending
        again = attempt(store)
        assert again.job_id == first.job_id
        # ... even if the stored job id was lost: found by its deterministic name
        lost_state = attempt(Store())
        assert lost_state.job_id == first.job_id
        queued = squeue_jobs(sb, spec["job_name"])
        assert queued == [(first.job_id, spec["job_name"], "PENDING")], queued

    event = first_event(first)
    assert event["status"] == "done" and event["state"] == "COMPLETED", event
    op = FaxflowGroupOperator(task_id="run", spec=spec, cluster=cluster)
    result = op.execute_complete({"ti": None, "task_state_store": store}, event)
    assert result["job_id"] == first.job_id and result["productions"] == 1
    sb.wait_job(first.job_id, timeout=60, full_record=True)  # sacct shows a placeholder row at first
    jobs = sacct_jobs(sb, spec["job_name"])
    assert [(j["JobIDRaw"], j["State"]) for j in jobs] == [(first.job_id, "COMPLETED")]


def test_kill_cancels_the_slurm_job(cluster_env):
    from airflow.sdk.exceptions import AirflowFailException

    from faxflow.airflow.operators import FaxflowGroupOperator

    sb = cluster_env
    name = unique("kill")
    campaign = Campaign(base_config(name, sb, groups=2, variants=("va",), env_setup=[SLOW_JOB]))
    specs, cluster = prepared(campaign)

    # 1. the deferred wait is killed (task marked failed/cleared): the triggerer calls trigger.on_kill
    store = Store()
    op = FaxflowGroupOperator(task_id="run", spec=specs[0], cluster=cluster)
    trigger = defer(op, {"ti": None, "task_state_store": store})
    wait_for(lambda: [j for j in squeue_jobs(sb, specs[0]["job_name"]) if j[2] == "RUNNING"], 30,
             "the first job to run")
    asyncio.run(trigger.on_kill())
    wait_for(lambda: not squeue_jobs(sb, specs[0]["job_name"]), 20, "the job to leave squeue")
    jobs = sacct_jobs(sb, specs[0]["job_name"], expect=1)
    assert [(j["JobIDRaw"], j["State"].split()[0]) for j in jobs] == [(trigger.job_id, "CANCELLED")], jobs
    # a later look at the job classifies it CANCELLED and fails the task without resubmitting
    event = first_event(trigger, 30)
    assert (event["status"], event["state"]) == ("done", "CANCELLED"), event
    with pytest.raises(AirflowFailException, match="cancelled"):
        FaxflowGroupOperator(task_id="run", spec=specs[0], cluster=cluster).execute_complete(
            {"ti": None, "task_state_store": store}, event)

    # 2. the task is killed while the operator itself runs (worker on_kill)
    op = FaxflowGroupOperator(task_id="run", spec=specs[1], cluster=cluster)
    trigger = defer(op, {"ti": None, "task_state_store": Store()})
    wait_for(lambda: squeue_jobs(sb, specs[1]["job_name"]), 20, "the second job in squeue")
    op.on_kill()
    wait_for(lambda: not squeue_jobs(sb, specs[1]["job_name"]), 20, "the second job to leave squeue")
    jobs = sacct_jobs(sb, specs[1]["job_name"], expect=1)
    assert [(j["JobIDRaw"], j["State"].split()[0]) for j in jobs] == [(trigger.job_id, "CANCELLED")], jobs
