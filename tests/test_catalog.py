"""Catalog and status of a real local campaign with one failed, one pending and one interrupted production."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from faxflow.catalog import build_catalog, run_local, scheduler_exit_states, write_catalog
from faxflow.config import load_campaign
from faxflow.pipeline import ProductionFiles
from faxflow.plan import make_plan
from faxflow.slurm.query import CommandResult
from faxflow.status import SnapshotRecords, format_status, parse_records, records_command, summarise

CAMPAIGN = """
name: cat
number_job: 2
number_event_per_job: 10
output_root: {out}
cluster: {{productions_per_job: 1}}
variants:
  - {{name: a, physics: {{diffusion_constant_cm2_per_s: 20}}}}
  - {{name: b, physics: {{diffusion_constant_cm2_per_s: 40}}}}
  - {{name: c, physics: {{diffusion_constant_cm2_per_s: 60}}}}
"""


def files_of(plan, variant_name, index):
    variant = plan.variant(variant_name)
    production = variant.productions[index]
    root = plan.output_root
    return ProductionFiles(Path(root) / variant.output_dir, Path(root) / variant.sim_dir, production.id,
                           production.sim_name, variant.settings["engine"])


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    directory = tmp_path_factory.mktemp("catalog")
    config = directory / "cat.yaml"
    config.write_text(CAMPAIGN.format(out=directory / "out"))
    plan = make_plan(load_campaign(config))
    marker = files_of(plan, "a", 1).fault_marker("processing")
    marker.parent.mkdir(parents=True)
    marker.touch()
    done = subprocess.run([sys.executable, "-m", "faxflow.cli", "run", str(config), "-j", "2", "--variants", "a,b"],
                          capture_output=True, text=True)
    assert done.returncode != 0, done.stdout
    interrupted = files_of(plan, "b", 1)
    interrupted.done_record("merge").unlink()
    group = plan.variant("b").group_indices[1]
    (directory / "out" / plan.variant("b").output_dir / "groups" / f"g{group:04d}.json").unlink()
    return config, plan


def test_states_steps_and_failures(campaign):
    _, plan = campaign
    catalog = build_catalog(plan).set_index("production")
    a0, a1, b0, b1, c0 = (plan.variant(v).productions[i].id for v, i in (("a", 0), ("a", 1), ("b", 0), ("b", 1),
                                                                         ("c", 0)))
    assert catalog.loc[a0, "status"] == "done" and catalog.loc[a0, "exit_state"] == "ok"
    assert catalog.loc[a1, "status"] == "failed"
    assert catalog.loc[a1, ["failed_step", "error_class", "processing_status"]].tolist() == ["processing", "engine",
                                                                                            "failed"]
    assert catalog.loc[a1, "simulation_status"] == "done" and catalog.loc[a1, "merge_status"] == "missing"
    assert catalog.loc[b1, "status"] == "running" and catalog.loc[b0, "status"] == "done"
    assert catalog.loc[c0, "status"] == "pending" and catalog.loc[c0, "cpu_seconds"] == 0
    assert catalog.loc[a0, "events_out"] == 10 and catalog.loc[a0, "seed"] == plan.variant("a").productions[0].seed
    assert catalog.loc[a0, "sim_key"] == plan.variant("a").sim_key and catalog.loc[a0, "host"]
    assert catalog.loc[a0, "simulation_cpu_s"] > 0 and catalog.loc[a0, "cpu_source"] == "cpu"
    assert set(catalog["swept.physics.diffusion_constant_cm2_per_s"]) == {20, 40, 60}


def test_catalog_parquet_round_trip(campaign, tmp_path):
    _, plan = campaign
    catalog = build_catalog(plan)
    path = write_catalog(catalog, tmp_path / "catalog.parquet")
    back = pd.read_parquet(path)
    assert len(back) == 6 and list(back["production"]) == list(catalog["production"])
    assert back["cpu_seconds"].sum() == pytest.approx(catalog["cpu_seconds"].sum())


def test_status_summary_and_eta(campaign):
    config, plan = campaign
    catalog = build_catalog(plan)
    rows = {row["variant"]: row for row in summarise(plan, catalog, now=time.time())}
    assert [rows["a"][s] for s in ("done", "failed", "running", "pending")] == [1, 1, 0, 0]
    assert [rows["b"][s] for s in ("done", "failed", "running", "pending")] == [1, 0, 1, 0]
    assert rows["c"]["pending"] == 2 and rows["c"]["cpu_hours_used"] == 0 and not rows["c"]["throughput_measured"]
    assert rows["total"]["cpu_hours_used"] == pytest.approx(catalog["cpu_seconds"].sum() / 3600)
    assert rows["total"]["events_done"] == 20 and rows["total"]["events_planned"] == 60
    measured = 20 / catalog.loc[catalog["status"] == "done", "cpu_seconds"].sum()
    assert rows["total"]["cpu_hours_left"] == pytest.approx(40 / measured / 3600)
    assert rows["total"]["eta_s"] > 0
    text = subprocess.run([sys.executable, "-m", "faxflow.cli", "status", str(config)], capture_output=True,
                          text=True)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].split() == ["variant", "done", "failed", "running", "pending", "events",
                                                   "CPU", "used", "CPU", "left", "ETA"]
    assert "20/60" in text.stdout and "(est.)" in text.stdout
    listed = json.loads(subprocess.run([sys.executable, "-m", "faxflow.cli", "status", str(config), "--json"],
                                       capture_output=True, text=True).stdout)
    assert [row["variant"] for row in listed] == ["a", "b", "c", "total"]
    assert "total" in format_status(summarise(plan, catalog))


def test_remote_records_command_gives_the_same_catalog(campaign):
    _, plan = campaign
    command = records_command(plan, plan.output_root)
    output = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True).stdout
    snapshot = build_catalog(plan, source=SnapshotRecords(parse_records(output)))
    local = build_catalog(plan)
    pd.testing.assert_frame_equal(snapshot, local)


def test_records_command_is_one_find_and_refuses_unsafe_roots(campaign):
    _, plan = campaign
    command = records_command(plan, "/data/runs/")
    directories = {f"/data/runs/{d}" for v in plan.variants for d in (v.sim_dir, v.output_dir)}
    assert command.startswith("find ") and command.count("find ") == 1
    assert all(f" {directory} " in command for directory in directories)
    for unsafe in ("/data/$(reboot)", "/data/a;b", "relative/root", "/data/../etc"):
        with pytest.raises(ValueError, match="unsafe remote path"):
            records_command(plan, unsafe)


def test_parse_records_headers_and_broken_files():
    output = ("==> /r/x/done/p1/merge.json <==\n{\n \"events_out\": 3\n}\n\n"
              "==> /r/x/groups/g0000.json <==\n{\"productions\": []}\n"
              "==> /r/x/done/p2/merge.json <==\n{\"trunc")
    assert parse_records(output) == {"/r/x/done/p1/merge.json": {"events_out": 3},
                                     "/r/x/groups/g0000.json": {"productions": []}}
    assert parse_records("") == {}


def test_a_local_run_keeps_its_exit_states_from_the_records_and_asks_no_scheduler(campaign):
    _, plan = campaign
    catalog = build_catalog(plan)
    asked = []
    assert scheduler_exit_states(catalog, lambda command: asked.append(command)) is catalog and not asked
    assert set(catalog["exit_state_source"]) == {"records"} and catalog["slurm_elapsed"].isna().all()


def test_sacct_answers_fill_the_rows_it_lists_and_a_failed_sacct_changes_nothing():
    catalog = pd.DataFrame({"slurm_job_id": ["41", "42", None, "$(reboot)"], "exit_state": ["ok", "engine", "ok", "ok"],
                            "exit_state_source": "records", "slurm_elapsed": None})
    asked = []

    def sacct(command):
        asked.append(command)
        return CommandResult(0, "41|41|job|COMPLETED|0:0|00:00:07\nnot a row\n")

    filled = scheduler_exit_states(catalog, sacct)
    assert len(asked) == 1 and asked[0].endswith("-j 41,42")
    assert filled["exit_state"].tolist() == ["COMPLETED", "engine", "ok", "ok"]
    assert filled["exit_state_source"].tolist() == ["sacct", "records", "records", "records"]
    assert filled["slurm_elapsed"][0] == "00:00:07"
    assert scheduler_exit_states(catalog, lambda command: CommandResult(1, stderr="no slurmdbd")) is catalog
    missing = run_local("faxflow-no-such-program -j 1")
    assert not missing.ok and "faxflow-no-such-program" in missing.stderr
