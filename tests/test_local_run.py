"""``faxflow run``: parallel local runs with progress, summary, report, Ctrl-C and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

CAMPAIGN = """
name: loc
number_job: {n}
number_event_per_job: {events}
output_root: {out}
cluster: {{productions_per_job: 1}}
variants:
  - name: d20
    physics: {{diffusion_constant_cm2_per_s: 20}}
  - name: d40
    physics: {{diffusion_constant_cm2_per_s: 40}}
"""


def write_config(tmp_path, n=2, events=20):
    path = tmp_path / "loc.yaml"
    path.write_text(CAMPAIGN.format(n=n, events=events, out=tmp_path / "out"))
    return path


def faxflow(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "faxflow.cli", *args], capture_output=True, text=True, **kwargs)


def test_run_merges_reports_and_resumes(tmp_path):
    config = write_config(tmp_path)
    result = faxflow("run", str(config), "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "campaign loc" in result.stdout and "report:" in result.stdout
    merged = sorted((tmp_path / "out" / "loc").glob("*/merged.parquet"))
    assert [path.parent.name.split("-")[0] for path in merged] == ["d20", "d40"]
    for path in merged:
        frame = pd.read_parquet(path)
        assert len(frame) == 40 and frame["production"].nunique() == 2
        summary = json.loads((path.parent / "summary.json").read_text())
        assert summary["events_in"] == summary["events_out"] == 40 and summary["failed"] == []
    report = result.stdout.split("report:")[-1].split()[0]
    assert Path(report).exists() and Path(report).parent == tmp_path / "out" / "loc"

    again = faxflow("run", str(config), "-j", "2")
    assert again.returncode == 0
    groups = [json.loads(p.read_text()) for p in (tmp_path / "out" / "loc").glob("*/groups/*.json")]
    assert len(groups) == 4 and all(p["steps_run"] == [] for g in groups for p in g["productions"])

    forced = faxflow("run", str(config), "-j", "2", "--force", "--variants", "d20")
    assert forced.returncode == 0
    groups = [json.loads(p.read_text()) for p in (tmp_path / "out" / "loc").glob("d20-*/groups/*.json")]
    assert all(len(p["steps_run"]) == 6 for g in groups for p in g["productions"])


def test_ctrl_c_stops_cleanly_and_rerun_finishes(tmp_path):
    config = write_config(tmp_path, n=4, events=1500)
    process = subprocess.Popen([sys.executable, "-m", "faxflow.cli", "run", str(config), "-j", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "out" / "loc").glob("*/done/*/instructions.json")):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "resume" in output

    result = faxflow("run", str(config), "-j", "2", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in (tmp_path / "out" / "loc").glob("*/merged.parquet"):
        assert len(pd.read_parquet(path)) == 4 * 1500


def test_ctrl_c_while_workers_start_prints_no_traceback(tmp_path):
    config = write_config(tmp_path, n=4, events=50)
    process = subprocess.Popen([sys.executable, "-m", "faxflow.cli", "run", str(config), "-j", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    first = process.stdout.readline()  # the manifest line: printed just before the workers are spawned
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGINT)
    output = first + process.communicate(timeout=120)[0]
    assert process.returncode in (0, 130), output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
