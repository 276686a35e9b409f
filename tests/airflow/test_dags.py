"""The DAG folder: every campaign loads, one task group per variant, bad YAML is isolated, params validate."""

import shutil
import time
from pathlib import Path

import pytest
from conftest import PROJECT


def _dagbag(folder=PROJECT / "dags"):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def _campaigns(configs):
    from faxflow.config import load_campaign

    return {load_campaign(path).name: load_campaign(path) for path in sorted(Path(configs).glob("*.yaml"))}


def test_every_project_config_becomes_a_dag():
    import faxflow.airflow.dag_factory  # noqa: F401 - imports are not parse time

    started = time.perf_counter()
    bag = _dagbag()
    parse_seconds = time.perf_counter() - started
    assert bag.import_errors == {}
    campaigns = _campaigns(PROJECT / "configs")
    assert campaigns, "no campaign files in configs/"
    for name, campaign in campaigns.items():
        dag = bag.dags[f"fax_{name}"]
        assert dag.max_active_runs == 1 and dag.catchup is False
        groups = {task.task_group.group_id for task in dag.tasks if task.task_group and task.task_group.group_id}
        from faxflow.airflow.dag_factory import group_ids

        assert groups == set(group_ids([v.name for v in campaign.resolved_variants()]).values())
        for variant in campaign.resolved_variants():
            gid = group_ids([v.name for v in campaign.resolved_variants()])[variant.name]
            assert {f"{gid}.prepare", f"{gid}.run", f"{gid}.collect"} <= set(dag.task_ids)
            run = dag.get_task(f"{gid}.run")
            cluster = variant.settings["cluster"]
            assert run.pool == cluster["pool"]
            assert run.retries == cluster["retries"] and run.retry_exponential_backoff == 2.0
            assert run.max_retry_delay is not None
        assert {"plan", "report"} <= set(dag.task_ids)
        assert set(dag.params.keys()) == {"variants", "number_job", "events", "dry_run", "force"}
    assert parse_seconds < 5


def test_broken_yaml_is_isolated_and_linted(configs_dir):
    shutil.copy(PROJECT / "configs" / "demo.yaml", configs_dir / "demo.yaml")
    (configs_dir / "broken.yaml").write_text("name: broken\nnumber_job: -3\ncluster: {backend: moon}\n")
    (configs_dir / "syntax.yaml").write_text("name: [unclosed\n")
    bag = _dagbag()
    assert "fax_demo" in bag.dags  # the valid campaign still loads
    lint_errors = {Path(path).name: text for path, text in bag.import_errors.items()}
    assert set(lint_errors) == {"config_lint.py"}
    assert "number_job" in lint_errors["config_lint.py"] and "backend" in lint_errors["config_lint.py"]
    assert "syntax.yaml: YAML error at line 2" in lint_errors["config_lint.py"]
    placeholder = bag.dags["fax_broken"]
    assert "number_job" in placeholder.doc_md and [t.task_id for t in placeholder.tasks] == ["config_error"]
    assert "fax_syntax" in bag.dags


def test_trigger_params_are_validated():
    from airflow.sdk.definitions.param import ParamValidationError

    dag = _dagbag().dags["fax_demo"]

    def validate(conf):
        import copy

        params = copy.deepcopy(dag.params)
        params.update(conf)
        return params.validate()

    assert validate({"variants": ["diffusion_sr1"], "events": 5, "number_job": 2})["events"] == 5
    for bad in ({"events": 0}, {"number_job": -1}, {"variants": ["nope"]}, {"dry_run": "yes"},
                {"variants": ["diffusion_sr1", "diffusion_sr1"]}):
        with pytest.raises(ParamValidationError):
            validate(bad)


def test_run_key_is_safe():
    from faxflow.airflow.tasks import run_key

    assert run_key("manual__2026-11-24T16:05:22.464310+00:00") == "manual__2026-11-24T16_05_22.464310_00_00"
    assert len(run_key("x" * 300)) <= 64
    assert run_key("../..") == "manual"
