"""The processing step: raw ZLE data → peaks, their positions and the interactions of each event.

Chain: hit finding (:mod:`.hits`) → clustering and natural-breaks splitting (:mod:`.peaks`) → peak
properties (:mod:`.peak_properties`) → classification (:mod:`.classification`) → S2 pattern fit
(:mod:`.posrec`) → interactions (:mod:`.interactions`).

Processed file: ONE Parquet table holding two kinds of rows, told apart by ``row_type``:

- ``"event"`` rows, one per raw event (also events without any hit): ``event_number``,
  ``event_duration_ns``, ``n_pulses``, ``n_hits``, ``n_lone_hits``, ``n_peaks``; the main/alternative
  interaction peaks ``main_s1``, ``main_s2``, ``alt_s1``, ``alt_s2`` (``peak_index`` of the event's
  peak rows, −1 if none); and the main interaction's ``drift_time`` (ns), ``x``, ``y``, ``z`` (cm,
  NaN without an interaction).
- ``"peak"`` rows, one per peak except lone hits (counted in ``n_lone_hits``): ``event_number``,
  ``peak_index`` (0.. within the event, peaks sorted by ``left``), ``type`` (s1/s2/unknown) and the
  columns of :mod:`.peak_properties`, plus ``x_tpf``, ``y_tpf``, ``tpf_goodness_of_fit`` (pattern
  fit; only for S2s that can pair: the ``pair_n_s2s`` largest of each event with area ≥
  ``s2_pairing_threshold_pe``, NaN otherwise) and the preferred
  ``x``, ``y`` (pattern fit, else weighted sum).

Columns of the other row type are null. Key-value metadata ``faxflow.processed`` holds the format
version, the sample duration and the processing parameters (JSON).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faxflow.engines import StepCounts
from faxflow.engines.builtin import detector
from faxflow.engines.builtin.classification import LONE_HIT, PEAK_TYPES, S2, classify
from faxflow.engines.builtin.hits import find_hits
from faxflow.engines.builtin.interactions import depth_z_cm, drift_time_ns, find_interactions
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.peak_properties import peak_properties
from faxflow.engines.builtin.peaks import cluster_hits
from faxflow.engines.builtin.posrec import pattern_fit, top_area_per_channel
from faxflow.engines.builtin.rawio import RawData, read_raw
from faxflow.errors import BadInputError

FORMAT_VERSION = 1
METADATA_KEY = b"faxflow.processed"
INTERACTION_PEAKS = ("main_s1", "main_s2", "alt_s1", "alt_s2")
CHUNK_EVENTS = 500  # bounds the memory of hits and peaks for large files


@dataclass(frozen=True)
class Processed:
    """Processed events: one row per raw event, one row per (non lone-hit) peak."""

    events: pd.DataFrame
    peaks: pd.DataFrame
    sample_duration_ns: float


def process(raw: RawData, physics: PhysicsParameters, processing: ProcessingParameters) -> Processed:
    """Process raw data in memory, ``CHUNK_EVENTS`` events at a time."""
    if raw.n_events <= CHUNK_EVENTS:
        return _process_chunk(raw, physics, processing)
    parts = [_process_chunk(_event_slice(raw, start, min(start + CHUNK_EVENTS, raw.n_events)), physics, processing)
             for start in range(0, raw.n_events, CHUNK_EVENTS)]
    return Processed(events=pd.concat([part.events for part in parts], ignore_index=True),
                     peaks=pd.concat([part.peaks for part in parts], ignore_index=True),
                     sample_duration_ns=raw.sample_duration_ns)


def _event_slice(raw: RawData, first: int, stop: int) -> RawData:
    """Events first..stop-1 of ``raw``; the samples are a view."""
    p0 = raw.event_first_pulse[first]
    p1 = raw.event_first_pulse[stop - 1] + raw.event_n_pulses[stop - 1]
    offsets, lengths = raw.pulse_offset[p0:p1], raw.pulse_length[p0:p1]
    s0 = offsets.min() if p1 > p0 else 0
    s1 = (offsets + lengths).max() if p1 > p0 else 0
    return RawData(sample_duration_ns=raw.sample_duration_ns, baseline_adc=raw.baseline_adc,
                   event_number=raw.event_number[first:stop], event_length_samples=raw.event_length_samples[first:stop],
                   event_first_pulse=raw.event_first_pulse[first:stop] - p0,
                   event_n_pulses=raw.event_n_pulses[first:stop],
                   pulse_channel=raw.pulse_channel[p0:p1], pulse_left=raw.pulse_left[p0:p1], pulse_length=lengths,
                   pulse_offset=offsets - s0, samples=raw.samples[s0:s1], format_version=raw.format_version)


def _process_chunk(raw: RawData, physics: PhysicsParameters, processing: ProcessingParameters) -> Processed:
    dt = raw.sample_duration_ns
    n_events = raw.n_events
    to_pe = detector.adc_to_pe(physics)
    pulse_event = np.repeat(np.arange(n_events), raw.event_n_pulses)
    hits = find_hits(raw.samples, pulse_event, raw.pulse_channel, raw.pulse_left, raw.pulse_length,
                     raw.pulse_offset, to_pe, processing, dt)
    clusters = cluster_hits(hits, n_events, raw.samples, to_pe, processing, dt)
    props = peak_properties(clusters, hits, raw.samples, to_pe, detector.pmt_positions(),
                            len(detector.TOP_CHANNELS), processing.tight_coincidence_window_ns, dt)
    kind = classify(-props["area_decile_from_midpoint_1"], props["range_area_decile_9"],
                    props["tight_coincidence"], props["n_contributing_channels"], processing)

    lone = kind == LONE_HIT
    keep = np.flatnonzero(~lone)
    keep = keep[np.lexsort((props["left"][keep], clusters.event[keep]))]
    event_of_peak = clusters.event[keep]
    event_bounds = np.searchsorted(event_of_peak, np.arange(n_events + 1))
    peak_index = np.arange(len(keep)) - event_bounds[event_of_peak]

    peaks = pd.DataFrame({"event_number": raw.event_number[event_of_peak], "peak_index": peak_index,
                          "type": np.asarray(PEAK_TYPES)[kind[keep]]})
    for name, values in props.items():
        peaks[name] = values[keep]
    _add_positions(peaks, kind[keep], event_of_peak, keep, clusters, hits, physics, processing)

    pairs = find_interactions(event_bounds, kind[keep], peaks["area"].to_numpy(),
                              peaks["tight_coincidence"].to_numpy(), peaks["index_of_maximum"].to_numpy(),
                              processing)
    events = pd.DataFrame({
        "event_number": raw.event_number,
        "event_duration_ns": (raw.event_length_samples * dt).astype(np.int64),
        "n_pulses": raw.event_n_pulses,
        "n_hits": np.bincount(hits.event, minlength=n_events),
        "n_lone_hits": np.bincount(clusters.event[lone], minlength=n_events),
        "n_peaks": np.diff(event_bounds),
    })
    for name in INTERACTION_PEAKS:
        events[name] = np.where(pairs[name] >= 0, pairs[name] - event_bounds[:-1], -1)
    has_pair = pairs["main_s2"] >= 0
    s1, s2 = pairs["main_s1"][has_pair], pairs["main_s2"][has_pair]
    drift = np.full(n_events, np.nan)
    drift[has_pair] = drift_time_ns(peaks["index_of_maximum"].to_numpy()[s1],
                                    peaks["index_of_maximum"].to_numpy()[s2], dt)
    events["drift_time"] = drift
    for axis in ("x", "y"):
        events[axis] = np.nan
        events.loc[has_pair, axis] = peaks[axis].to_numpy()[s2]
    events["z"] = depth_z_cm(drift, processing)
    return Processed(events=events, peaks=peaks, sample_duration_ns=dt)


def _add_positions(peaks, kind, event_of_peak, keep, clusters, hits, physics, processing) -> None:
    """Pattern-fit the S2s that can be main or alternative S2s (the ``pair_n_s2s`` largest per event
    with area ≥ ``s2_pairing_threshold_pe``); set the preferred x, y columns."""
    s2 = np.flatnonzero((kind == S2) & (peaks["area"].to_numpy() >= processing.s2_pairing_threshold_pe))
    s2 = s2[np.lexsort((-peaks["area"].to_numpy()[s2], event_of_peak[s2]))]
    s2_events = event_of_peak[s2]
    rank = np.arange(len(s2)) - np.searchsorted(s2_events, s2_events)
    fit = s2[rank < processing.pair_n_s2s]
    top_area = top_area_per_channel(clusters.order, clusters.bounds, keep[fit], hits.channel, hits.area_pe,
                                    len(detector.TOP_CHANNELS))
    x_fit, y_fit, gof = pattern_fit(top_area, physics)
    for name, values in (("x_tpf", x_fit), ("y_tpf", y_fit), ("tpf_goodness_of_fit", gof)):
        column = np.full(len(peaks), np.nan)
        column[fit] = values
        peaks[name] = column
    fitted = np.isfinite(peaks["x_tpf"].to_numpy())
    peaks["x"] = np.where(fitted, peaks["x_tpf"], peaks["x_weighted_sum"])
    peaks["y"] = np.where(fitted, peaks["y_tpf"], peaks["y_weighted_sum"])


def process_file(raw: Path, processed_out: Path, physics: PhysicsParameters,
                 processing: ProcessingParameters) -> StepCounts:
    """Read a raw-data file, process it and write the Parquet file described in the module docstring."""
    data = read_raw(Path(raw))
    result = process(data, physics, processing)
    write_processed(Path(processed_out), result, processing)
    return StepCounts(events_in=data.n_events, events_out=len(result.events))


def write_processed(path: Path, result: Processed, processing: ProcessingParameters) -> None:
    events = pa.Table.from_pandas(result.events, preserve_index=False)
    peaks = pa.Table.from_pandas(result.peaks, preserve_index=False)
    events = events.append_column("row_type", pa.array(["event"] * len(events), pa.string()))
    peaks = peaks.append_column("row_type", pa.array(["peak"] * len(peaks), pa.string()))
    table = pa.concat_tables([events, peaks], promote_options="default")
    metadata = {"format_version": FORMAT_VERSION, "sample_duration_ns": result.sample_duration_ns,
                "event_columns": events.column_names, "peak_columns": peaks.column_names,
                "processing": processing.model_dump(mode="json")}
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
    pq.write_table(table, path)


def read_processed(path: Path) -> Processed:
    """Read a processed Parquet file back; BadInputError if it is missing or not one of ours."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError as error:
        raise BadInputError(f"{path}: processed file does not exist") from error
    except (OSError, pa.ArrowException) as error:
        raise BadInputError(f"{path}: unreadable processed file (truncated or corrupt): {error}") from error
    raw_metadata = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw_metadata is None:
        raise BadInputError(f"{path}: not a faxflow processed file (no {METADATA_KEY.decode()} metadata)")
    metadata = json.loads(raw_metadata)
    if metadata.get("format_version") != FORMAT_VERSION:
        raise BadInputError(f"{path}: processed format {metadata.get('format_version')}, expected {FORMAT_VERSION}")
    row_type = table.column("row_type")
    frames = {}
    for kind in ("event", "peak"):
        rows = table.filter(pc.equal(row_type, kind))
        frames[kind] = rows.select([c for c in metadata[f"{kind}_columns"] if c != "row_type"]).to_pandas()
    return Processed(events=frames["event"], peaks=frames["peak"],
                     sample_duration_ns=float(metadata["sample_duration_ns"]))
