"""Test 3: a group whose Slurm job fails (injected engine error) is retried by the operator; only that
group is resubmitted and finished steps are not recomputed."""

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


def _records(directory):
    return {p.relative_to(directory).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_failed_group_is_retried_alone_without_recomputing(cluster_env):
    sb = cluster_env
    name = unique("retry")
    campaign = Campaign(base_config(name, sb, groups=3, productions_per_job=2, events=5, variants=("va",),
                                    retries=2, retry_delay_seconds=3))
    plan = campaign.plan()
    variant = plan.variants[0]
    group = plan.groups[1]
    first, faulty = group.production_ids
    variant_dir = sb.remote_root / name / "outputs" / variant.output_dir
    marker = variant_dir / "faults" / f"{faulty}.processing"
    # created by the test user (the variant directory must stay theirs)
    sb.ssh(["mkdir", "-p", str(marker.parent)], check=True)
    sb.ssh(["touch", str(marker)], check=True)
    job_name = f"ff_{name}_"  # prefix; the run key is only known once the DAG runs

    def heal_after_first_failure():
        """Once the faulty group's first job has FAILED: snapshot its done records, remove the fault."""
        failed = wait_for(lambda: [j for j in squeue_jobs(sb, job_name, all_states=True)
                                   if j[1].endswith(f"_g{1:04d}") and j[2] == "FAILED"], 240,
                          "the faulty group's job to fail", interval=0.1)
        snapshot = _records(variant_dir / "done")
        marker.unlink()
        return failed[0], snapshot

    helper = Background(heal_after_first_failure)
    helper.start()
    run = campaign.test()
    (failed_id, failed_name, _), done_before = helper.result()
    st, tr = states(run), tries(run)
    assert run.state == "success", st
    assert tr[("va.run", 1)] == 2 and tr[("va.run", 0)] == 1 and tr[("va.run", 2)] == 1, tr

    jobs = sacct_jobs(sb, job_name)
    by_name: dict[str, list[dict]] = {}
    for job in jobs:
        by_name.setdefault(job["JobName"], []).append(job)
    assert len(jobs) == 4, jobs  # 3 groups + one resubmission
    assert [j["State"] for j in by_name[failed_name]] == ["FAILED", "COMPLETED"], by_name
    assert by_name[failed_name][0]["JobIDRaw"] == failed_id
    assert by_name[failed_name][0]["ExitCode"] == "4:0"  # faxflow engine error
    for other, rows in by_name.items():
        if other != failed_name:
            assert [r["State"] for r in rows] == ["COMPLETED"], rows

    # records written before the failure are untouched; the faulty production completed the rest
    done_after = _records(variant_dir / "done")
    assert done_before, "the first attempt wrote done records"
    for record, value in done_before.items():
        assert done_after[record] == value, f"{record} was rewritten by the retry"
    assert f"{first}/merge.json" in done_before
    assert f"{faulty}/processing.json" not in done_before
    faulty_sim = next(p.sim_name for p in variant.productions if p.id == faulty)  # simulation records live in sim_dir
    assert (sb.remote_root / name / "outputs" / variant.sim_dir / "done" / faulty_sim / "simulation.json").exists()
    assert f"{faulty}/merge.json" in done_after

    summary = read_json(variant_dir / "groups" / "g0001.json")
    productions = {p["production_id"]: p for p in summary["productions"]}
    assert productions[first]["steps_run"] == [] and productions[first]["steps_skipped"], productions
    assert "instructions" not in productions[faulty]["steps_run"]
    assert "simulation" not in productions[faulty]["steps_run"]
    assert "processing" in productions[faulty]["steps_run"]
    assert read_json(variant_dir / "summary.json")["events_out"] == 30
