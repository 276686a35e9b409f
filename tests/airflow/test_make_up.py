"""The README's ``make up`` path, end to end, from a clean environment (PATH without the venv).

One deployment (api-server, scheduler, dag-processor, triggerer under ``airflow standalone``) serves the
whole module: a campaign file added while it runs gets its pool and runs; an unknown trigger key is
refused with HTTP 400; the job's progress lines are in the task log once; clearing a successful ``run``
after deleting one merged output redoes exactly that step and the run ends green; unpausing a scheduled
campaign starts no run.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT
from standalone import Deployment, wait_for

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(1200)]


def local_campaign(name: str, output_root: Path, pool: str, **cluster) -> dict:
    config = yaml.safe_load((PROJECT / "configs" / "demo.yaml").read_text())
    config.update(name=name, output_root=str(output_root), number_job=2, number_event_per_job=5,
                  variants=[{"name": "only", "physics": {"diffusion_constant_cm2_per_s": 22.8}}])
    config["cluster"].update(pool=pool, max_concurrent_jobs=2, productions_per_job=1, retries=0,
                             poll_interval_seconds=1, **cluster)
    return config


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("make-up")
    configs = root / "configs"
    configs.mkdir()
    nightly = local_campaign("upnightly", root / "runs", "faxflow_up_nightly")
    # a cron time half a day away, so the unpause below can never fall in the late-start grace
    hour = (datetime.now(UTC) + timedelta(hours=12)).hour
    nightly["schedule"] = f"0 {hour} * * *"
    (configs / "upnightly.yaml").write_text(yaml.safe_dump(nightly))
    deployment = Deployment(root, configs)
    try:
        yield deployment.start()
    finally:
        deployment.stop()


def _records(directory: Path) -> dict[Path, float]:
    return {path: path.stat().st_mtime_ns for path in directory.rglob("done/*/*.json")}


def test_make_up_from_a_clean_environment(deployment):
    root = deployment.root
    assert "FileNotFoundError" not in deployment.log()

    # 1. unpausing a scheduled campaign starts no run for a time already past; the next run is shown
    nightly = deployment.wait_for_dag("fax_upnightly")
    deployment.unpause("fax_upnightly")

    # 2. a campaign file added while everything runs: its DAG appears and its new pool is made
    (deployment.configs / "uptiny.yaml").write_text(
        yaml.safe_dump(local_campaign("uptiny", root / "runs", "faxflow_added_while_running")))
    deployment.wait_for_dag("fax_uptiny")
    deployment.unpause("fax_uptiny")

    # 3. unknown trigger keys are refused before a run exists
    refused = deployment.trigger("fax_uptiny", {"bogus": 1})
    assert refused.status_code == 400, refused.text
    assert "unknown key 'bogus'" in refused.text and "variants, number_job, events, dry_run, force" in refused.text
    assert deployment.get("/dags/fax_uptiny/dagRuns")["total_entries"] == 0

    answer = deployment.trigger("fax_uptiny", {})
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["dag_run_id"]
    assert deployment.wait_for_run("fax_uptiny", run_id) == "success", deployment.failures("fax_uptiny", run_id)
    pool = deployment.get("/pools/faxflow_added_while_running")
    assert pool["slots"] == 2 and pool["include_deferred"] is True
    # the scheduler recorded it for the plan task's pool check (which therefore let the run start)
    recorded = json.loads(deployment.get("/variables/faxflow_pools")["value"])
    assert recorded["faxflow_added_while_running"] == {"slots": 2, "include_deferred": True}

    # 4. the job's progress is in the task log (from the triggerer), each line once
    runs = {ti["map_index"]: ti for ti in deployment.task_instances("fax_uptiny", run_id)
            if ti["task_id"] == "only.run"}
    assert sorted(runs) == [0, 1]
    log = deployment.task_log("fax_uptiny", run_id, "only.run", runs[0]["try_number"], 0)
    progress = [line for line in log.splitlines() if "FAXFLOW_PROGRESS" in line]
    assert progress and len(progress) == len(set(progress)), log[-3000:]

    # 5. Clear a successful run after deleting one merged output: exactly that step is redone
    campaign_dir = root / "runs" / "uptiny"
    merged = sorted(campaign_dir.glob("*/merged/*.parquet"))
    assert len(merged) == 2, merged
    victim = merged[0]
    production = victim.stem
    before = _records(campaign_dir)
    victim.unlink()
    group = next(index for index, ti in runs.items()
                 if production in deployment.task_log("fax_uptiny", run_id, "only.run", ti["try_number"], index))
    cleared_at = time.time()
    deployment.clear("fax_uptiny", run_id, "only.run", group)
    wait_for(lambda: deployment.get(f"/dags/fax_uptiny/dagRuns/{run_id}")["state"] != "success", 60,
             "the cleared run to restart", interval=1.0)
    assert deployment.wait_for_run("fax_uptiny", run_id) == "success", deployment.failures("fax_uptiny", run_id)
    assert victim.exists() and victim.stat().st_mtime > cleared_at
    after = _records(campaign_dir)
    changed = sorted(path.relative_to(campaign_dir) for path in after if after[path] != before.get(path))
    assert changed and all(path.parts[-2] == production for path in changed), changed
    assert all("merge" in path.name for path in changed), changed  # the earlier steps were kept
    tries = {ti["map_index"]: ti["try_number"] for ti in deployment.task_instances("fax_uptiny", run_id)
             if ti["task_id"] == "only.run"}
    assert tries[group] == runs[group]["try_number"] + 1 and tries[1 - group] == runs[1 - group]["try_number"]

    # 1 (end). still no run of the unpaused nightly campaign, and the UI knows its next run
    assert deployment.get("/dags/fax_upnightly/dagRuns")["total_entries"] == 0
    nightly = deployment.get("/dags/fax_upnightly")
    assert nightly["next_dagrun_run_after"] and \
        datetime.fromisoformat(nightly["next_dagrun_run_after"].replace("Z", "+00:00")) > datetime.now(UTC)
