"""Steps 4 and 6 of a production: sort the fax truth per event, merge it with the minitrees.

Reproduces the output columns of the 2017 ``SortAndMerge.py`` (docs/physics.md, "Instruction and
truth files") without
its defects:

* several s1 (or s2) truth rows of one event (multi-row instructions, ``correlated: false``)
  are *aggregated* into one row, instead of the 2017 cartesian product of rows;
* every event ``0..n_events−1`` gets exactly one row; events without any truth peak
  (nothing detected) get NaN instead of vanishing;
* the truth CSV is read by column name (fax's column order depends on the pandas version).

Aggregation of the rows of one event and peak type (s1 or s2), with n_i photons, mean m_i and
population std σ_i of the photon times per row, N = Σ n_i:

* ``{p}`` = N (detected photons, summed);
* ``{p}_hit_time_mean`` M = Σ n_i m_i / N (photon-weighted);
* ``{p}_width`` = sqrt(Σ n_i (σ_i² + (m_i − M)²) / N): exactly the population std of the
  union of all photons of that type;
* ``{p}_area_fraction_top`` = Σ n_i f_i / N;
* ``x``, ``y`` (from s2 rows) photon-weighted like the top fraction.

An event with a single row of a type gets that row's values unchanged (bit for bit).
``other_s2*`` come from the non-s1/s2 rows (``photoionization_afterpulse``; normally absent)
with the largest ``n_photons`` of the event (first such row on ties), as in 2017.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faxflow.engines import StepCounts
from faxflow.errors import BadInputError

#: Truth CSV columns SortTruth needs (fax writes more; they are ignored).
TRUTH_COLUMNS = ["event", "peak_type", "n_photons", "t_mean_photons", "t_sigma_photons", "top_fraction", "x", "y"]
#: SortTruth output columns, in the 2017 order.
SORTED_COLUMNS = ["event_number",
                  "s1", "s1_hit_time_mean", "s1_width", "s1_area_fraction_top",
                  "s2", "s2_hit_time_mean", "s2_width", "s2_area_fraction_top",
                  "x", "y",
                  "other_s2", "other_s2_hit_time_mean", "other_s2_width", "other_s2_area_fraction_top"]
TRUTH_PREFIX = "truth_"


def read_truth_csv(truth_csv: Union[str, Path]) -> pd.DataFrame:
    """The :data:`TRUTH_COLUMNS` of a fax truth CSV, addressed by name."""
    truth_csv = Path(truth_csv)
    try:
        header = pd.read_csv(truth_csv, nrows=0).columns
    except FileNotFoundError:
        raise BadInputError(f"{truth_csv}: truth file not found") from None
    except pd.errors.EmptyDataError:
        raise BadInputError(f"{truth_csv}: truth file is empty (not even a header)") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise BadInputError(f"{truth_csv}: cannot read truth CSV: {error}") from None
    missing = [column for column in TRUTH_COLUMNS if column not in header]
    if missing:
        raise BadInputError(f"{truth_csv}: truth CSV lacks columns {missing} (found columns: {list(header)})")
    dtypes = {"event": "float64", "peak_type": "str", "n_photons": "float64", "t_mean_photons": "float64",
              "t_sigma_photons": "float64", "top_fraction": "float64", "x": "float64", "y": "float64"}
    try:
        return pd.read_csv(truth_csv, usecols=TRUTH_COLUMNS, dtype=dtypes, engine="c")[TRUTH_COLUMNS]
    except (ValueError, pd.errors.ParserError) as error:
        raise BadInputError(f"{truth_csv}: malformed truth CSV: {error}") from None


def sort_truth(truth_csv: Union[str, Path], n_events: int) -> pd.DataFrame:
    """One row per event 0..n_events−1 with the 2017 SortTruth columns (:data:`SORTED_COLUMNS`)."""
    truth_csv = Path(truth_csv)
    return sort_truth_frame(read_truth_csv(truth_csv), n_events, source=str(truth_csv))


def sort_truth_frame(truth: pd.DataFrame, n_events: int, source: str = "<truth>") -> pd.DataFrame:
    """:func:`sort_truth` on an already-read truth table (vectorised; no per-event loop)."""
    if n_events < 0:
        raise BadInputError(f"n_events must be ≥ 0, got {n_events}")
    event = truth["event"].to_numpy(dtype=np.float64)
    if len(event) and not (np.isfinite(event).all() and (event == np.floor(event)).all()):
        raise BadInputError(f"{source}: non-integer or missing values in column 'event'")
    event = event.astype(np.int64)
    outside = (event < 0) | (event >= n_events)
    if outside.any():
        bad = np.unique(event[outside])[:5].tolist()
        raise BadInputError(f"{source}: truth has events outside 0..{n_events - 1} (e.g. {bad}); "
                            f"wrong truth file or wrong event count")
    # normalised once per distinct spelling (a few), not per row
    spelling, spellings = pd.factorize(truth["peak_type"].fillna("").astype(str))
    peak_type = np.array([name.strip().lower() for name in spellings], dtype=object)[spelling]
    n = truth["n_photons"].to_numpy(dtype=np.float64)
    mean = truth["t_mean_photons"].to_numpy(dtype=np.float64)
    sigma = truth["t_sigma_photons"].to_numpy(dtype=np.float64)
    top = truth["top_fraction"].to_numpy(dtype=np.float64)
    x = truth["x"].to_numpy(dtype=np.float64)
    y = truth["y"].to_numpy(dtype=np.float64)

    out = {"event_number": np.arange(n_events, dtype=np.int64)}
    s1 = peak_type == "s1"
    s2 = peak_type == "s2"
    out.update(_aggregate("s1", event[s1], n[s1], mean[s1], sigma[s1], top[s1], None, None, n_events))
    out.update(_aggregate("s2", event[s2], n[s2], mean[s2], sigma[s2], top[s2], x[s2], y[s2], n_events))
    out.update(_largest_other(event, n, mean, sigma, top, ~(s1 | s2) & (peak_type != ""), n_events))
    return pd.DataFrame(out, columns=SORTED_COLUMNS)


def _aggregate(p: str, event, n, mean, sigma, top, x, y, n_events: int) -> dict:
    """Combine the rows of each event (see the module docstring); exact for single rows."""
    def total(values):
        return np.bincount(event, weights=values, minlength=n_events).astype(np.float64, copy=False)

    rows = np.bincount(event, minlength=n_events)
    single = rows == 1
    photons = total(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(photons > 0, 1.0 / np.where(photons > 0, photons, 1.0), np.nan)

        def weighted(values):
            # one row: the row's own value (a sum over one element is exact)
            return np.where(single, total(values), total(n * values) * inv)

        hit_mean = weighted(mean)
        spread = n * (sigma ** 2 + (mean - hit_mean[event]) ** 2)
        width = np.where(single, total(sigma), np.sqrt(total(spread) * inv))
        result = {p: photons, f"{p}_hit_time_mean": hit_mean, f"{p}_width": width,
                  f"{p}_area_fraction_top": weighted(top)}
        if x is not None:
            result["x"] = weighted(x)
            result["y"] = weighted(y)
    absent = rows == 0
    for values in result.values():
        values[absent] = np.nan
    return result


def _largest_other(event, n, mean, sigma, top, mask, n_events: int) -> dict:
    """other_s2*: the non-s1/s2 row with the most photons per event (first on ties)."""
    columns = {"other_s2": n, "other_s2_hit_time_mean": mean, "other_s2_width": sigma,
               "other_s2_area_fraction_top": top}
    result = {name: np.full(n_events, np.nan) for name in columns}
    index = np.flatnonzero(mask)
    if len(index):
        # sort by event, then photons descending, then file order; keep the first per event
        order = np.lexsort((index, -np.nan_to_num(n[index], nan=-np.inf), event[index]))
        chosen = index[order]
        first = np.ones(len(chosen), dtype=bool)
        first[1:] = event[chosen][1:] != event[chosen][:-1]
        chosen = chosen[first]
        for name, values in columns.items():
            result[name][event[chosen]] = values[chosen]
    return result


def merge_truth(minitrees: pd.DataFrame, sorted_truth: pd.DataFrame) -> pd.DataFrame:
    """Outer-join the minitrees with the ``truth_``-prefixed sorted truth on event_number.

    One ``event_number`` column (taken from the truth where the minitree lacks the event),
    sorted; events missing on either side get NaN in that side's columns. Both inputs must have
    unique event numbers (:class:`BadInputError` otherwise), so no row is ever duplicated.
    """
    for name, frame in (("minitrees", minitrees), ("sorted truth", sorted_truth)):
        if "event_number" not in frame.columns:
            raise BadInputError(f"{name} table has no event_number column (columns: {list(frame.columns)})")
        duplicated = frame["event_number"].duplicated()
        if duplicated.any():
            examples = frame.loc[duplicated, "event_number"].unique()[:5].tolist()
            raise BadInputError(f"{name} table has duplicate event_number values (e.g. {examples})")
        if frame["event_number"].isna().any():
            raise BadInputError(f"{name} table has missing event_number values")
    truth = sorted_truth.add_prefix(TRUTH_PREFIX)
    clash = sorted(set(truth.columns) & set(minitrees.columns))
    if clash:
        raise BadInputError(f"minitree columns {clash} clash with the prefixed truth columns")
    merged = minitrees.merge(truth, how="outer", left_on="event_number", right_on="truth_event_number", sort=False)
    key = merged["event_number"].fillna(merged["truth_event_number"])
    merged["event_number"] = key.astype(np.int64) if (key == np.floor(key)).all() else key
    merged = merged.drop(columns="truth_event_number")
    return merged.sort_values("event_number", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# file steps


def write_parquet(frame: pd.DataFrame, path: Union[str, Path]) -> Path:
    """Deterministic Parquet: no pandas index, no pandas/schema metadata, no timestamps."""
    return _write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _write_table(table: pa.Table, path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(None), path, compression="snappy")
    return path


def sort_truth_file(truth_csv: Union[str, Path], n_events: int, out_parquet: Union[str, Path]) -> StepCounts:
    """SortTruth as a step: events_in = n_events (simulated events), events_out = rows written."""
    frame = sort_truth(truth_csv, n_events)
    write_parquet(frame, out_parquet)
    return StepCounts(events_in=int(n_events), events_out=len(frame))


def merge_truth_files(minitrees_parquet: Union[str, Path], sorted_truth_parquet: Union[str, Path],
                      out_parquet: Union[str, Path]) -> StepCounts:
    """MergeTruth as a step.

    events_in = rows of the sorted truth (one per simulated event); events_out = merged rows.
    They differ only if the minitrees hold events the simulation never made, which the
    pipeline then reports as a validation failure.
    """
    minitrees = _read_table(minitrees_parquet, "minitree table")
    truth = _read_table(sorted_truth_parquet, "sorted truth")
    merged = _merged_same_events(minitrees, truth)
    if merged is None:
        merged = pa.Table.from_pandas(merge_truth(minitrees.to_pandas(), truth.to_pandas()), preserve_index=False)
    _write_table(merged, out_parquet)
    return StepCounts(events_in=truth.num_rows, events_out=merged.num_rows)


def _merged_same_events(minitrees: pa.Table, truth: pa.Table) -> pa.Table | None:
    """:func:`merge_truth` of two tables of int64 and float64 columns holding the same unique int64 event
    numbers (the usual case), without pandas; None for any other input (merge_truth then joins them, or
    says what is wrong). NaN is written as null, as pyarrow writes a pandas table."""
    keys = []
    for table in (minitrees, truth):
        if "event_number" not in table.column_names or table.schema.field("event_number").type != pa.int64():
            return None
        if any(kind not in (pa.int64(), pa.float64()) for kind in table.schema.types):
            return None
        column = table.column("event_number")
        if column.null_count:
            return None
        keys.append(column.to_numpy())
    orders = [np.argsort(key, kind="stable") for key in keys]
    sorted_keys = [key[order] for key, order in zip(keys, orders)]
    if not np.array_equal(sorted_keys[0], sorted_keys[1]) or (np.diff(sorted_keys[0]) == 0).any():
        return None
    truth_names = [TRUTH_PREFIX + name for name in truth.column_names if name != "event_number"]
    if set(truth_names) & set(minitrees.column_names):
        return None
    left = minitrees.take(orders[0])
    right = truth.drop_columns(["event_number"]).take(orders[1]).rename_columns(truth_names)
    columns = [_nan_as_null(column) for column in left.columns + right.columns]
    return pa.table(columns, names=left.column_names + truth_names)


def _nan_as_null(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if column.type != pa.float64() or not pc.any(pc.is_nan(column)).as_py():
        return column
    return pc.if_else(pc.is_nan(column), pa.scalar(None, pa.float64()), column)


def _read_table(path: Union[str, Path], what: str) -> pa.Table:
    path = Path(path)
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise BadInputError(f"{path}: {what} not found") from None
    except (OSError, pa.ArrowException) as error:
        raise BadInputError(f"{path}: cannot read {what} as Parquet: {error}") from None
