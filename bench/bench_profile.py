"""Where the fused builtin chain spends its time: CPU seconds per step and per function.

Runs one fused production (``simulate_to_memory`` → ``process`` → sort truth → minitrees → merge,
the chain and settings of ``bench_chain.py``) after a 20-event warm-up on the warm kernel cache,
in this process pinned to one CPU, under cProfile. A numba kernel's time is charged to the Python
function that calls it (cProfile does not see into compiled code), so the function table reads as
a per-kernel table. Prints the per-step CPU seconds, then the functions with the most own time.

    .venv/bin/python bench/bench_profile.py [--events 1000] [--top 30]
"""

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_chain import SINGLE_THREAD, run_production  # noqa: E402  (needs the path above)


def profile_production(n_events: int) -> tuple[dict, pstats.Stats]:
    """(CPU seconds per step, profile of the whole production) of one fused production."""
    from faxflow.engines.builtin import BuiltinEngine

    engine = BuiltinEngine.from_settings({})
    with tempfile.TemporaryDirectory() as tmp:
        run_production(engine, 20, Path(tmp), "fused")  # kernels load from the cache
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        run = run_production(engine, n_events, Path(tmp), "fused")
        profiler.disable()
    return run["seconds"], pstats.Stats(profiler)


def function_rows(stats: pstats.Stats, top: int) -> list[tuple[float, float, int, str]]:
    """(own s, cumulative s, calls, name) of the ``top`` functions with the most own time."""
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else filename
        rows.append((own, cumulative, calls, f"{name} ({where})"))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    missing = {name: value for name, value in SINGLE_THREAD.items() if os.environ.get(name) != value}
    if missing:  # thread counts are read at import: re-run with them set
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **missing})
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    seconds, stats = profile_production(args.events)
    total = sum(seconds.values())
    print(f"{args.events} events, fused chain: {total:.3f} CPU-s, {args.events / total:.0f} events per CPU-s")
    print(f"{'step':<12} {'CPU s':>8} {'share':>7}")
    for name, value in seconds.items():
        print(f"{name:<12} {value:8.3f} {value / total:7.1%}")
    profiled = sum(row[0] for row in function_rows(stats, len(stats.stats)))
    print(f"\n{'own s':>8} {'share':>7} {'cum s':>8} {'calls':>7}  function (profiled total {profiled:.3f} s)")
    for own, cumulative, calls, name in function_rows(stats, args.top):
        print(f"{own:8.3f} {own / profiled:7.1%} {cumulative:8.3f} {calls:7d}  {name}")


if __name__ == "__main__":
    main()
