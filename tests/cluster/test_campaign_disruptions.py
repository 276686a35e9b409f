"""Tests 6 and 11: the cluster misbehaves while a campaign runs through dag.test() on the real Slurm.

* sshd is restarted (every live SSH session is cut) while the deferred wait polls → the wait reconnects,
  the group is neither failed nor resubmitted;
* slurmctld is restarted mid-campaign → the campaign completes, exactly one completed job per group.
"""

from __future__ import annotations

import pytest

from .test_campaign_support import (  # noqa: F401 - fixtures used as test arguments
    Background,
    Campaign,
    airflow_ready,
    base_config,
    cluster_env,
    read_json,
    sacct_jobs,
    squeue_jobs,
    states,
    tries,
    unique,
    wait_for,
)

pytestmark = pytest.mark.cluster


def _slow(seconds: int) -> str:
    return f'if [ -n "${{SLURM_JOB_ID:-}}" ]; then sleep {int(seconds)}; fi'


def test_sshd_restart_while_waiting(cluster_env):
    sb = cluster_env
    name = unique("sshd")
    campaign = Campaign(base_config(name, sb, groups=1, variants=("va",), env_setup=[_slow(12)]))

    def drop_ssh():
        job = wait_for(lambda: [j for j in squeue_jobs(sb, campaign.job_prefix()) if j[2] == "RUNNING"], 120,
                       "the group's job to run")[0]
        sb.restart("sshd")  # kills the trigger's live connection too
        still = squeue_jobs(sb, campaign.job_prefix())
        return job, still

    helper = Background(drop_ssh)
    helper.start()
    run = campaign.test()
    job, still_running = helper.result()
    assert still_running and still_running[0][0] == job[0], "sshd restart happened after the job had ended"
    assert run.state == "success", states(run)
    assert tries(run)[("va.run", 0)] == 1  # no retry: the wait itself recovered
    jobs = sacct_jobs(sb, campaign.job_prefix())
    assert [(j["JobIDRaw"], j["State"]) for j in jobs] == [(job[0], "COMPLETED")], jobs


def test_slurmctld_restart_mid_campaign(cluster_env):
    sb = cluster_env
    name = unique("ctld")
    groups = 4
    campaign = Campaign(base_config(name, sb, groups=groups, variants=("va",), env_setup=[_slow(3)]))

    def restart_controller():
        # after one group has finished and while another one runs
        wait_for(lambda: len([j for j in squeue_jobs(sb, campaign.job_prefix(), all_states=True)
                              if j[2] == "COMPLETED"]) >= 1
                 and [j for j in squeue_jobs(sb, campaign.job_prefix()) if j[2] == "RUNNING"], 180,
                 "one group done and another running")
        sb.restart("slurmctld")

    helper = Background(restart_controller)
    helper.start()
    run = campaign.test()
    helper.result()
    assert run.state == "success", states(run)
    jobs = sacct_jobs(sb, campaign.job_prefix())
    names = [j["JobName"] for j in jobs]
    assert len(jobs) == groups and len(set(names)) == groups, jobs
    assert {j["State"] for j in jobs} == {"COMPLETED"}, jobs
    variant_dir = campaign.variant_dir("va")
    assert len(list((variant_dir / "merged").glob("*.parquet"))) == groups
    assert (variant_dir / "merged.parquet").exists()
    summary = read_json(variant_dir / "summary.json")
    assert summary["events_in"] == summary["events_out"] == groups * 5
