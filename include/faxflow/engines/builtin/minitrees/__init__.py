"""The minitrees step: one row per event with hax's Fundamentals, Basics, Extended and Corrections columns.

Every processed event keeps its row; the S1/S2 columns, Extended and Corrections are NaN when the
event has no interaction, like hax. ``largest_other_s1/s2`` and ``largest_unknown`` are 0 when no such
peak exists; ``largest_veto`` and ``largest_coincidence`` are always 0 (no veto channels are
simulated, and pax no longer makes ``coincidence`` peaks).

Fundamentals: MC has no clock, so ``event_time`` = event_number × ``EVENT_SPACING_NS`` (a fixed
10 ms spacing, longer than any event) keeps outputs reproducible; ``event_duration`` is the event
window length in ns.

Extended columns not computed, and why:

- ``s1_pattern_fit``, ``s1_area_fraction_top_probability``: need a per-PMT S1 pattern / pax's
  continuous binomial with a hit-count blend; the simulator's S1 light model has no per-PMT map.
- ``x_nn``, ``y_nn``, ``x_tpff``, ``y_tpff``: there is no neural-net and no separate function-fit
  position reconstruction, only the pattern fit (``x_pax``/``x_observed``).

Extended column hax does not have: ``s2_time_std``, the main S2's sum-waveform time standard deviation
(``time_std`` of the processing's peak properties), from which the report fits the diffusion constant
when no delayed light is simulated (with it, from ``s2_rise_time``: docs/physics.md "Diffusion fit
with delayed light").

``r_pos_correction`` and ``z_pos_correction`` are 0, as in pax HEAD, which does not apply the
field-distortion correction to the interaction; the Corrections group carries the FDC-corrected
``x``, ``y``, ``r`` and ``r_correction`` instead.

The Parquet key-value metadata ``faxflow.minitrees`` maps each treemaker to its columns.
"""

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faxflow.engines import StepCounts
from faxflow.engines.builtin.parameters import ProcessingParameters
from faxflow.engines.builtin.processing.calibration import Calibration
from faxflow.engines.builtin.processing.classification import PEAK_TYPES, S1, S2, UNKNOWN
from faxflow.engines.builtin.processing.corrections import corrections
from faxflow.engines.builtin.processing.interactions import depth_z_cm, drift_time_ns
from faxflow.engines.builtin.processing.process import Processed, read_processed_columns

EVENT_SPACING_NS = 10_000_000
METADATA_KEY = b"faxflow.minitrees"


class _Peaks:
    """Column lookups of peak rows by (event position, per-event peak index)."""

    def __init__(self, events: Mapping[str, np.ndarray], peaks: Mapping[str, np.ndarray]):
        self.table = peaks
        self.event_numbers = np.asarray(events["event_number"])
        peak_events = np.asarray(peaks["event_number"])
        self.first_row = np.searchsorted(peak_events, self.event_numbers)
        self.event_pos = np.searchsorted(self.event_numbers, peak_events)

    def rows(self, peak_index: np.ndarray) -> np.ndarray:
        """Row numbers of per-event peak indices (−1 stays −1)."""
        return np.where(peak_index >= 0, self.first_row + peak_index, -1)

    def take(self, column: str, rows: np.ndarray) -> np.ndarray:
        values = np.asarray(self.table[column], dtype=float)
        out = np.full(len(rows), np.nan)
        out[rows >= 0] = values[rows[rows >= 0]]
        return out

    def largest(self, mask: np.ndarray) -> np.ndarray:
        """Per event, the row of the largest-area peak in ``mask`` (−1 if none)."""
        candidates = np.flatnonzero(mask)
        candidates = candidates[np.lexsort((-np.asarray(self.table["area"])[candidates], self.event_pos[candidates]))]
        events, first = np.unique(self.event_pos[candidates], return_index=True)
        out = np.full(len(self.event_numbers), -1)
        out[events] = candidates[first]
        return out


def build_minitrees(processed: Processed, processing: ProcessingParameters) -> pd.DataFrame:
    """The per-event minitree table, columns grouped Fundamentals, Basics, Extended, Corrections."""
    events = {name: processed.events[name].to_numpy() for name in processed.events.columns}
    peaks = {name: processed.peaks[name].to_numpy() for name in processed.peaks.columns}
    groups = _treemakers(events, peaks, processed.sample_duration_ns, processing)
    return pd.DataFrame({name: values for group in groups.values() for name, values in group.items()})


def build_minitrees_file(processed: Path, minitrees_out: Path, processing: ProcessingParameters) -> StepCounts:
    """Read a processed file and write the minitree Parquet file (treemaker groups in its metadata)."""
    events, peaks, sample_duration_ns = read_processed_columns(Path(processed))
    groups = _treemakers(events, peaks, sample_duration_ns, processing)
    # NaN is written as null, as pyarrow writes a pandas table
    table = pa.table({name: pa.array(values, from_pandas=True) for group in groups.values()
                      for name, values in group.items()})
    metadata = {"treemakers": {name: list(group) for name, group in groups.items()}}
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()}), minitrees_out,
                   compression="lz4", use_dictionary=False)
    return StepCounts(events_in=len(events["event_number"]), events_out=table.num_rows)


