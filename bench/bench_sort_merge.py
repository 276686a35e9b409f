"""Benchmark: SortTruth + MergeTruth of one large production.

Synthesises a fax truth CSV (modern column order, ~2 rows per event: an s1 and an s2 row;
a few events without s1, a few without any peak, a few with a second s1/s2 from a
multi-row instruction) and a minitree table (Basics + Fundamentals-like columns, a few events
missing), then times ``sort_truth_file`` and ``merge_truth_files``. Prints one JSON line and
writes ``bench/results/sort_merge.json``.

Usage: ``python bench/bench_sort_merge.py [--events 100000] [--repeat 3] [--seed 0]``
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "include"))

from faxflow.truth import merge_truth_files, sort_truth_file  # noqa: E402 - after the environment / sys.path set-up above

TRUTH_ORDER = ["instruction", "repetition", "event", "peak_type", "g4_id", "x", "y", "z", "t_interaction",
               "top_fraction", "n_photons", "t_mean_photons", "t_first_photon", "t_last_photon", "t_sigma_photons",
               "n_electrons", "t_mean_electrons", "t_first_electron", "t_last_electron", "t_sigma_electrons"]


def synth_truth(n_events: int, rng: np.random.Generator) -> pd.DataFrame:
    events = np.arange(n_events)
    has_s1 = rng.random(n_events) > 0.03
    has_s2 = rng.random(n_events) > 0.01
    extra = rng.random(n_events) < 0.02  # multi-row instruction: one more s1 and s2
    parts = []
    for peak_type, mask, n_mean, t0, sigma in (("s1", has_s1, 40, 6046, 30), ("s2", has_s2, 1500, 6500, 300)):
        for selected in (events[mask], events[mask & extra]):
            m = len(selected)
            n = rng.poisson(n_mean, m) + 1
            x, y = rng.uniform(-35, 35, m), rng.uniform(-35, 35, m)
            depth = rng.uniform(9, 93, m)
            t_mean = t0 + (depth * 749 if peak_type == "s2" else 0) + rng.normal(0, 5, m)
            is_s2 = peak_type == "s2"
            parts.append(pd.DataFrame({
                "instruction": selected, "repetition": 0, "event": selected, "peak_type": peak_type, "g4_id": -1,
                "x": x, "y": y, "z": -depth, "t_interaction": 6000.0, "top_fraction": rng.uniform(0.1, 0.7, m),
                "n_photons": n, "t_mean_photons": t_mean, "t_first_photon": t_mean - 2 * sigma,
                "t_last_photon": t_mean + 3 * sigma, "t_sigma_photons": rng.uniform(0.5, 1.5, m) * sigma,
                "n_electrons": rng.poisson(50, m) if is_s2 else np.nan,
                "t_mean_electrons": t_mean - 100 if is_s2 else np.nan,
                "t_first_electron": t_mean - 300 if is_s2 else np.nan,
                "t_last_electron": t_mean + 300 if is_s2 else np.nan,
                "t_sigma_electrons": rng.uniform(50, 150, m) if is_s2 else np.nan,
            }))
    truth = pd.concat(parts, ignore_index=True)
    truth = truth.sort_values(["event", "peak_type"], kind="stable").reset_index(drop=True)
    return truth[TRUTH_ORDER]


def synth_minitrees(n_events: int, rng: np.random.Generator) -> pd.DataFrame:
    events = np.flatnonzero(rng.random(n_events) > 0.005)
    m = len(events)
    columns = {"run_number": np.zeros(m, dtype=np.int64), "event_number": events,
               "event_duration": np.full(m, 400000, dtype=np.int64), "event_time": events * 10 ** 7}
    for name in ("s1", "s2", "cs1", "cs2", "x", "y", "z", "drift_time", "s1_area_fraction_top",
                 "s2_area_fraction_top", "largest_other_s1", "largest_other_s2", "s1_range_50p_area",
                 "s2_range_50p_area", "largest_coincidence", "r", "int_a_x_pax", "int_a_y_pax"):
        columns[name] = rng.normal(100, 10, m)
    columns["interactions"] = rng.integers(0, 3, m)
    return pd.DataFrame(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "sort_merge.json")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        truth = synth_truth(args.events, rng)
        truth.to_csv(tmp / "truth.csv", index_label="fax_truth_peak_id")
        synth_minitrees(args.events, rng).to_parquet(tmp / "minitrees.parquet", index=False)
        sort_times, merge_times = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            sorted_counts = sort_truth_file(tmp / "truth.csv", args.events, tmp / "sorted.parquet")
            middle = time.perf_counter()
            merge_counts = merge_truth_files(tmp / "minitrees.parquet", tmp / "sorted.parquet", tmp / "merged.parquet")
            sort_times.append(middle - started)
            merge_times.append(time.perf_counter() - middle)
        best = int(np.argmin(np.add(sort_times, merge_times)))
        result = {
            "benchmark": "sort_merge", "events": args.events, "truth_rows": len(truth),
            "truth_csv_mb": round((tmp / "truth.csv").stat().st_size / 1e6, 2),
            "sort_truth_s": round(sort_times[best], 4), "merge_truth_s": round(merge_times[best], 4),
            "total_s": round(sort_times[best] + merge_times[best], 4), "target_s": 2.0,
            "repeat": args.repeat, "all_total_s": [round(a + b, 4) for a, b in zip(sort_times, merge_times)],
            "sorted_events_out": sorted_counts.events_out, "merged_events_out": merge_counts.events_out,
            "python": platform.python_version(), "pandas": pd.__version__, "numpy": np.__version__,
            "machine": platform.machine(),
        }
    result["within_target"] = result["total_s"] <= result["target_s"]
    print(json.dumps(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
