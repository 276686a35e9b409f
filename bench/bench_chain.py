"""Benchmark of the builtin engine's full chain on one core: cold start, fused vs raw kept, bytes, RSS.

A production is simulated from an instruction CSV with the 2017 SR1 campaign settings (photons
50-100, electrons 10-100, r <= 36.94 cm, 9 <= depth <= 92.9 cm, t = 1000 ns, afterpulses and
photo-ionisation on), processed, its truth sorted, its minitrees built and merged. Both chains
process each batch of events as it is simulated, like the pipeline (one step, ``simulate_process``):

* ``fused``: no raw file (``raw: drop``);
* ``kept``: each batch is also appended to the compressed raw file (``raw: keep``).

Every run is a fresh child process pinned to one CPU. The machine is shared, so all speeds are
per CPU-second of the child (``time.process_time``), not wall time; peak RSS is the child's.

* ``cold_start``: in a child with an EMPTY kernel cache directory, CPU seconds of the first
  production (``engine.prepare`` compiles the kernels, then 1,000 events) minus those of the same
  production run again in that process; then the same in a new child on the now warm cache
  (what every job after the prepare step sees).
* ``sizes``: per chain and size (1,000 and 10,000 events by default), events per CPU-second over
  the whole chain, CPU seconds per step, bytes per event of the kept raw file, peak RSS. A warm-up
  production of 20 events runs first, outside the timings.
* ``time_per_event_ratio``: CPU time per event at the largest size over the smallest, per chain.
* with ``--baseline REV``: the same runs of the library at git revision REV (its ``include/``, driven
  by this harness, with its own kernel cache), each run next to the current one so both see the same
  machine, and ``speedup_vs_baseline`` (baseline CPU time over current) per chain and size.

Prints one JSON line and writes bench/results/chain.json.

    .venv/bin/python bench/bench_chain.py [--sizes 1000 10000] [--skip-cold] [--baseline REV]
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
COLD_START_EVENTS = 1000
CHAINS = ("fused", "kept")


def write_instructions(path: Path, n_events: int, seed: int) -> None:
    import numpy as np

    from faxflow.instructions import INSTRUCTION_COLUMNS

    rng = np.random.default_rng(seed)
    radius = 36.94 * np.sqrt(rng.random(n_events))
    angle = rng.uniform(-np.pi, np.pi, n_events)
    depth = rng.uniform(9.0, 92.9, n_events)
    photons = rng.integers(50, 100, n_events)
    electrons = rng.integers(10, 100, n_events)
    lines = [",".join(INSTRUCTION_COLUMNS)]
    lines += [f"{i},ER,{radius[i] * np.cos(angle[i]):.4f},{radius[i] * np.sin(angle[i]):.4f},{depth[i]:.4f},"
              f"{photons[i]},{electrons[i]},1000" for i in range(n_events)]
    path.write_text("\n".join(lines) + "\n")


def steps(engine, paths: dict[str, Path], chain: str) -> dict:
    """Step name → zero-argument callable running that step of ``chain`` on ``paths``."""
    from faxflow.truth import merge_truth_files, sort_truth_file

    n_events = int(paths["instructions"].name.split("_")[0])

    def simulate_process():
        batches = engine.simulation_batches(paths["instructions"], paths["truth"], seed=SEED,
                                            raw_out=paths["raw"] if chain == "kept" else None)
        processed = engine.process_batches(batches, paths["processed"])
        if processed != batches.counts():
            raise RuntimeError(f"processed {processed}, simulated {batches.counts()}")
        return processed

    return {
        "simulate_process": simulate_process,
        "sort_truth": lambda: sort_truth_file(paths["truth"], n_events, paths["truth_sorted"]),
        "minitrees": lambda: engine.minitrees(paths["processed"], paths["minitrees"]),
        "merge": lambda: merge_truth_files(paths["minitrees"], paths["truth_sorted"], paths["merged"]),
    }


def run_production(engine, n_events: int, workdir: Path, chain: str) -> dict:
    """CPU seconds per step and kept raw bytes for one production of ``n_events``."""
    paths = {name: workdir / f"{n_events}_{name}{suffix}" for name, suffix in (
        ("instructions", ".csv"), ("truth", ".csv"), ("raw", ".npz"), ("processed", ".parquet"),
        ("truth_sorted", ".parquet"), ("minitrees", ".parquet"), ("merged", ".parquet"))}
    write_instructions(paths["instructions"], n_events, SEED)
    seconds = {}
    for name, step in steps(engine, paths, chain).items():
        started = time.process_time()
        counts = step()
        seconds[name] = time.process_time() - started
        if counts.events_out != n_events:
            raise RuntimeError(f"{name}: {counts.events_out} events out of {n_events}")
    raw_bytes = paths["raw"].stat().st_size if paths["raw"].exists() else 0
    for path in paths.values():
        path.unlink(missing_ok=True)
    return {"seconds": seconds, "raw_bytes": raw_bytes}


def child(n_events: int, chain: str, cold: bool) -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from faxflow.engines.builtin import BuiltinEngine

    engine = BuiltinEngine.from_settings({})
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            started = time.process_time()
            engine.prepare(Path(tmp), lambda line: print(line, file=sys.stderr))
            run_production(engine, n_events, Path(tmp), chain)
            first = time.process_time() - started
            started = time.process_time()
            run_production(engine, n_events, Path(tmp), chain)
            print(json.dumps({"first_cpu_s": first, "again_cpu_s": time.process_time() - started}))
            return
        run_production(engine, 20, Path(tmp), chain)  # warm-up: kernels load from the cache
        run = run_production(engine, n_events, Path(tmp), chain)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**run, "peak_rss_mb": peak_rss_mb}))


def _child(args: list[str], cache: Path, library: Path | None = None) -> dict:
    """Run this script as a benchmark child (on the library under ``library``, default the installed one)."""
    env = {**os.environ, **SINGLE_THREAD, "FAXFLOW_KERNEL_CACHE": str(cache)}
    if library is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(library), env.get("PYTHONPATH")]))
    run = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"bench child {' '.join(args)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def cold_start(cache: Path) -> dict:
    """First-production overhead on an empty cache, then on the cache that run left warm."""
    cold = _child(["--child", str(COLD_START_EVENTS), "--chain", "fused", "--cold"], cache)
    warm = _child(["--child", str(COLD_START_EVENTS), "--chain", "fused", "--cold"], cache)
    return {"events": COLD_START_EVENTS,
            "empty_cache_overhead_cpu_s": cold["first_cpu_s"] - cold["again_cpu_s"],
            "warm_cache_overhead_cpu_s": warm["first_cpu_s"] - warm["again_cpu_s"],
            "runs": {"empty_cache": cold, "warm_cache": warm}}


def baseline_library(rev: str, into: Path) -> Path:
    """The ``include/`` tree of git revision ``rev`` of this repository, extracted under ``into``."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "include"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "include"


