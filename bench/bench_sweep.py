"""A processing-only sweep: 3 variants that differ only in processing settings share one simulation.

The campaign (2017 SR1 defaults, afterpulses and photo-ionisation on, raw dropped) has 3 variants
x 2 productions x 1,000 events; every group runs through ``faxflow.pipeline.run_group`` in one
child process pinned to one CPU, on the kernel cache ``make install`` warms (or
``$FAXFLOW_KERNEL_CACHE``). Counted from the group summaries: how many simulate and process steps
ran; from the done records: the CPU seconds of each step (``cpu_seconds``). With raw dropped, the
processing steps of the 2nd and 3rd variant regenerate the raw data in memory (same seed, truth
checked), which is included in their CPU seconds. The machine is shared, so all times are CPU seconds, not wall time.
``simulation_cpu_saved_s`` is what simulating once per variant would have cost on top.

Prints one JSON line and writes bench/results/sweep.json.

    .venv/bin/python bench/bench_sweep.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "sweep.json"
WARM_CACHE = Path(__file__).resolve().parents[1] / "runs" / ".cache" / "kernels"  # what make install warms
SINGLE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                        "NUMBA_NUM_THREADS")}
CAMPAIGN = """
name: sweep
number_job: 2
number_event_per_job: 1000
cluster: {productions_per_job: 2}
variants:
  - name: nominal
  - name: strict_s2
    processing: {s2_min_channels: 5}
  - name: loose_s2
    processing: {s2_min_channels: 3}
"""


def child() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from faxflow.config import load_campaign
    from faxflow.pipeline import STEPS, ProductionRunner, run_group
    from faxflow.plan import make_plan

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "sweep.yaml"
        config.write_text(CAMPAIGN)
        plan = make_plan(load_campaign(config), output_root=str(Path(tmp) / "out"))
        started = time.process_time()
        summaries = [run_group(plan, group.index, echo=lambda line: None) for group in plan.groups]
        total_cpu = time.process_time() - started
        if any(summary["exit_code"] for summary in summaries):
            raise RuntimeError(f"sweep failed: {[s['failures'] for s in summaries]}")
        steps_run = Counter(step for summary in summaries for production in summary["productions"]
                            for step in production["steps_run"])
        step_cpu = defaultdict(float)
        for variant in plan.variants:
            runner = ProductionRunner(plan, variant, Path(plan.output_root))
            for production in variant.productions:
                files = runner.files(production)
                for step in STEPS:
                    record = files.done_record(step)
                    if record.exists() and step in summaries_steps(summaries, variant.name, production.id):
                        step_cpu[step] += json.loads(record.read_text())["cpu_seconds"]
        n_events = sum(len(v.productions) for v in plan.variants) * plan.variants[0].settings["number_event_per_job"]
        print(json.dumps({"variants": len(plan.variants), "productions": sum(len(v.productions) for v in plan.variants),
                          "sim_dirs": len({v.sim_dir for v in plan.variants}), "steps_run": dict(steps_run),
                          "step_cpu_s": dict(step_cpu), "total_cpu_s": total_cpu,
                          "events_per_cpu_s": n_events / total_cpu,
                          "simulation_cpu_saved_s": step_cpu["simulation"] * (len(plan.variants) - 1)}))


def summaries_steps(summaries, variant: str, production_id: str) -> set[str]:
    """The steps that ran (not reused) for one production of one variant."""
    return {step for summary in summaries if summary["variant"] == variant for production in summary["productions"]
            if production["production_id"] == production_id for step in production["steps_run"]}


def main() -> None:
    if "--child" in sys.argv:
        child()
        return
    env = {"FAXFLOW_KERNEL_CACHE": str(WARM_CACHE), **os.environ, **SINGLE_THREAD}
    output = subprocess.run([sys.executable, __file__, "--child"], check=True, capture_output=True, text=True,
                            env=env).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["clock"] = "CPU seconds of the child process (time.process_time; done records' cpu_seconds)"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
