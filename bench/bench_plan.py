"""Planning at scale: load + plan + write the manifest (index + one slice per group).

Cases: 100 variants × 1,000 productions (target ≤ 2 s) and 100 variants × 10,000 productions
(target ≤ 10 s); no slice a job reads may exceed 1 MB. Wall seconds per stage, plus the CPU
seconds of the whole (``time.process_time``): on a shared machine the wall time follows the load.

Run: .venv/bin/python bench/bench_plan.py
"""

import json
import tempfile
import time
from pathlib import Path

from faxflow.config import campaign_from_dict
from faxflow.manifest import MAX_SLICE_BYTES, load_slice, write_manifest
from faxflow.plan import make_plan

RESULTS = Path(__file__).parent / "results" / "plan.json"
CASES = {"100x1000": (1000, 2.0), "100x10000": (10000, 10.0)}


def run_case(number_job: int, target_s: float) -> dict:
    raw = {"name": "big", "number_job": number_job, "number_event_per_job": 100,
           "cluster": {"productions_per_job": 100},
           "limits": {"max_productions_per_campaign": 100 * number_job},
           "matrix": {"physics.diffusion_constant_cm2_per_s": [20 + i for i in range(10)],
                      "physics.electron_lifetime_us": [400 + 25 * i for i in range(10)]}}
    timings = {}
    cpu_started = time.process_time()
    started = time.perf_counter()
    campaign = campaign_from_dict(raw, "big.yaml")
    timings["validate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    plan = make_plan(campaign, output_root="/tmp/out")
    timings["plan_s"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        manifest = write_manifest(plan, directory)
        timings["write_manifest_s"] = time.perf_counter() - started
        timings["total_cpu_s"] = time.process_time() - cpu_started
        sizes = [path.stat().st_size for path, _ in manifest.slices.values()]
        index_mb = manifest.index_path.stat().st_size / 1e6
        path, digest = manifest.slices[len(plan.groups) // 2]
        started = time.perf_counter()
        load_slice(path, digest)
        timings["job_reads_slice_s"] = time.perf_counter() - started
    total = timings["validate_s"] + timings["plan_s"] + timings["write_manifest_s"]
    return {"variants": len(plan.variants), "productions": plan.totals()["productions"], "groups": len(plan.groups),
            "index_mb": round(index_mb, 2), "largest_slice_kb": round(max(sizes) / 1e3, 1),
            "slice_limit_kb": MAX_SLICE_BYTES / 1e3, **{k: round(v, 3) for k, v in timings.items()},
            "total_s": round(total, 3), "target_s": target_s}


def main() -> None:
    result = {name: run_case(*case) for name, case in CASES.items()}
    print(json.dumps(result, indent=1))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
