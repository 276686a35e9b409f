"""Run every benchmark in turn; each prints one JSON line and writes bench/results/<name>.json.

    .venv/bin/python bench/run_all.py            # all but the real-Slurm benchmark
    .venv/bin/python bench/run_all.py --cluster  # also bench_cluster.py (root; starts a Slurm sandbox)
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["bench_plan.py", "bench_sort_merge.py", "bench_simulation.py", "bench_chain.py", "bench_sweep.py",
           "bench_dag_parse.py", "bench_poll.py"]


def main() -> int:
    benches = BENCHES + (["bench_cluster.py"] if "--cluster" in sys.argv else [])
    failed = []
    for name in benches:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
