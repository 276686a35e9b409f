"""Test 1: a 2-variant × 6-group campaign through dag.test() on the real Slurm (sbatch/sacct over SSH),
byte-identical to the same campaign on the local backend."""

from __future__ import annotations

import pytest

from .test_campaign_support import (  # noqa: F401 - fixtures used as test arguments
    Campaign,
    airflow_ready,
    base_config,
    cluster_env,
    read_json,
    sacct_jobs,
    states,
    unique,
)

pytestmark = pytest.mark.cluster


def test_campaign_slurm_matches_local(cluster_env, tmp_path, monkeypatch):
    sb = cluster_env
    name = unique("e2e")
    slurm = Campaign(base_config(name, sb, groups=6, events=5, output_root=tmp_path / "slurm_local"))
    run = slurm.test()
    st = states(run)
    assert run.state == "success", st
    assert sorted(k for k in st if k[0].endswith(".run")) == [(f"{v}.run", i) for v in ("va", "vb") for i in range(6)]
    assert all(s == "success" for s in st.values()), st

    # exactly one COMPLETED Slurm job per group, none other
    jobs = sacct_jobs(sb, slurm.job_prefix())
    assert len(jobs) == 12, jobs
    assert {j["State"] for j in jobs} == {"COMPLETED"}, jobs
    assert len({j["JobName"] for j in jobs}) == 12

    # the same campaign (same name → same seeds) on the local backend, into another output root
    other = tmp_path / "configs_local"
    other.mkdir()
    monkeypatch.setenv("FAXFLOW_CONFIGS_DIR", str(other))
    local = Campaign(base_config(name, sb, backend="local", groups=6, events=5, output_root=tmp_path / "local"))
    run = local.test()
    assert run.state == "success", states(run)

    for variant in ("va", "vb"):
        remote_dir, local_dir = slurm.variant_dir(variant), local.variant_dir(variant)
        assert remote_dir.name == local_dir.name  # same variant key
        per_production = sorted(p.name for p in (local_dir / "merged").glob("*.parquet"))
        assert len(per_production) == 6
        assert per_production == sorted(p.name for p in (remote_dir / "merged").glob("*.parquet"))
        for fname in per_production:
            assert (remote_dir / "merged" / fname).read_bytes() == (local_dir / "merged" / fname).read_bytes(), fname
        assert (remote_dir / "merged.parquet").read_bytes() == (local_dir / "merged.parquet").read_bytes()
        summary = read_json(remote_dir / "summary.json")
        assert summary["events_in"] == summary["events_out"] == 30
        assert summary["productions_ok"] == 6
