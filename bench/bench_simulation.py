"""Benchmark of the builtin simulator (not a test).

2017 test settings: XENON1T SR1, s1_photons ~ randint[50, 100), s2_electrons ~ randint[10, 100),
positions uniform in the FV (r <= 36.94 cm, 9 <= depth <= 92.9 cm), t = 1000 ns, PMT and S2
afterpulses on. Runs simulate_file (CSV in, truth CSV + raw .npz out) on one core for each N and
prints one JSON line per N (best of BENCH_REPEATS=3 runs up to 2000 events, with the process's
CPU time, since the machine may be shared); all results go to bench/results/simulation.json.

    .venv/bin/python bench/bench_simulation.py [N ...]      (default: 1000 10000)
"""

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402 - after the environment / sys.path set-up above
import pandas as pd  # noqa: E402 - after the environment / sys.path set-up above

from faxflow.engines.builtin.parameters import PhysicsParameters  # noqa: E402 - after the environment / sys.path set-up above
from faxflow.engines.builtin.simulation import simulate  # noqa: E402 - after the environment / sys.path set-up above

RESULTS = Path(__file__).parent / "results" / "simulation.json"
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))  # runs per size up to 2000 events (best is kept)


def write_instructions(path: Path, n_events: int, seed: int = 2017) -> None:
    rng = np.random.default_rng(seed)
    radius = 36.94 * np.sqrt(rng.random(n_events))
    angle = rng.uniform(-np.pi, np.pi, n_events)
    pd.DataFrame({"instruction": np.arange(n_events), "recoil_type": "ER", "x": radius * np.cos(angle),
                  "y": radius * np.sin(angle), "depth": rng.uniform(9.0, 92.9, n_events),
                  "s1_photons": rng.integers(50, 100, n_events), "s2_electrons": rng.integers(10, 100, n_events),
                  "t": 1000}).to_csv(path, index=False)


def run(n_events: int, workdir: Path, physics: PhysicsParameters, repeats: int = 1) -> dict:
    """Best (least wall time) of ``repeats`` runs; the machine may be shared, so the CPU time of
    this process (user + system) is reported too."""
    csv = workdir / f"instructions_{n_events}.csv"
    write_instructions(csv, n_events)
    truth, raw = workdir / f"truth_{n_events}.csv", workdir / f"raw_{n_events}.npz"
    runs = []
    for _ in range(repeats):
        simulate.STEP_SECONDS.clear()
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        counts = simulate.simulate_file(csv, truth, raw, physics, pmt_afterpulse=True, s2_afterpulse=True, seed=1)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        runs.append((elapsed, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime,
                     dict(simulate.STEP_SECONDS)))
    elapsed, user, system, steps = min(runs, key=lambda r: r[0])
    return {"n_events": n_events, "events_out": counts.events_out, "repeats": repeats, "seconds": round(elapsed, 3),
            "events_per_second": round(n_events / elapsed, 1),
            "median_seconds": round(sorted(r[0] for r in runs)[len(runs) // 2], 3),
            "cpu_user_seconds": round(user, 3), "cpu_system_seconds": round(system, 3),
            "step_seconds": {k: round(v, 3) for k, v in steps.items()},
            "raw_megabytes": round(raw.stat().st_size / 1e6, 1),
            "peak_rss_megabytes_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(sizes: list[int]) -> None:
    physics = PhysicsParameters.for_period("SR1")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        run(20, Path(tmp), physics)  # compile/load the numba kernels outside the timing
        for n_events in sizes:
            result = run(n_events, Path(tmp), physics, repeats=REPEATS if n_events <= 2000 else 1)
            print(json.dumps(result), flush=True)
            results.append(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "builtin simulate_file, 2017 test settings, 1 core",
                                   "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [1000, 10000])
