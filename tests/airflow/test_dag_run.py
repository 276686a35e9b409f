"""dag.test() end to end on the local backend (one process, one migrated DB; keep these together)."""

import json
import re
import subprocess
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

    create_pools({"faxflow_test": config["cluster"]["max_concurrent_jobs"]})
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

    from faxflow.airflow.home import create_pools

    create_pools({"faxflow_test": config["cluster"]["max_concurrent_jobs"]})

    run = DagBag(dag_folder=str(PROJECT / "dags")).dags["fax_noconn"].test()
    prepare = [ti for ti in run.get_task_instances() if ti.task_id == "only.prepare"][0]
    assert str(prepare.state).endswith("failed") and prepare.try_number == 1  # no retry with backoff
    assert str(run.state).endswith("failed")


def test_missing_or_wrong_pool_fails_in_the_plan_task(configs_dir, tmp_path, airflow_db, capfd, caplog):
    config = yaml.safe_load((PROJECT / "configs" / "demo.yaml").read_text())
    config.update(name="nopool", output_root=str(tmp_path / "runs"), number_job=1, number_event_per_job=2,
                  variants=[{"name": "only"}])
    config.pop("matrix", None)
    config["cluster"].update(retries=2, retry_delay_seconds=1, poll_interval_seconds=0.2,
                             pool="faxflow_never_made", max_concurrent_jobs=3)
    (configs_dir / "nopool.yaml").write_text(yaml.safe_dump(config))
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from faxflow.airflow.home import create_pools
    from faxflow.airflow.pool_keeper import POOLS_VARIABLE, parse_record, pool_problems

    def recorded_pools():
        with create_session() as session:
            return parse_record(session.query(Variable).filter_by(key=POOLS_VARIABLE).one().val)

    def run_without_scheduler_plugin():
        dag = DagBag(dag_folder=str(PROJECT / "dags")).dags["fax_nopool"]
        run = dag.test()
        return run, _states(run), {ti.task_id: ti.try_number for ti in run.get_task_instances()}

    run, states, tries = run_without_scheduler_plugin()  # dag.test() fires no listener, like a scheduler without it
    assert str(run.state).endswith("failed") and states[("plan", -1)].endswith("failed") and tries["plan"] == 1
    assert states[("only.prepare", -1)].endswith("upstream_failed")
    assert not (tmp_path / "runs").exists()  # nothing was planned
    log = "".join(capfd.readouterr()) + caplog.text
    assert "pool faxflow_never_made (3 slots, include_deferred) does not exist" in log
    caplog.clear()

    # the command the message names creates and records the pool at the campaign's size
    [command] = set(re.findall(r"Fix: run `([^`]+)`", log))
    assert "-m faxflow.airflow.home pools" in command
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # what an operator's fresh shell has
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, env=bare)
    assert done.returncode == 0 and "pool faxflow_never_made: 3 slots, include_deferred" in done.stdout, done
    assert pool_problems({"faxflow_never_made": 3}, recorded_pools()) == []

    create_pools({"faxflow_never_made": 2})
    run, states, _ = run_without_scheduler_plugin()
    assert states[("plan", -1)].endswith("failed")
    log = "".join(capfd.readouterr()) + caplog.text
    assert "pool faxflow_never_made (3 slots, include_deferred) has 2 slots" in log
    # with the pool recorded at its size the plan task passes: test_local_campaign_end_to_end
