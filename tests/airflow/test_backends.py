"""The backend seam: a scheduler added through an entry point runs a campaign DAG end to end."""

import inspect
import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT

from faxflow import backends

TESTS = PROJECT / "tests"


@pytest.fixture
def shell_backend(tmp_path, monkeypatch):
    """Install the test-only "shell" backend as a site package would: a dist-info with an entry point.

    The directory goes on ``sys.path`` here and on ``PYTHONPATH`` for the jobs (they validate the campaign's
    settings again, so they must find the backend too).
    """
    site = tmp_path / "site"
    info = site / "faxflow_shell_backend-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: faxflow-shell-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{backends.ENTRY_POINT_GROUP}]\n"
                                           "shell = backend_testing.shell_backend:ShellBackend\n")
    for path in (TESTS, site):
        monkeypatch.syspath_prepend(str(path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    yield
    backends._registered.pop("shell", None)


def _campaign(configs_dir, tmp_path, name, backend):
    config = yaml.safe_load((PROJECT / "configs" / "demo.yaml").read_text())
    config.update(name=name, output_root=str(tmp_path / "runs"), number_job=2, number_event_per_job=5,
                  variants=[{"name": "only"}])
    config.pop("matrix", None)
    config["cluster"].update(backend=backend, retries=0, retry_delay_seconds=1, poll_interval_seconds=0.2,
                             pool="faxflow_test", productions_per_job=2)
    path = configs_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.airflow
def test_an_entry_point_backend_runs_a_campaign_dag(shell_backend, configs_dir, tmp_path, airflow_db):
    assert "shell" in backends.names()
    _campaign(configs_dir, tmp_path, "seam", "shell")
    from airflow.dag_processing.dagbag import DagBag

    from faxflow.airflow.home import create_pools

    create_pools({"faxflow_test": 2})
    run = DagBag(dag_folder=str(PROJECT / "dags")).dags["fax_seam"].test()
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state).endswith("success"), states
    runs = tmp_path / "runs" / "seam"
    jobs = next(runs.glob("airflow/*/jobs"))
    assert (jobs / "shell-prepared-only").exists()
    submitted = sorted(path.name for path in jobs.glob("shell-submitted-*"))
    assert len(submitted) == 1 and "_only_g" in submitted[0]  # one group of both productions
    assert sorted(path.name for path in jobs.glob("*.shell.exit")) == [name.replace("shell-submitted-", "") +
                                                                       ".shell.exit" for name in submitted]
    summary = json.loads(next(runs.glob("only-*/summary.json")).read_text())
    assert summary["events_in"] == summary["events_out"] == 10 and Path(summary["merged"]).exists()
    assert list(runs.glob("report-*.html"))


def test_an_unknown_backend_is_refused_naming_file_key_and_allowed_names(configs_dir, tmp_path):
    from faxflow.config import load_campaign
    from faxflow.errors import ConfigError

    path = _campaign(configs_dir, tmp_path, "nopbs", "pbs")
    with pytest.raises(ConfigError) as refused:
        load_campaign(path)
    assert f"{path}: cluster.backend: unknown backend 'pbs' (allowed: local, slurm)" in str(refused.value)
    with pytest.raises(ValueError, match=r"unknown backend 'pbs' \(allowed: local, slurm\)"):
        backends.create("pbs", {})


def test_airflow_code_never_branches_on_the_backend_name():
    from faxflow.airflow import operators, tasks

    for module in (operators, tasks):
        source = inspect.getsource(module)
        assert '"slurm"' not in source and '"local"' not in source and "SlurmClient" not in source, module
    plugin = (PROJECT / "plugins" / "faxflow_plugin.py").read_text()
    assert '"slurm"' not in plugin and '"local"' not in plugin


def test_job_hints_come_from_the_backend_and_refuse_unsafe_values():
    job = {"job_id": "4242", "stdout": "/remote/logs/ff_demo_4242.out"}
    sacct, tail = backends.job_hints("slurm", job)
    assert sacct.startswith("sacct ") and sacct.endswith("-j 4242")
    assert tail.endswith("tail -n 50 -- /remote/logs/ff_demo_4242.out; fi")
    assert backends.job_hints("slurm", {**job, "job_id": "4242; rm -rf ~"}) == []
    assert backends.job_hints("slurm", {**job, "stdout": "/remote/$(id).out"}) == []
    assert backends.job_hints("local", job) == [] and backends.job_hints("no-such-backend", job) == []
