"""The job options and job environment that prepare sets up on the real Slurm: an unknown partition fails
prepare once, before anything is compiled or submitted; jobs use the kernel cache under ``remote_root`` that
prepare warmed."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_campaign_support import (  # noqa: F401 - fixtures used as test arguments
    Campaign,
    airflow_ready,
    base_config,
    cluster_env,
    read_json,
    sacct_jobs,
    states,
    tries,
    unique,
)

pytestmark = pytest.mark.cluster


def test_an_unknown_partition_fails_prepare_in_one_try_naming_it(cluster_env):
    from airflow.sdk.exceptions import AirflowFailException

    from faxflow.airflow import tasks
    from faxflow.config import load_campaign

    sb = cluster_env
    name = unique("nopart")
    campaign = Campaign(base_config(name, sb, groups=2, variants=("va",), partition="nosuchpartition",
                                    retries=3, retry_delay_seconds=30, share_kernels=False))
    run = campaign.test()
    assert run.state == "failed"
    assert states(run)[("va.prepare", -1)] == "failed" and tries(run)[("va.prepare", -1)] == 1  # no retry
    assert {state for key, state in states(run).items() if key[0] == "va.run"} == {"upstream_failed"}
    assert not sacct_jobs(sb, campaign.job_prefix(), settle=2)
    assert not (Path(campaign.cluster["remote_root"]) / "cache").exists()  # failed before warming kernels

    plan_info = tasks.plan_campaign(str(campaign.path), f"manual__{name}", {})
    cluster = load_campaign(campaign.path).variant("va").settings["cluster"]
    with pytest.raises(AirflowFailException) as refused:
        tasks.prepare_variant(plan_info, "va", cluster)
    message = str(refused.value)
    assert "cluster.partition" in message and "nosuchpartition" in message, message


def test_jobs_use_the_kernel_cache_under_remote_root_that_prepare_warmed(cluster_env):
    from faxflow import __version__

    sb = cluster_env
    name = unique("kcache")
    config = base_config(name, sb, groups=1, events=3, variants=("va",), share_kernels=False)
    remote_root = config["cluster"]["remote_root"]
    cache = f"{remote_root}/cache/kernels"
    # a copy of the session's cache (if another test warmed it) saves the compile; the check is where it is
    sb.ssh(["sh", "-c", 'mkdir -p "$2" && if [ -d "$1" ]; then cp -a "$1/." "$2/"; fi', "seed",
            f"{sb.remote_root}/.kernel-cache", cache], check=True)
    campaign = Campaign(config)
    run = campaign.test()
    assert run.state == "success", states(run)

    scripts = list(Path(remote_root).glob(f"{name}/*/jobs/*.sh"))
    assert len(scripts) == 1
    assert f"export FAXFLOW_KERNEL_CACHE={cache}" in scripts[0].read_text().splitlines()
    warmed = list(Path(cache).glob(f"{__version__}-*/warm-*.json"))
    assert len(warmed) == 1, list(Path(cache).rglob("*"))[:20]
    job_logs = "".join(path.read_text() for path in Path(remote_root).glob(f"{name}/*/slurm/*"))
    assert "faxflow job" in job_logs and "compiling kernels" not in job_logs  # loaded what prepare warmed
    assert read_json(campaign.variant_dir("va") / "summary.json")["events_out"] == 3
