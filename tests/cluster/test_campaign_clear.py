"""Clear = redo on the real Slurm sandbox, through the README's ``make up`` deployment and its REST API:
after a successful run, one merged output is deleted and its group's ``run`` task is cleared; a new sbatch
for that group appears in sacct, exactly the merge step of that production is redone, the run ends green.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml

from .test_campaign_support import PROJECT, airflow_ready, base_config, cluster_env, sacct_jobs, unique  # noqa: F401 - fixtures used as test arguments

sys.path.insert(0, str(PROJECT / "tests" / "airflow"))
from standalone import Deployment, wait_for  # noqa: E402 - the make-up test's deployment helper

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]


def _records(directory: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in directory.rglob("done/*/*.json")}


def test_clear_after_success_resubmits_and_redoes_one_step(cluster_env, tmp_path):
    sandbox = cluster_env
    name = unique("clr")
    config = base_config(name, sandbox, groups=2, variants=("va",), pool_size=2)
    configs = tmp_path / "configs"  # made by cluster_env
    (configs / f"{name}.yaml").write_text(yaml.safe_dump(config))
    conn = {f"AIRFLOW_CONN_{config['cluster']['ssh_conn_id'].upper()}": sandbox.airflow_connection_json()}
    deployment = Deployment(tmp_path / "up", configs, extra_env=conn)
    try:
        deployment.start()
        dag_id = f"fax_{name}"
        deployment.wait_for_dag(dag_id)
        deployment.unpause(dag_id)
        answer = deployment.trigger(dag_id, {})
        assert answer.status_code == 200, answer.text
        run_id = answer.json()["dag_run_id"]
        assert deployment.wait_for_run(dag_id, run_id) == "success", deployment.failures(dag_id, run_id)
        prefix = f"ff_{name}_"
        first = sacct_jobs(sandbox, prefix, expect=2)
        outputs = Path(config["cluster"]["remote_root"]) / "outputs" / name
        merged = sorted(outputs.glob("*/merged/*.parquet"))
        assert len(merged) == 2, merged
        victim = merged[0]
        before = _records(outputs)
        victim.unlink()
        runs = {ti["map_index"]: ti for ti in deployment.task_instances(dag_id, run_id) if ti["task_id"] == "va.run"}
        group = next(index for index, ti in runs.items()
                     if victim.stem in deployment.task_log(dag_id, run_id, "va.run", ti["try_number"], index))
        cleared_at = time.time()
        deployment.clear(dag_id, run_id, "va.run", group)
        wait_for(lambda: deployment.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"] != "success", 60,
                 "the cleared run to restart", interval=1.0)
        assert deployment.wait_for_run(dag_id, run_id) == "success", deployment.failures(dag_id, run_id)
        jobs = sacct_jobs(sandbox, prefix, expect=3)
        new = [job for job in jobs if job["JobIDRaw"] not in {j["JobIDRaw"] for j in first}]
        assert len(new) == 1 and new[0]["State"] == "COMPLETED", jobs  # one new sbatch, for the cleared group
        assert victim.exists() and victim.stat().st_mtime > cleared_at
        after = _records(outputs)
        changed = [path for path in after if after[path] != before.get(path)]
        assert changed and all(path.parent.name == victim.stem and "merge" in path.name for path in changed), changed
    finally:
        deployment.stop()
