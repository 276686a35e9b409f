"""A 2-production pax campaign through the Airflow DAG on the real Slurm sandbox, with the stand-in
paxer/hax (tests/fakepax) in a fake conda env the sandbox's test user can read; and a missing env
failing the prepare probe in one try. The real pax is not run here (it needs a Python-3.6 stack)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from .test_campaign_support import (  # noqa: F401 - fixtures used as test arguments
    CONN_ID,
    Campaign,
    airflow_ready,
    base_config,
    cluster_env,
    sacct_jobs,
    states,
    tries,
    unique,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakepax import ACTIVATE, make_fake_env  # noqa: E402 - after putting tests/ on sys.path
from test_pax_local_run import EXPECT  # noqa: E402 - after putting tests/ on sys.path

pytestmark = pytest.mark.cluster


def readable_dir(prefix: str) -> Path:
    """A directory the sandbox's test user can read (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    return directory


def pax_config(name: str, sandbox, conda_env: Path) -> dict:
    config = base_config(name, sandbox, groups=2, events=5, variants=("va",))
    config.update(engine="pax", pmt_afterpulse=False, s2_afterpulse=False,
                  physics={"drift_velocity_um_per_ns": 1.5, "diffusion_constant_cm2_per_s": 40.0},
                  pax={"conda_env": str(conda_env), "conda_activate": ACTIVATE})
    config["variants"] = [{"name": "va"}]
    return config


def test_pax_campaign_through_the_dag_on_slurm(cluster_env):
    sb = cluster_env
    env = make_fake_env(readable_dir("faxflow-fakepax-"), EXPECT)
    campaign = Campaign(pax_config(unique("pax"), sb, env))
    run = campaign.test()
    st = states(run)
    assert run.state == "success", st
    jobs = sacct_jobs(sb, campaign.job_prefix(), expect=2)
    assert [j["State"] for j in jobs] == ["COMPLETED", "COMPLETED"], jobs

    variant_dir = campaign.variant_dir("va")
    merged = pd.read_parquet(variant_dir / "merged.parquet")
    assert len(merged) == 10 and merged["run_number"].eq(10000).all()
    assert {"s1", "s2", "x_pax", "event_time", "truth_s1"} <= set(merged)
    records = list(campaign.outputs.rglob("done/*/simulation.json"))
    assert len(records) == 2
    assert all(json.loads(r.read_text())["engine_version"].startswith("pax-6.11.2-fake+hax-2.5.0-fake@")
               for r in records)
    personalize = list(campaign.outputs.rglob("pax_configs/*/Personalize.ini"))
    assert len(personalize) == 1 and "diffusion_constant_liquid = 40.0 * cm**2 / s" in personalize[0].read_text()


def test_a_missing_pax_env_fails_prepare_in_one_try(cluster_env):
    sb = cluster_env
    missing = readable_dir("faxflow-nopax-") / "pax_v0"
    campaign = Campaign(pax_config(unique("paxmiss"), sb, missing))
    run = campaign.test()
    assert run.state == "failed"
    assert states(run)[("va.prepare", -1)] == "failed"
    assert tries(run)[("va.prepare", -1)] == 1
    assert not sacct_jobs(sb, campaign.job_prefix(), settle=2)

    from airflow.sdk.exceptions import AirflowFailException

    from faxflow.backends.slurm_prepare import probe_engine
    from faxflow.slurm.client import SlurmClient

    settings = campaign.plan().variants[0].settings
    with SlurmClient(CONN_ID) as client, pytest.raises(AirflowFailException) as failure:
        probe_engine(client, "va", settings)
    assert "the pax env of variant va is not usable" in str(failure.value)
    assert f"Could not find conda environment: {missing}" in str(failure.value)