def _treemakers(events: Mapping[str, np.ndarray], table: Mapping[str, np.ndarray], sample_duration_ns: float,
                processing: ProcessingParameters) -> dict[str, dict[str, np.ndarray]]:
    """The treemaker groups of processed event and peak columns (as :func:`read_processed_columns` gives them)."""
    calibration = Calibration.of(processing)
    dt = sample_duration_ns
    n_events = len(events["event_number"])
    peaks = _Peaks(events, table)
    kind = pc.index_in(pa.array(table["type"], pa.string()), value_set=pa.array(PEAK_TYPES))
    kind = kind.to_numpy(zero_copy_only=False)
    main_s1, main_s2, alt_s1, alt_s2 = (peaks.rows(np.asarray(events[name]))
                                        for name in ("main_s1", "main_s2", "alt_s1", "alt_s2"))
    has_interaction = main_s2 >= 0

    fundamentals = {"run_number": np.full(n_events, processing.run_number, np.int64),
                    "event_number": events["event_number"],
                    "event_time": events["event_number"] * EVENT_SPACING_NS,
                    "event_duration": events["event_duration_ns"]}

    basics = {}
    for name, column in (("", "area"), ("_area_fraction_top", "area_fraction_top"),
                         ("_range_50p_area", "range_area_decile_5")):
        basics[f"s1{name}"] = peaks.take(column, main_s1)
        basics[f"s2{name}"] = peaks.take(column, main_s2)
    basics["x_pax"], basics["y_pax"] = events["x"], events["y"]
    basics["z"], basics["drift_time"] = events["z"], events["drift_time"]
    row = np.arange(len(table["type"]))
    not_main = (row != main_s1[peaks.event_pos]) & (row != main_s2[peaks.event_pos])
    other_s2 = peaks.largest((kind == S2) & not_main)
    for name, mask in (("largest_other_s1", (kind == S1) & not_main), ("largest_other_s2", None),
                       ("largest_unknown", kind == UNKNOWN)):
        largest_row = other_s2 if mask is None else peaks.largest(mask)
        basics[name] = np.nan_to_num(peaks.take("area", largest_row), nan=0.0)
    basics["largest_veto"] = np.zeros(n_events)
    basics["largest_coincidence"] = np.zeros(n_events)

    # Extended
    extended = {}
    for prefix, rows in (("s1", main_s1), ("s2", main_s2)):
        for decile in ((8, 9, 10) if prefix == "s1" else (8,)):
            extended[f"{prefix}_range_{decile}0p_area"] = peaks.take(f"range_area_decile_{decile}", rows)
        for name in ("n_contributing_channels", "largest_hit_area", "largest_hit_channel"):
            extended[f"{prefix}_{name}"] = peaks.take(name, rows)
        extended[f"{prefix}_rise_time"] = -peaks.take("area_decile_from_midpoint_1", rows)
    extended["s1_tight_coincidence"] = peaks.take("tight_coincidence", main_s1)
    extended["s2_time_std"] = peaks.take("time_std", main_s2)
    extended["s2_pattern_fit"] = peaks.take("tpf_goodness_of_fit", main_s2)
    extended["r_pos_correction"] = np.zeros(n_events)
    extended["z_pos_correction"] = np.zeros(n_events)
    main_s2_left = peaks.take("left", main_s2)[peaks.event_pos]
    s1_before = (kind == S1) & (table["left"] < main_s2_left)
    extended["sum_s1s_before_main_s2"] = np.bincount(peaks.event_pos[s1_before], minlength=n_events,
                                                     weights=table["area"][s1_before])
    main_s1_imax, main_s2_imax = peaks.take("index_of_maximum", main_s1), peaks.take("index_of_maximum", main_s2)
    alt_s1_drift = drift_time_ns(peaks.take("index_of_maximum", alt_s1), main_s2_imax, dt)
    extended["alt_s1_interaction_drift_time"] = alt_s1_drift
    extended["alt_s1_interaction_z"] = depth_z_cm(alt_s1_drift, calibration)
    extended["alt_s1_tight_coincidence"] = peaks.take("tight_coincidence", alt_s1)
    extended["alt_s2_interaction_x"] = peaks.take("x", alt_s2)
    extended["alt_s2_interaction_y"] = peaks.take("y", alt_s2)
    alt_s2_drift = drift_time_ns(main_s1_imax, peaks.take("index_of_maximum", alt_s2), dt)
    extended["alt_s2_interaction_z"] = depth_z_cm(alt_s2_drift, calibration)
    extended["alt_s2_interaction_s2_range_50p_area"] = peaks.take("range_area_decile_5", alt_s2)
    extended["alt_s2_interaction_s2_range_80p_area"] = peaks.take("range_area_decile_8", alt_s2)
    other_s2_time = peaks.take("hit_time_mean", other_s2)
    extended["largest_other_s2_delay_main_s1"] = other_s2_time - peaks.take("hit_time_mean", main_s1)
    extended["largest_other_s2_delay_main_s2"] = other_s2_time - peaks.take("hit_time_mean", main_s2)
    extended["largest_other_s2_pattern_fit"] = peaks.take("tpf_goodness_of_fit", other_s2)
    main_s2_time = peaks.take("hit_time_mean", main_s2)[peaks.event_pos]
    s2_before = peaks.largest((kind == S2) & (table["hit_time_mean"] < main_s2_time))
    extended["largest_s2_before_main_s2_area"] = np.nan_to_num(peaks.take("area", s2_before), nan=0.0)

    correction_columns = corrections(basics["s1"], basics["s2"], basics["s2_area_fraction_top"], basics["x_pax"],
                                     basics["y_pax"], basics["z"], basics["drift_time"], calibration)
    return {"Fundamentals": fundamentals, "Basics": basics,
            "Extended": {name: np.where(has_interaction, values, np.nan) for name, values in extended.items()},
            "Corrections": correction_columns}
