"""DAG-file parse time for a campaign of 100 variants (target ≤ 0.5 s).

Each measurement runs in a fresh interpreter that has Airflow already imported (as the dag-processor
has) and then parses ``dags/faxflow_campaigns.py`` with ``DagBag`` twice: ``cold`` includes importing
faxflow/pydantic for the first time, ``warm`` is a re-parse. Prints JSON, writes bench/results/dag_parse.json.

    .venv/bin/python bench/bench_dag_parse.py [--variants 100] [--repeats 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
import airflow.sdk  # the dag-processor has this loaded already
from airflow.dag_processing.dagbag import DagBag
times = []
for _ in range(2):
    started = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    times.append(time.perf_counter() - started)
    assert not bag.import_errors, bag.import_errors
dag = next(iter(bag.dags.values()))
print(json.dumps({"cold": times[0], "warm": times[1], "dags": len(bag.dags), "tasks": len(dag.tasks)}))
"""


def campaign(variants: int) -> str:
    lines = ["name: bench100", "description: parse benchmark", "number_job: 20", "number_event_per_job: 100",
             "cluster: {backend: slurm, remote_root: /scratch/faxflow, partition: xenon1t, productions_per_job: 2}",
             "variants:"]
    for index in range(variants):
        lines.append(f"  - {{name: v{index:03d}, physics: {{diffusion_constant_cm2_per_s: {10 + index * 0.25}}}}}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        configs = Path(tmp) / "configs"
        configs.mkdir()
        (configs / "bench.yaml").write_text(campaign(args.variants))
        home = Path(tmp) / "home"
        env = {**os.environ, "FAXFLOW_CONFIGS_DIR": str(configs), "AIRFLOW_HOME": str(home),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "FAXFLOW_PROJECT_ROOT": str(PROJECT)}
        runs = []
        for _ in range(args.repeats):
            done = subprocess.run([sys.executable, "-c", CHILD, str(PROJECT / "dags" / "faxflow_campaigns.py")],
                                  env=env, capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = {"benchmark": "dag_parse", "variants": args.variants, "tasks": runs[0]["tasks"],
              "cold_seconds_median": statistics.median(r["cold"] for r in runs),
              "warm_seconds_median": statistics.median(r["warm"] for r in runs),
              "cold_seconds": [round(r["cold"], 4) for r in runs], "target_seconds": 0.5}
    result["meets_target"] = result["cold_seconds_median"] <= 0.5
    print(json.dumps(result, indent=1))
    out = PROJECT / "bench" / "results" / "dag_parse.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
