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
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from faxflow.engines import StepCounts
from faxflow.engines.builtin.parameters import ProcessingParameters
from faxflow.engines.builtin.processing.calibration import Calibration
from faxflow.engines.builtin.processing.corrections import corrections
from faxflow.engines.builtin.processing.interactions import depth_z_cm, drift_time_ns
from faxflow.engines.builtin.processing.process import Processed, read_processed

EVENT_SPACING_NS = 10_000_000
METADATA_KEY = b"faxflow.minitrees"


class _Peaks:
    """Column lookups of peak rows by (event position, per-event peak index)."""

    def __init__(self, processed: Processed):
        self.table = processed.peaks
        self.event_numbers = processed.events["event_number"].to_numpy()
        peak_events = self.table["event_number"].to_numpy()
        self.first_row = np.searchsorted(peak_events, self.event_numbers)
        self.event_pos = np.searchsorted(self.event_numbers, peak_events)

    def rows(self, peak_index: np.ndarray) -> np.ndarray:
        """Row numbers of per-event peak indices (−1 stays −1)."""
        return np.where(peak_index >= 0, self.first_row + peak_index, -1)

    def take(self, column: str, rows: np.ndarray) -> np.ndarray:
        values = self.table[column].to_numpy(dtype=float)
        out = np.full(len(rows), np.nan)
        out[rows >= 0] = values[rows[rows >= 0]]
        return out

    def largest(self, mask: np.ndarray) -> np.ndarray:
        """Per event, the row of the largest-area peak in ``mask`` (−1 if none)."""
        candidates = np.flatnonzero(mask)
        candidates = candidates[np.lexsort((-self.table["area"].to_numpy()[candidates], self.event_pos[candidates]))]
        events, first = np.unique(self.event_pos[candidates], return_index=True)
        out = np.full(len(self.event_numbers), -1)
        out[events] = candidates[first]
        return out


def build_minitrees(processed: Processed, processing: ProcessingParameters) -> pd.DataFrame:
    """The per-event minitree table, columns grouped Fundamentals, Basics, Extended, Corrections."""
    return _frame(_treemakers(processed, processing))


def _frame(groups: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    return pd.DataFrame({name: values for group in groups.values() for name, values in group.items()})


def build_minitrees_file(processed: Path, minitrees_out: Path, processing: ProcessingParameters) -> StepCounts:
    """Read a processed file and write the minitree Parquet file (treemaker groups in its metadata)."""
    data = read_processed(Path(processed))
    groups = _treemakers(data, processing)
    frame = _frame(groups)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {"treemakers": {name: list(group) for name, group in groups.items()}}
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()}), minitrees_out,
                   compression="lz4", use_dictionary=False)
    return StepCounts(events_in=len(data.events), events_out=len(frame))


def _treemakers(processed: Processed, processing: ProcessingParameters) -> dict[str, dict[str, np.ndarray]]:
    calibration = Calibration.of(processing)
    events = processed.events
    dt = processed.sample_duration_ns
    peaks = _Peaks(processed)
    table = peaks.table
    kind = table["type"].to_numpy()
    main_s1, main_s2, alt_s1, alt_s2 = (peaks.rows(events[name].to_numpy())
                                        for name in ("main_s1", "main_s2", "alt_s1", "alt_s2"))
    has_interaction = main_s2 >= 0

    fundamentals = {"run_number": np.full(len(events), processing.run_number, np.int64),
                    "event_number": events["event_number"].to_numpy(),
                    "event_time": events["event_number"].to_numpy() * EVENT_SPACING_NS,
                    "event_duration": events["event_duration_ns"].to_numpy()}

    basics = {}
    for name, column in (("", "area"), ("_area_fraction_top", "area_fraction_top"),
                         ("_range_50p_area", "range_area_decile_5")):
        basics[f"s1{name}"] = peaks.take(column, main_s1)
        basics[f"s2{name}"] = peaks.take(column, main_s2)
    basics["x_pax"], basics["y_pax"] = events["x"].to_numpy(), events["y"].to_numpy()
    basics["z"], basics["drift_time"] = events["z"].to_numpy(), events["drift_time"].to_numpy()
    row = np.arange(len(table))
    not_main = (row != main_s1[peaks.event_pos]) & (row != main_s2[peaks.event_pos])
    other_s2 = peaks.largest((kind == "s2") & not_main)
    for name, mask in (("largest_other_s1", (kind == "s1") & not_main), ("largest_other_s2", None),
                       ("largest_unknown", kind == "unknown")):
        largest_row = other_s2 if mask is None else peaks.largest(mask)
        basics[name] = np.nan_to_num(peaks.take("area", largest_row), nan=0.0)
    basics["largest_veto"] = np.zeros(len(events))
    basics["largest_coincidence"] = np.zeros(len(events))

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
    extended["r_pos_correction"] = np.zeros(len(events))
    extended["z_pos_correction"] = np.zeros(len(events))
    main_s2_left = peaks.take("left", main_s2)[peaks.event_pos]
    s1_before = (kind == "s1") & (table["left"].to_numpy() < main_s2_left)
    extended["sum_s1s_before_main_s2"] = np.bincount(peaks.event_pos[s1_before], minlength=len(events),
                                                     weights=table["area"].to_numpy()[s1_before])
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
    s2_before = peaks.largest((kind == "s2") & (table["hit_time_mean"].to_numpy() < main_s2_time))
    extended["largest_s2_before_main_s2_area"] = np.nan_to_num(peaks.take("area", s2_before), nan=0.0)

    correction_columns = corrections(basics["s1"], basics["s2"], basics["s2_area_fraction_top"], basics["x_pax"],
                                     basics["y_pax"], basics["z"], basics["drift_time"], calibration)
    return {"Fundamentals": fundamentals, "Basics": basics,
            "Extended": {name: np.where(has_interaction, values, np.nan) for name, values in extended.items()},
            "Corrections": correction_columns}
