"""The per-production pipeline: atomic steps, done records, resume, failure isolation, exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from faxflow.config import load_campaign
from faxflow.manifest import write_manifest
from faxflow.pipeline import STEPS, run_group
from faxflow.plan import make_plan

CAMPAIGN = """
name: pipe
number_job: 3
number_event_per_job: {events}
s2_afterpulse: false
raw: keep
cluster: {{productions_per_job: 3}}
variants:
  - name: v
"""


def setup(tmp_path, events=20, extra=""):
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "pipe.yaml"
    config.write_text(CAMPAIGN.format(events=events) + extra)
    plan = make_plan(load_campaign(config), output_root=str(tmp_path / "out"))
    return plan, write_manifest(plan, tmp_path / "manifests")


def files_of(plan, index=0):
    from faxflow.pipeline import ProductionRunner

    variant = plan.variants[0]
    return ProductionRunner(plan, variant, Path(plan.output_root)).files(variant.productions[index])


def job_command(manifest, group=0):
    path, digest = manifest.slices[group]
    return [sys.executable, "-m", "faxflow.cli", "job", "--manifest", str(path), "--digest", digest,
            "--group", str(group)]


def faxflow_job(manifest, group=0, **kwargs):
    return subprocess.run(job_command(manifest, group), capture_output=True, text=True, **kwargs)


def test_group_runs_all_steps_then_skips_them(tmp_path):
    plan, _ = setup(tmp_path)
    first = run_group(plan, 0, echo=lambda line: None)
    assert first["exit_code"] == 0, first["failures"]
    assert [p["steps_run"] for p in first["productions"]] == [list(STEPS)] * 3
    files = files_of(plan)
    for path in (files.instructions, files.truth, files.raw, files.processed, files.truth_sorted,
                 files.minitrees, files.merged, files.log):
        assert path.exists(), path
    merged = pd.read_parquet(files.merged)
    assert len(merged) == 20 and merged["event_number"].tolist() == list(range(20))
    assert {"s1", "s2", "truth_s1", "truth_s2", "x_pax", "truth_x"} <= set(merged.columns)
    record = json.loads(files.done_record("simulation").read_text())
    assert record["events_in"] == record["events_out"] == 20 and set(record["outputs"]) == {
        files.truth.name, files.raw.name}
    assert not (files.variant_dir / ".staging" / files.production_id).exists() or not any(
        (files.variant_dir / ".staging" / files.production_id).rglob("*.*"))

    second = run_group(plan, 0, echo=lambda line: None)
    assert [p["steps_run"] for p in second["productions"]] == [[]] * 3
    assert json.loads((files.variant_dir / "groups" / "g0000.json").read_text())["exit_code"] == 0


def test_same_seed_gives_byte_identical_outputs(tmp_path):
    plan, _ = setup(tmp_path / "a")
    again, _ = setup(tmp_path / "b")
    run_group(plan, 0, echo=lambda line: None)
    run_group(again, 0, echo=lambda line: None)
    for attribute in ("instructions", "truth", "raw", "merged"):
        assert getattr(files_of(plan), attribute).read_bytes() == getattr(files_of(again), attribute).read_bytes()


def test_tampered_output_is_redone_and_downstream_follows(tmp_path):
    plan, _ = setup(tmp_path)
    run_group(plan, 0, echo=lambda line: None)
    files = files_of(plan)
    files.processed.write_bytes(files.processed.read_bytes()[:100])  # truncated behind our back
    rerun = run_group(plan, 0, echo=lambda line: None)["productions"][0]
    assert rerun["steps_run"] == ["processing"] and "minitrees" in rerun["steps_skipped"]
    files.instructions.write_text(files.instructions.read_text().replace(",1000", ",2000", 1))
    rerun = run_group(plan, 0, echo=lambda line: None)["productions"][0]
    assert rerun["steps_run"][0] == "instructions"


def test_failing_production_does_not_stop_its_group(tmp_path):
    plan, manifest = setup(tmp_path)
    broken = files_of(plan, 1)
    broken.fault_marker("processing").parent.mkdir(parents=True)
    broken.fault_marker("processing").touch()
    result = faxflow_job(manifest)
    assert result.returncode == 4, result.stderr  # engine error class
    summary = json.loads(result.stdout.strip().splitlines()[-1].removeprefix("FAXFLOW_SUMMARY "))
    assert summary["failures"] == [{"production": broken.production_id, "step": "processing",
                                    "error_class": "engine", "exit_code": 4,
                                    "message": f"injected failure ({broken.fault_marker('processing')} exists)"}]
    assert files_of(plan, 0).merged.exists() and files_of(plan, 2).merged.exists()
    assert not broken.merged.exists() and not broken.done_record("processing").exists()
    assert "injected failure" in broken.log.read_text()

    broken.fault_marker("processing").unlink()
    retry = faxflow_job(manifest)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    done = json.loads((broken.variant_dir / "groups" / "g0000.json").read_text())["productions"]
    assert done[1]["steps_run"] == ["processing", "minitrees", "merge"]
    assert done[0]["steps_run"] == [] and done[2]["steps_run"] == []


def test_bad_input_has_its_own_exit_code(tmp_path):
    _, manifest = setup(tmp_path, extra="instructions: {source: table, path: missing.csv}\n")
    result = faxflow_job(manifest)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "missing.csv" in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_killed_step_leaves_nothing_that_looks_complete_and_rerun_resumes(tmp_path):
    plan, manifest = setup(tmp_path, events=3000)
    files = files_of(plan)
    process = subprocess.Popen(job_command(manifest), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if files.log.exists() and "simulation started" in files.log.read_text():
            break
        time.sleep(0.05)
    else:
        pytest.fail("simulation never started")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert files.done_record("instructions").exists()
    assert not files.done_record("simulation").exists()
    assert not files.truth.exists() and not files.raw.exists()

    result = faxflow_job(manifest, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    first = json.loads((files.variant_dir / "groups" / "g0000.json").read_text())["productions"][0]
    assert first["steps_skipped"] == ["instructions"] and first["steps_run"][0] == "simulation"
    assert len(pd.read_parquet(files.merged)) == 3000
