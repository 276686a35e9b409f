"""Lineage-keyed outputs: shared simulations, dropped and regenerated raw data, one writer per output."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faxflow.config import load_campaign
from faxflow.locks import exclusive
from faxflow.manifest import write_manifest
from faxflow.pipeline import ProductionRunner, group_lock, run_group
from faxflow.plan import make_plan

SWEEP = """
name: lin
number_job: 2
number_event_per_job: 20
s2_afterpulse: false
cluster: {{productions_per_job: 2}}
{extra}
variants:
  - name: base
  - name: strict
    processing: {{s2_min_channels: 5}}
  - name: loose
    processing: {{s2_min_channels: 3}}
"""


def setup(tmp_path, extra=""):
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "lin.yaml"
    config.write_text(SWEEP.format(extra=extra))
    plan = make_plan(load_campaign(config), output_root=str(tmp_path / "out"))
    return plan, write_manifest(plan, tmp_path / "manifests")


def faxflow(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "faxflow.cli", *map(str, args)], capture_output=True, text=True,
                          **kwargs)


def files_of(plan, variant, index=0):
    planned = plan.variant(variant)
    return ProductionRunner(plan, planned, Path(plan.output_root)).files(planned.productions[index])


def test_processing_only_sweep_simulates_once_per_production(tmp_path):
    plan, _ = setup(tmp_path)
    assert len({v.sim_key for v in plan.variants}) == 1 and len({v.output_dir for v in plan.variants}) == 3
    summaries = [run_group(plan, group.index, echo=lambda line: None) for group in plan.groups]
    assert all(summary["exit_code"] == 0 for summary in summaries), [s["failures"] for s in summaries]
    steps = [step for summary in summaries for production in summary["productions"] for step in production["steps_run"]]
    assert steps.count("simulation") == 2 and steps.count("instructions") == 2
    assert steps.count("processing") == 6 and steps.count("merge") == 6
    sim_dir = tmp_path / "out" / plan.variants[0].sim_dir
    assert sorted(p.name for p in (sim_dir / "done").iterdir()) == ["p0000000", "p0000001"]

    base, loose = files_of(plan, "base"), files_of(plan, "loose")
    simulation = json.loads(base.done_record("simulation").read_text())
    assert simulation["raw_kept"] is False and simulation["sim_key"] == plan.variants[0].sim_key
    assert {"cpu_seconds", "host", "slurm_job_id", "wall_seconds"} <= set(simulation)
    assert set(simulation["outputs"]) == {base.truth.name} and not base.raw.exists()
    processing = json.loads(loose.done_record("processing").read_text())
    assert processing["proc_key"] == plan.variant("loose").key and processing["sim_key"] == simulation["sim_key"]
    assert processing["processed_in"] == "processing"  # simulated again in memory
    assert json.loads(base.done_record("processing").read_text())["processed_in"] == "simulation"  # fused
    assert processing["inputs"] == {base.truth.name: simulation["outputs"][base.truth.name]}

    summary = json.loads(faxflow("collect", "--manifest", _index(tmp_path), "--digest", _digest(tmp_path),
                                 "--variant", "strict", "--min-fraction", "1").stdout)
    assert summary["sim_key"] == plan.variants[0].sim_key and summary["sim_dir"] == str(sim_dir)
    assert summary["events_in"] == summary["events_out"] == 40


def _index(tmp_path):
    return next((tmp_path / "manifests").glob("plan-*/index.json"))


def _digest(tmp_path):
    import hashlib

    return hashlib.sha256(_index(tmp_path).read_bytes()).hexdigest()


def test_faxflow_raw_regenerates_a_byte_identical_raw_file(tmp_path):
    kept_plan, _ = setup(tmp_path / "kept", extra="raw: keep")
    assert run_group(kept_plan, 0, echo=lambda line: None)["exit_code"] == 0
    kept = files_of(kept_plan, "base", 1)
    assert json.loads(kept.done_record("simulation").read_text())["raw_kept"] is True

    plan, manifest = setup(tmp_path / "dropped")
    assert plan.variants[0].sim_key == kept_plan.variants[0].sim_key  # keeping raw is not part of the key
    assert run_group(plan, 0, echo=lambda line: None)["exit_code"] == 0
    production = plan.variants[0].productions[1].id
    target = tmp_path / "again.npz"
    result = faxflow("raw", production, "--manifest", manifest.index_path, "--digest", manifest.index_digest,
                     "--output", target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert target.read_bytes() == kept.raw.read_bytes()
    slice_path, slice_digest = manifest.slices[0]
    missing = faxflow("raw", "nope", "--manifest", slice_path, "--digest", slice_digest)
    assert missing.returncode == 3 and "no production 'nope'" in missing.stderr


def test_resumed_processing_regenerates_raw_in_memory(tmp_path):
    plan, _ = setup(tmp_path)
    group = plan.variant("base").group_indices[0]
    run_group(plan, group, echo=lambda line: None)
    files = files_of(plan, "base")
    before = files.processed.read_bytes()
    files.processed.unlink()
    rerun = run_group(plan, group, echo=lambda line: None)["productions"][0]
    assert rerun["steps_run"] == ["processing"] and files.processed.read_bytes() == before


def test_second_runner_of_a_group_stops_at_once_naming_the_holder(tmp_path):
    plan, manifest = setup(tmp_path)
    variant_dir = tmp_path / "out" / plan.variants[0].output_dir
    slice_path, digest = manifest.slices[0]
    with exclusive(group_lock(variant_dir, 0), "group 0"):
        started = time.monotonic()
        result = faxflow("job", "--manifest", slice_path, "--digest", digest)
        assert time.monotonic() - started < 60
    assert result.returncode == 5, result.stdout + result.stderr
    assert f"pid {os.getpid()}" in result.stderr and "since" in result.stderr
    summary = json.loads(result.stdout.splitlines()[-1].removeprefix("FAXFLOW_SUMMARY "))
    assert summary["exit_code"] == 5 and "being written by" in summary["failures"][0]["message"]
    assert not (variant_dir / "done").exists()


def test_leftover_staging_and_temporary_records_are_removed(tmp_path):
    plan, _ = setup(tmp_path)
    run_group(plan, 0, echo=lambda line: None)
    files = files_of(plan, "base")
    leftovers = [files.staging("processing") / "half.parquet", files.staging("simulation") / "half.csv",
                 files.done_record("merge").parent / ".merge.json.k1ll3d", files.done_record("simulation").parent
                 / ".simulation.json.k1ll3d"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left by a killed writer")
    assert run_group(plan, 0, echo=lambda line: None)["exit_code"] == 0
    assert not any(path.exists() for path in leftovers)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _start_long_run(tmp_path):
    config = tmp_path / "lin.yaml"
    config.write_text(SWEEP.format(extra=f"output_root: {tmp_path / 'out'}").replace("number_event_per_job: 20",
                                                                                      "number_event_per_job: 3000"))
    return subprocess.Popen([sys.executable, "-m", "faxflow.cli", "run", str(config), "-j", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_killed_faxflow_run_leaves_no_worker_alive(tmp_path, signal_name):
    import signal

    process = _start_long_run(tmp_path)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((tmp_path / "out").glob("lin/sim-*/done/*/instructions.json")):
            time.sleep(0.05)
        workers = [pid for pid in _children(process.pid) if Path(f"/proc/{pid}/cmdline").exists()
                   and b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert workers, "no worker started"
        process.send_signal(getattr(signal, signal_name))
        output, _ = process.communicate(timeout=60)
        if signal_name == "SIGTERM":
            assert process.returncode == 130 and "resume" in output and "Traceback" not in output, output
    finally:
        process.kill()
        process.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_second_faxflow_run_is_refused_at_once(tmp_path):
    plan, _ = setup(tmp_path, extra=f"output_root: {tmp_path / 'out'}")
    config = tmp_path / "lin.yaml"
    variant_dir = tmp_path / "out" / plan.variants[1].output_dir
    with exclusive(group_lock(variant_dir, 1), "group 1"):
        result = faxflow("run", config, "-j", "1", timeout=120)
    assert result.returncode == 5 and f"pid {os.getpid()}" in result.stderr, result.stdout + result.stderr
    assert not list((tmp_path / "out").glob("lin/*/done"))


def test_regenerated_raw_with_different_truth_is_refused(tmp_path):
    from faxflow.errors import ValidationFailure

    plan, _ = setup(tmp_path)
    run_group(plan, 0, echo=lambda line: None)
    variant = plan.variants[0]
    runner = ProductionRunner(plan, variant, Path(plan.output_root))
    files = runner.files(variant.productions[0])
    record_path = files.done_record("simulation")
    record = json.loads(record_path.read_text())
    record["outputs"][files.truth.name] = "0" * 64  # as if the software now simulated something else
    record_path.write_text(json.dumps(record))
    files.staging("processing").parent.mkdir(parents=True, exist_ok=True)
    with pytest.raises(ValidationFailure, match="does not reproduce the recorded truth"):
        runner.process_regenerated(variant.productions[0], files, tmp_path / "processed.parquet")


def test_two_variants_running_at_once_simulate_each_production_once(tmp_path):
    plan, manifest = setup(tmp_path)
    jobs = [subprocess.Popen([sys.executable, "-m", "faxflow.cli", "job", "--manifest", str(path), "--digest",
                              digest], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for path, digest in (manifest.slices[g] for g in (0, 1))]
    outputs = [job.communicate(timeout=600) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    summaries = [json.loads((tmp_path / "out" / plan.variants[g].output_dir / "groups" / f"g{g:04d}.json")
                            .read_text()) for g in (0, 1)]
    simulated = [p["steps_run"].count("simulation") for s in summaries for p in s["productions"]]
    assert sum(simulated) == 2, summaries


def test_kept_raw_after_a_dropped_one_simulates_once_more_and_reuses_the_rest(tmp_path, monkeypatch):
    from faxflow.engines.builtin import BuiltinEngine

    plan, _ = setup(tmp_path, extra="")
    kept_config = tmp_path / "kept" / "lin.yaml"
    kept_config.parent.mkdir()
    kept_config.write_text(SWEEP.format(extra="raw: keep"))
    kept_plan = make_plan(load_campaign(kept_config), output_root=str(tmp_path / "out"))
    assert kept_plan.variants[0].sim_dir == plan.variants[0].sim_dir
    assert run_group(plan, 0, echo=lambda line: None)["exit_code"] == 0
    dropped = files_of(plan, "base")
    truth_before = dropped.truth.read_bytes()

    simulations = []
    original = BuiltinEngine.simulation_batches
    monkeypatch.setattr(BuiltinEngine, "simulation_batches",
                        lambda self, *args, **kwargs: simulations.append(kwargs.get("raw_out")) or
                        original(self, *args, **kwargs))
    summary = run_group(kept_plan, 0, echo=lambda line: None)
    assert summary["exit_code"] == 0, summary["failures"]
    for production in summary["productions"]:  # only the raw data were missing: nothing else runs
        assert production["steps_run"] == ["simulation"]
    assert len(simulations) == 2 and all(raw_out is not None for raw_out in simulations)
    kept = files_of(kept_plan, "base")
    record = json.loads(kept.done_record("simulation").read_text())
    assert record["raw_kept"] is True and kept.raw.name in record["outputs"] and kept.raw.exists()
    assert dropped.truth.read_bytes() == truth_before  # checked against the dropping run's record

    again = run_group(plan, 0, echo=lambda line: None)  # the dropping variant still finds everything done
    assert [p["steps_run"] for p in again["productions"]] == [[], []]


def test_kept_raw_whose_simulation_gives_another_truth_is_refused(tmp_path):
    import hashlib

    plan, _ = setup(tmp_path)
    assert run_group(plan, 0, echo=lambda line: None)["exit_code"] == 0
    dropped = files_of(plan, "base")
    dropped.truth.write_bytes(dropped.truth.read_bytes() + b"\n")  # as if the simulation were not reproducible
    record = json.loads(dropped.done_record("simulation").read_text())
    record["outputs"][dropped.truth.name] = hashlib.sha256(dropped.truth.read_bytes()).hexdigest()
    dropped.done_record("simulation").write_text(json.dumps(record))
    kept_config = tmp_path / "kept" / "lin.yaml"
    kept_config.parent.mkdir()
    kept_config.write_text(SWEEP.format(extra="raw: keep"))
    kept_plan = make_plan(load_campaign(kept_config), output_root=str(tmp_path / "out"))
    summary = run_group(kept_plan, 0, echo=lambda line: None)
    failure = summary["failures"][0]
    assert failure["step"] == "simulation" and "gave another truth" in failure["message"]
    assert not files_of(kept_plan, "base").raw.exists()
