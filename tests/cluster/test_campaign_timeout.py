"""Test 4 (the only TIMEOUT test: Slurm enforces limits in whole minutes, so it costs 60-100 s): a
group that outlives its 1-minute limit is classified TIMEOUT and resubmitted with a larger limit."""

from __future__ import annotations

import pytest

from .test_campaign_support import Campaign, airflow_ready, base_config, cluster_env, sacct_jobs, states, tries, unique  # noqa: F401 - fixtures used as test arguments

pytestmark = pytest.mark.cluster


def test_timeout_is_retried_with_more_time(cluster_env):
    sb = cluster_env
    name = unique("tmo")
    slow = sb.remote_root / name / "slow-once"
    # the first job of the group sleeps past its limit; the flag is consumed, so the retry runs normally
    setup = f'if [ -n "${{SLURM_JOB_ID:-}}" ] && rm "{slow}" 2>/dev/null; then sleep 600; fi'
    campaign = Campaign(base_config(name, sb, groups=1, variants=("va",), time_limit_minutes=1,
                                    max_time_limit_minutes=5, retries=1, env_setup=[setup]))
    sb.ssh(["mkdir", "-p", str(slow.parent)], check=True)
    sb.ssh(["touch", str(slow)], check=True)

    run = campaign.test()
    assert run.state == "success", states(run)
    assert tries(run)[("va.run", 0)] == 2
    jobs = sacct_jobs(sb, campaign.job_prefix())
    assert [j["State"] for j in jobs] == ["TIMEOUT", "COMPLETED"], jobs
    assert len({j["JobName"] for j in jobs}) == 1
    assert [j["TimelimitRaw"] for j in jobs] == ["1", "2"], jobs  # minutes: doubled on TIMEOUT
    assert not slow.exists()
