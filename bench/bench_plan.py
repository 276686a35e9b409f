"""Planning a 100-variant × 1,000-production campaign: load + plan + write manifest (target ≤ 2 s).

Run: .venv/bin/python bench/bench_plan.py
"""

import json
import tempfile
import time
from pathlib import Path

from faxflow.config import campaign_from_dict
from faxflow.plan import make_plan, write_manifest

RESULTS = Path(__file__).parent / "results" / "plan.json"


def main() -> None:
    raw = {"name": "big", "number_job": 1000, "number_event_per_job": 100,
           "cluster": {"productions_per_job": 10},
           "matrix": {"physics.diffusion_constant_cm2_per_s": [20 + i for i in range(10)],
                      "physics.electron_lifetime_us": [400 + 25 * i for i in range(10)]}}
    timings = {}
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
        size = manifest.stat().st_size
    result = {"variants": len(plan.variants), "productions": plan.totals()["productions"],
              "groups": len(plan.groups), "manifest_mb": round(size / 1e6, 1),
              **{k: round(v, 3) for k, v in timings.items()}, "total_s": round(sum(timings.values()), 3),
              "target_s": 2.0}
    print(json.dumps(result))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
