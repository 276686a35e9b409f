"""The report of a Slurm campaign is built on the cluster and only report, summary and catalog come back;
``faxflow status`` reads the same campaign through the SSH connection with one remote command; the
catalog's exit states come from one sacct for all the run's jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from faxflow.catalog import scheduler_exit_states
from faxflow.slurm.query import CommandResult

from .test_campaign_support import Campaign, airflow_ready, base_config, cluster_env, states, unique  # noqa: F401 - fixtures used as test arguments

pytestmark = pytest.mark.cluster
ELAPSED = r"(\d+-)?\d\d:\d\d:\d\d"


@pytest.mark.timeout(1500)
def test_report_built_remotely_and_status_over_ssh(cluster_env, tmp_path):
    from faxflow.catalog import build_catalog
    from faxflow.slurm.client import SlurmClient
    from faxflow.status import remote_catalog, summarise

    local_root = tmp_path / "local"
    campaign = Campaign(base_config(unique("rep"), cluster_env, groups=2, events=20, output_root=local_root))
    run = campaign.test()
    assert run.state == "success", states(run)

    local_dir = local_root / campaign.name
    pulled = sorted(path.name.split("-")[0] for path in local_dir.iterdir() if path.is_file())
    assert pulled == ["catalog", "report", "report", "summary"], pulled
    summary = json.loads(next(local_dir.glob("summary-*.json")).read_text())
    report = Path(summary["report"])
    assert report.parent == local_dir and report.suffix == ".html" and "data:image/png;base64," in report.read_text()
    catalog = pd.read_parquet(summary["catalog"])
    assert len(catalog) == 4 and set(catalog["status"]) == {"done"}
    assert catalog["slurm_job_id"].astype(str).str.fullmatch("[0-9]+").all() and catalog["host"].notna().all()
    assert set(catalog["exit_state"]) == {"COMPLETED"} and set(catalog["exit_state_source"]) == {"sacct"}
    assert catalog["slurm_elapsed"].str.fullmatch(ELAPSED).all()
    assert summary["measured"]["exit_state_sources"] == {"sacct": 4, "records": 0}
    assert summary["measured"]["cpu_hours"] == pytest.approx(catalog["cpu_seconds"].sum() / 3600)
    assert not list(local_dir.glob("*/merged.parquet"))  # outputs stay on the cluster

    plan = campaign.plan().model_copy(update={"run_id": catalog["run_id"].iloc[0]})
    with SlurmClient(campaign.cluster["ssh_conn_id"]) as client:
        before = client.commands_run
        remote = remote_catalog(plan, client)
        assert client.commands_run - before == 1
    expected = build_catalog(plan)  # the sandbox's remote root is readable here, so compare with a local read
    pd.testing.assert_frame_equal(remote, expected)
    total = summarise(plan, remote)[-1]
    assert total["done"] == 4 and total["events_done"] == 80 and total["cpu_hours_left"] == 0


def test_exit_states_from_one_sacct_for_all_jobs_with_records_as_fallback(slurm_sandbox):
    sandbox = slurm_sandbox
    completed, failed = sandbox.sbatch(wrap="true"), sandbox.sbatch(wrap="exit 3")
    for job in (completed, failed):
        sandbox.wait_job(job, full_record=True)
    catalog = pd.DataFrame({"production": ["p0", "p1", "p2", "local"],
                            "slurm_job_id": [completed, completed, failed, None],
                            "exit_state": ["ok", "ok", "engine", "ok"], "exit_state_source": "records",
                            "slurm_elapsed": None})
    commands = []

    def on_login_node(command: str) -> CommandResult:
        commands.append(command)
        answer = sandbox.ssh(command)
        return CommandResult(answer.returncode, answer.stdout, answer.stderr)

    filled = scheduler_exit_states(catalog, on_login_node)
    assert len(commands) == 1 and commands[0].startswith("sacct ")
    assert filled["exit_state"].tolist() == ["COMPLETED", "COMPLETED", "FAILED", "ok"]
    assert filled["exit_state_source"].tolist() == ["sacct", "sacct", "sacct", "records"]
    assert filled["slurm_elapsed"][:3].str.fullmatch(ELAPSED).all()

    def without_sacct(command: str) -> CommandResult:
        return on_login_node(f"PATH=/nonexistent {command}")

    unchanged = scheduler_exit_states(catalog, without_sacct)
    pd.testing.assert_frame_equal(unchanged, catalog)
