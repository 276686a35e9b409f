"""A 2-production pax campaign through ``faxflow run`` with stand-in paxer/hax in a fake conda env.

The stand-ins (tests/fakepax) check their argv, that the seed wrapper started them and what every
generated ini file says; they write the real formats (fax truth CSV, raw zips, a ROOT event tree,
hax tables). The real pax is not run here: it needs a Python-3.6-era stack.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from fakepax import ACTIVATE, make_fake_env  # noqa: E402 - after putting tests/ on sys.path

FAXFLOW = str(Path(sys.executable).with_name("faxflow"))
EXPECT = {
    "config_names": ["XENON1T", "SR1_parameters"], "config_string_tail": "",
    "simulation_ini": ["NoPMTAfterpulses.ini", "NoS2Afterpulses.ini", "Personalize.ini", "MC.ini"],
    "processing_ini": ["Personalize.ini", "MC.ini"],
    "ini": {
        "NoPMTAfterpulses.ini": {"WaveformSimulator": {"pmt_afterpulse_types": "{}",
                                                       "each_pmt_afterpulse_types": "{}"}},
        "NoS2Afterpulses.ini": {"WaveformSimulator": {"s2_afterpulse_types": (
            '{"Volume": {"p": 0, "time_parametrization": "uniform", "time_parameters": {"low": 0, "high": 0}}}')}},
        "Personalize.ini": {"DEFAULT": {"drift_velocity_liquid": "1.5 * um / ns"},
                            "WaveformSimulator": {"diffusion_constant_liquid": "40.0 * cm**2 / s"}},
        "MC.ini": {"MC": {"mc_generated_data": "True", "mc_sr_parameters": "'sr1'", "mc_run_number": "10000"}},
    },
}


def pax_campaign(directory: Path, env: Path, name: str = "paxdemo", **extra) -> Path:
    config = {"name": name, "engine": "pax", "number_job": 2, "number_event_per_job": 5,
              "pmt_afterpulse": False, "s2_afterpulse": False,
              "physics": {"drift_velocity_um_per_ns": 1.5, "diffusion_constant_cm2_per_s": 40.0},
              "pax": {"conda_env": str(env), "conda_activate": ACTIVATE},
              "output_root": str(directory / "out"), **extra}
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def faxflow_run(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([FAXFLOW, "run", str(config), "-j", "2"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "1000"})  # no line wrapping by the progress display


def outputs(root: Path) -> dict[str, bytes]:
    """Every production output (not logs, records or reports) by its path under the campaign."""
    kinds = ("instructions", "truth_raw", "raw", "truth_sorted", "minitrees", "merged")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and len(p.relative_to(root).parts) > 2 and p.relative_to(root).parts[1] in kinds}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same campaign (same env, so the same settings and seeds) run twice into two output roots."""
    env = make_fake_env(tmp_path_factory.mktemp("pax_env"), EXPECT)
    first, second = tmp_path_factory.mktemp("pax_a"), tmp_path_factory.mktemp("pax_b")
    return [(directory, faxflow_run(pax_campaign(directory, env))) for directory in (first, second)]


def test_two_productions_run_through_the_stand_ins(runs):
    directory, done = runs[0]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    variant_dir = next((directory / "out" / "paxdemo").glob("default-*"))
    merged = pd.read_parquet(variant_dir / "merged.parquet")
    assert len(merged) == 10 and merged["run_number"].eq(10000).all()
    assert {"event_time", "s1", "s2", "x_pax", "drift_time", "s1_rise_time", "truth_s1", "truth_s2"} <= set(merged)
    assert "index" not in merged
    minitree = next(variant_dir.glob("minitrees/*.parquet"))
    groups = json.loads(pq.read_schema(minitree).metadata[b"faxflow.minitrees"])["treemakers"]
    assert list(groups) == ["Fundamentals", "Basics", "Extended"]
    assert groups["Fundamentals"][:2] == ["run_number", "event_number"] and "x_nn" in groups["Extended"]


def test_done_records_carry_pax_and_hax_versions_and_logs_hold_paxer_output(runs):
    directory, _ = runs[0]
    sim_records = list((directory / "out").rglob("done/*/simulation.json"))
    assert len(sim_records) == 2
    for record in sim_records:
        data = json.loads(record.read_text())
        assert data["engine"] == "pax"
        assert data["engine_version"].startswith("pax-6.11.2-fake+hax-2.5.0-fake@")
    logs = list((directory / "out").rglob("logs/*.log"))
    assert len(logs) == 2
    text = logs[0].read_text()
    assert "paxer (simulation): bash -c" in text and "pax_runner.py paxer" in text and "hax (minitrees)" in text
    configs = list((directory / "out").rglob("pax_configs/*/Personalize.ini"))
    assert configs and "drift_velocity_liquid = 1.5 * um / ns" in configs[0].read_text()


def test_same_seed_gives_identical_outputs_and_productions_differ(runs):
    (first, done_a), (second, done_b) = runs
    assert done_a.returncode == done_b.returncode == 0
    a, b = outputs(first / "out" / "paxdemo"), outputs(second / "out" / "paxdemo")
    assert a.keys() == b.keys() and len([k for k in a if "/truth_raw/" in k]) == 2
    assert a == b
    truths = [value for key, value in a.items() if "/truth_raw/" in key]
    assert truths[0] != truths[1]  # each production has its own seed


def test_a_stand_in_that_sees_the_wrong_ini_fails_the_step(tmp_path):
    asked = {"DEFAULT": {"drift_velocity_liquid": "9.9 * um / ns"}, "WaveformSimulator": {}}
    wrong = {**EXPECT, "ini": {**EXPECT["ini"], "Personalize.ini": asked}}
    env = make_fake_env(tmp_path, wrong)
    done = faxflow_run(pax_campaign(tmp_path, env, number_job=1))
    assert done.returncode == 4, done.stdout[-2000:]
    log = next((tmp_path / "out").rglob("logs/*.log")).read_text()
    assert "the campaign asked for" in log and "paxer (simulation) exited with 1" in log
    assert not list((tmp_path / "out").rglob("done/*/simulation.json"))


def test_a_missing_env_fails_the_job_at_once_with_a_clear_message(tmp_path):
    done = faxflow_run(pax_campaign(tmp_path, tmp_path / "no_such_env", number_job=1))
    assert done.returncode == 4
    assert f"checking the pax env {tmp_path / 'no_such_env'}" in done.stdout
    assert f"Could not find conda environment: {tmp_path / 'no_such_env'}" in done.stdout
    assert not list((tmp_path / "out").rglob("done/*/*.json"))
