"""Benchmark of the builtin engine's chain on one core: events/s per step at two production sizes.

Each size runs in a fresh child process pinned to one CPU (numba functions are compiled and
cached by a small warm-up production first, outside the timings). A production is simulated from
an instruction CSV with the 2017 SR1 campaign settings (photons 50-100, electrons 10-100,
r <= 36.94 cm, 9 <= depth <= 92.9 cm, t = 1000 ns, afterpulses and photo-ionisation on) and then
processed and turned into minitrees, all through the file-based engine entry points.

Steps live in ``STEPS`` (name → function of the production's paths); later steps (sort, merge)
are appended there. Prints one JSON line and writes bench/results/chain.json.

    .venv/bin/python bench/bench_chain.py [--sizes 1000 5000]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SINGLE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                        "NUMBA_NUM_THREADS")}
RESULTS = Path(__file__).parent / "results" / "chain.json"
SEED = 2017


def write_instructions(path: Path, n_events: int, seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    radius = 36.94 * np.sqrt(rng.random(n_events))
    angle = rng.uniform(-np.pi, np.pi, n_events)
    depth = rng.uniform(9.0, 92.9, n_events)
    photons = rng.integers(50, 100, n_events)
    electrons = rng.integers(10, 100, n_events)
    lines = ["instruction,recoil_type,x,y,depth,s1_photons,s2_electrons,t"]
    lines += [f"{i},ER,{radius[i] * np.cos(angle[i]):.4f},{radius[i] * np.sin(angle[i]):.4f},{depth[i]:.4f},"
              f"{photons[i]},{electrons[i]},1000" for i in range(n_events)]
    path.write_text("\n".join(lines) + "\n")


def steps(engine, paths: dict[str, Path]) -> dict:
    """Step name → zero-argument callable running that step on ``paths``."""
    from faxflow.truth import merge_truth_files, sort_truth_file

    n_events = int(paths["instructions"].name.split("_")[0])
    return {
        "simulate": lambda: engine.simulate(paths["instructions"], paths["truth"], paths["raw"], SEED),
        "process": lambda: engine.process(paths["raw"], paths["processed"]),
        "sort_truth": lambda: sort_truth_file(paths["truth"], n_events, paths["truth_sorted"]),
        "minitrees": lambda: engine.minitrees(paths["processed"], paths["minitrees"]),
        "merge": lambda: merge_truth_files(paths["minitrees"], paths["truth_sorted"], paths["merged"]),
    }


def run_production(n_events: int, workdir: Path) -> dict[str, float]:
    """Seconds per step for one production of ``n_events``."""
    from faxflow.engines.builtin import BuiltinEngine

    engine = BuiltinEngine.from_settings({})
    paths = {name: workdir / f"{n_events}_{name}{suffix}" for name, suffix in (
        ("instructions", ".csv"), ("truth", ".csv"), ("raw", ".npz"), ("processed", ".parquet"),
        ("truth_sorted", ".parquet"), ("minitrees", ".parquet"), ("merged", ".parquet"))}
    write_instructions(paths["instructions"], n_events, SEED)
    seconds = {}
    for name, step in steps(engine, paths).items():
        started = time.perf_counter()
        counts = step()
        seconds[name] = time.perf_counter() - started
        if counts.events_out != n_events:
            raise RuntimeError(f"{name}: {counts.events_out} events out of {n_events}")
    return seconds


def child(n_events: int) -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        run_production(20, Path(tmp))  # warm-up: numba compilation / cache loading
        seconds = run_production(n_events, Path(tmp))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"events": n_events, "seconds": seconds, "peak_rss_mb": peak_rss_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    runs = {}
    for size in args.sizes:
        output = subprocess.run([sys.executable, __file__, "--child", str(size)], check=True, capture_output=True,
                                text=True, env={**os.environ, **SINGLE_THREAD}).stdout
        runs[size] = json.loads(output.strip().splitlines()[-1])
    result = {"cores": 1, "sizes": {}}
    for size, run in runs.items():
        total = sum(run["seconds"].values())
        result["sizes"][str(size)] = {
            "events_per_s": size / total,
            "step_seconds": run["seconds"],
            "step_events_per_s": {name: size / s for name, s in run["seconds"].items()},
            "peak_rss_mb": run["peak_rss_mb"],
        }
    if len(runs) > 1:
        small, large = min(runs), max(runs)
        per_event = {size: sum(runs[size]["seconds"].values()) / size for size in (small, large)}
        result["time_per_event_ratio_large_to_small"] = per_event[large] / per_event[small]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
