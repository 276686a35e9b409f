"""The campaign report from a real local campaign: 2 diffusion constants × 2 electron lifetimes.

Default physics (PMT afterpulses and photo-ionisation on), 1000 events per variant, fits on
reconstructed quantities. Tolerances: τ within 8 %, drift velocity within 4 %, D within 3 % (from the
rise time through the delayed light's response; measured −0.1 %, +1.1 %, +3.0 %, −1.9 % with
statistical errors 1.5–2.6 %), and the larger configured D always fits larger.
"""

import base64
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from faxflow.catalog import event_table
from faxflow.config import load_campaign
from faxflow.fits import QUANTITIES, fit_variant
from faxflow.plan import EVENTS_PER_CPU_SECOND, format_dry_run, make_plan
from faxflow.report import DIAGNOSTICS, report_files, write_report

PROJECT = Path(__file__).resolve().parents[1]
CAMPAIGN = """
name: sweep
description: How do the diffusion constant and the electron lifetime change S2 width and size?
number_job: 4
number_event_per_job: 250
photon_number: [50, 100]
electron_number: [100, 200]
seed: 7
output_root: {out}
cluster: {{productions_per_job: 1}}
variants:
  - {{name: D15_tau300, physics: {{diffusion_constant_cm2_per_s: 15.0, electron_lifetime_us: 300.0}}}}
  - {{name: D15_tau900, physics: {{diffusion_constant_cm2_per_s: 15.0, electron_lifetime_us: 900.0}}}}
  - {{name: D45_tau300, physics: {{diffusion_constant_cm2_per_s: 45.0, electron_lifetime_us: 300.0}}}}
  - {{name: D45_tau900, physics: {{diffusion_constant_cm2_per_s: 45.0, electron_lifetime_us: 900.0}}}}
"""
TOLERANCE = {"electron_lifetime": 0.08, "drift_velocity": 0.04, "diffusion_constant": 0.03}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    directory = tmp_path_factory.mktemp("report")
    config = directory / "sweep.yaml"
    config.write_text(CAMPAIGN.format(out=directory / "out"))
    done = subprocess.run([sys.executable, "-m", "faxflow.cli", "run", str(config), "-j", "2"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    plan = make_plan(load_campaign(config))
    report = write_report(plan)
    files = report_files(Path(plan.output_root) / plan.campaign, plan.run_id)
    return plan, report, files


def images(page: str) -> dict[str, bytes]:
    return {html.unescape(alt): base64.b64decode(data)
            for alt, data in re.findall(r'<img alt="([^"]*)"[^>]*src="data:image/png;base64,([^"]+)"', page)}


def test_every_plot_is_inline_and_decodes(campaign):
    plan, report, _ = campaign
    page = report.read_text()
    assert "How do the diffusion constant and the electron lifetime change" in page
    assert "http://" not in page and "https://" not in page and "src=\"data:image/png" in page
    assert "<p id='exit-state-source'>Exit states: 16 from records " in page
    found = images(page)
    for variant in plan.variants:
        for title in DIAGNOSTICS:
            assert f"{variant.name}: {title}" in found
    for name in ("diffusion_constant", "electron_lifetime", "drift_velocity"):
        label = QUANTITIES[name].label
        assert any(alt.startswith(f"{label} vs physics.") for alt in found), label
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000 for data in found.values())


def test_fit_table_matches_catalog_and_recovers_d_and_tau(campaign):
    plan, report, files = campaign
    catalog = pd.read_parquet(files.catalog)
    summary = json.loads(files.summary.read_text())
    shown = json.loads(re.search(r"<script type='application/json' id='fit-data'>(.*?)</script>",
                                 report.read_text()).group(1))
    assert shown == summary["fits"]
    table = {(row["variant"], row["quantity"]): row for row in summary["fits"]}
    for variant in plan.variants:
        refit = fit_variant(event_table(catalog, variant.name), variant.settings)
        for name, result in refit.items():
            assert table[(variant.name, name)]["value"] == pytest.approx(result.value, rel=1e-9)
            assert table[(variant.name, name)]["error"] == pytest.approx(result.error, rel=1e-9)
        for name, tolerance in TOLERANCE.items():
            row = table[(variant.name, name)]
            assert row["value"] == pytest.approx(row["configured"], rel=tolerance), (variant.name, row)
            assert 0 < row["error"] < 0.1 * row["value"]
    for tau in ("tau300", "tau900"):
        low, high = (table[(f"{d}_{tau}", "diffusion_constant")]["value"] for d in ("D15", "D45"))
        assert high > 2 * low


def test_summary_cpu_hours_are_the_catalog_sum(campaign):
    plan, _, files = campaign
    catalog = pd.read_parquet(files.catalog)
    totals = json.loads(files.summary.read_text())["totals"]
    assert len(catalog) == 16 and set(catalog["status"]) == {"done"}
    assert set(catalog["exit_state_source"]) == {"records"} and totals["exit_state_sources"]["records"] == 16
    assert totals["cpu_hours"] == pytest.approx(catalog["cpu_seconds"].sum() / 3600, rel=1e-12)
    steps = [c for c in catalog.columns if c.endswith("_cpu_s")]
    assert catalog["cpu_seconds"].to_numpy() == pytest.approx(catalog[steps].sum(axis=1).to_numpy())
    assert totals["cpu_hours"] > 0 and totals["events_out"] == 4000
    assert catalog["events_out"].sum() == 4000 and catalog["merged_sha256"].str.fullmatch("[0-9a-f]{64}").all()
    assert set(catalog["swept.physics.diffusion_constant_cm2_per_s"]) == {"15.0", "45.0"}


def test_report_command_prints_the_fit_table(campaign, tmp_path):
    plan, report, _ = campaign
    from faxflow.manifest import write_manifest

    manifest = write_manifest(plan, tmp_path / "manifests")
    done = subprocess.run([sys.executable, "-m", "faxflow.cli", "report", "--manifest", str(manifest.index_path),
                           "--digest", manifest.index_digest], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == str(report)
    assert any(line.startswith("D15_tau300") and "diffusion constant D" in line for line in lines)


def test_dry_run_cpu_time_is_meaningful_for_small_campaigns(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\nnumber_job: 1\nnumber_event_per_job: 10\noutput_root: out\n")
    table = format_dry_run(make_plan(load_campaign(config)))
    assert "0.000" not in table
    expected = f"{10 / EVENTS_PER_CPU_SECOND['builtin']:.3g} s"  # 3 significant figures, never 0.000
    assert re.search(rf"total .*\b{re.escape(expected)}", table), table
    assert f"builtin {EVENTS_PER_CPU_SECOND['builtin']:g} events/s/core" in table


def test_throughput_constant_is_the_benchmark_figure():
    results = json.loads((PROJECT / "bench" / "results" / "chain.json").read_text())
    largest = results["sizes"][max(results["sizes"], key=int)]
    measured = largest["fused"]["events_per_cpu_s"] if "fused" in largest else largest["events_per_s"]
    assert EVENTS_PER_CPU_SECOND["builtin"] == pytest.approx(measured, rel=0.25)
