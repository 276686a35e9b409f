"""dag.test() end to end on the local backend (one process, one migrated DB; keep these together)."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT

pytestmark = pytest.mark.airflow


@pytest.fixture
def small_campaign(configs_dir, tmp_path, airflow_db):
    config = yaml.safe_load((PROJECT / "configs" / "demo.yaml").read_text())
    config.update(name="tiny", output_root=str(tmp_path / "runs"), number_job=4, number_event_per_job=10)
    config["cluster"].update(retries=0, retry_delay_seconds=1, poll_interval_seconds=0.2, pool="faxflow_test")
    (configs_dir / "tiny.yaml").write_text(yaml.safe_dump(config))
    from faxflow.airflow.home import create_pools

    create_pools({"faxflow_test": 2})
    return tmp_path / "runs"


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    return bag.dags["fax_tiny"]


def _states(run):
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}


def test_local_campaign_end_to_end(small_campaign):
    dag = _dag()
    run = dag.test(run_conf={"events": 5})
    states = _states(run)
    assert str(run.state).endswith("success"), states
    assert states[("diffusion_sr0.run", 0)].endswith("success") and ("diffusion_sr0.run", 1) in states
    summaries = sorted(small_campaign.glob("tiny/*/summary.json"))
    assert len(summaries) == 2
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["events_in"] == summary["events_out"] == 20
        assert Path(summary["merged"]).exists()
    assert list(small_campaign.glob("tiny/report-*.html"))

    dry = dag.test(run_conf={"dry_run": True, "variants": ["diffusion_sr1"]})
    dry_states = _states(dry)
    assert str(dry.state).endswith("success"), dry_states
    assert dry_states[("plan", -1)].endswith("success")
    assert dry_states[("diffusion_sr1.prepare", -1)].endswith("skipped")


def test_missing_connection_fails_in_one_try(configs_dir, tmp_path, airflow_db):
    config = yaml.safe_load((PROJECT / "configs" / "demo.yaml").read_text())
    config.update(name="noconn", output_root=str(tmp_path / "runs"), number_job=1, number_event_per_job=2,
                  variants=[{"name": "only"}])
    config.pop("matrix", None)
    config["cluster"].update(backend="slurm", ssh_conn_id="faxflow_nowhere", remote_root="/tmp/faxflow-nowhere",
                             retries=3, retry_delay_seconds=30, pool="faxflow_test")
    (configs_dir / "noconn.yaml").write_text(yaml.safe_dump(config))
    from airflow.dag_processing.dagbag import DagBag

    run = DagBag(dag_folder=str(PROJECT / "dags")).dags["fax_noconn"].test()
    prepare = [ti for ti in run.get_task_instances() if ti.task_id == "only.prepare"][0]
    assert str(prepare.state).endswith("failed") and prepare.try_number == 1  # no retry with backoff
    assert str(run.state).endswith("failed")