def summary(runs: dict, sizes: list[int]) -> dict:
    """The ``sizes`` (and ``time_per_event_ratio``) entries of the result for ``runs[(chain, size)]``."""
    result = {"sizes": {}}
    for (chain, size), run in runs.items():
        total = sum(run["seconds"].values())
        entry = {"events_per_cpu_s": size / total, "step_cpu_s": run["seconds"], "peak_rss_mb": run["peak_rss_mb"]}
        if chain == "kept":
            entry["raw_bytes_per_event"] = run["raw_bytes"] / size
        result["sizes"].setdefault(str(size), {})[chain] = entry
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        result["time_per_event_ratio"] = {
            chain: (sum(runs[chain, large]["seconds"].values()) / large)
            / (sum(runs[chain, small]["seconds"].values()) / small) for chain in CHAINS}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--skip-cold", action="store_true", help="do not measure the cold start")
    parser.add_argument("--baseline", metavar="REV", help="also run git revision REV's library, run by run")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chain", choices=CHAINS, help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.chain, args.cold)
        return

    result = {"cores": 1, "clock": "CPU seconds of the child process (time.process_time)", "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as fresh:
        if not args.skip_cold:
            result["cold_start"] = cold_start(Path(fresh))
        cache = Path(fresh) if not args.skip_cold else Path(
            os.environ.get("FAXFLOW_KERNEL_CACHE") or Path(__file__).resolve().parents[1] / "runs/.cache/kernels")
        runs, baseline_runs = {}, {}
        with tempfile.TemporaryDirectory(prefix="bench-baseline-") as old:
            library = baseline_library(args.baseline, Path(old)) if args.baseline else None
            baseline_cache = cache.parent / f"baseline-{args.baseline}"
            for chain in CHAINS:
                for size in args.sizes:
                    if library is not None:
                        baseline_runs[chain, size] = _child(["--child", str(size), "--chain", chain], baseline_cache,
                                                            library)
                    runs[chain, size] = _child(["--child", str(size), "--chain", chain], cache)
    result.update(summary(runs, args.sizes))
    if args.baseline:
        result["baseline"] = {"rev": args.baseline, **summary(baseline_runs, args.sizes)}
        result["speedup_vs_baseline"] = {
            str(size): {chain: sum(baseline_runs[chain, size]["seconds"].values())
                        / sum(runs[chain, size]["seconds"].values()) for chain in CHAINS} for size in args.sizes}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
