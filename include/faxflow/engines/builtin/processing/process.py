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

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faxflow.engines import StepCounts
from faxflow.engines.builtin import BATCH_EVENTS, detector
from faxflow.engines.builtin.parameters import ProcessingParameters
from faxflow.engines.builtin.processing.calibration import Calibration
from faxflow.engines.builtin.processing.classification import LONE_HIT, PEAK_TYPES, S2, classify, s1_pairing_rank
from faxflow.engines.builtin.processing.hits import find_hits
from faxflow.engines.builtin.processing.interactions import depth_z_cm, drift_time_ns, find_interactions
from faxflow.engines.builtin.processing.peak_properties import N_SCALARS, property_arrays, property_columns
from faxflow.engines.builtin.processing.peaks import Clusters, cluster_hits
from faxflow.engines.builtin.processing.posrec import pattern_fit, top_area_per_channel
from faxflow.engines.builtin.processing.sumwaveform import N_QUANTILES
from faxflow.engines.builtin.rawio import RawData, read_raw
from faxflow.errors import BadInputError

FORMAT_VERSION = 1
METADATA_KEY = b"faxflow.processed"
INTERACTION_PEAKS = ("main_s1", "main_s2", "alt_s1", "alt_s2")
CHUNK_EVENTS = BATCH_EVENTS  # bounds the memory of hits and peaks for large files
# Hit finding, clustering and peak properties run on blocks of events of about this many raw
# samples (int16), so the samples stay in the CPU cache from hit finding to the sum waveforms.
BLOCK_SAMPLES = 1 << 18
# Measured on 1000 SR1 events: lz4 with dictionaries only for the string columns writes ~2x faster
# than the pyarrow default (snappy, dictionaries everywhere) and gives a smaller file.
PARQUET_OPTIONS = {"compression": "lz4", "use_dictionary": ["type", "row_type"]}


@dataclass(frozen=True)
class Processed:
    """Processed events: one row per raw event, one row per (non lone-hit) peak."""

    events: pd.DataFrame
    peaks: pd.DataFrame
    sample_duration_ns: float


def process(raw: RawData, processing: ProcessingParameters) -> Processed:
    """Process raw data in memory, ``CHUNK_EVENTS`` events at a time."""
    events, peaks = _process_columns(raw, processing)
    return Processed(events=pd.DataFrame(events), peaks=pd.DataFrame(peaks), sample_duration_ns=raw.sample_duration_ns)


def _process_columns(raw: RawData,
                     processing: ProcessingParameters) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(event columns, peak columns) of the whole file, as numpy arrays (peak ``type`` as str objects).

    Samples that are not an array (a file's lazily decoded frames) are sliced chunk by chunk too."""
    calibration = Calibration.of(processing)
    chunked = raw.n_events > CHUNK_EVENTS or not isinstance(raw.samples, np.ndarray)
    parts = [_process_chunk(_event_slice(raw, start, min(start + CHUNK_EVENTS, raw.n_events)), calibration,
                            processing)
             for start in range(0, raw.n_events, CHUNK_EVENTS)] if chunked else \
        [_process_chunk(raw, calibration, processing)]
    if not parts:  # no events, nothing to decode
        parts = [_process_chunk(dataclasses.replace(raw, samples=raw.samples[0:0]), calibration, processing)]
    return _joined(parts)


def _joined(parts: list[tuple[dict, dict]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(event columns, peak columns) of consecutive parts, each as :func:`_process_chunk` returns them."""
    if len(parts) == 1:
        return parts[0]
    return tuple({name: np.concatenate([part[k][name] for part in parts]) for name in parts[0][k]} for k in (0, 1))


def _event_slice(raw: RawData, first: int, stop: int) -> RawData:
    """Events first..stop-1 of ``raw``; the samples are a view (or, from a file, just their frames decoded)."""
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


def _find_peaks(raw: RawData, to_pe: np.ndarray, processing: ProcessingParameters):
    """(channel and area of every hit, hits per event, clusters, peak property columns) of all events,
    computed block by block (see BLOCK_SAMPLES)."""
    dt = raw.sample_duration_ns
    n_events = raw.n_events
    pulse_event = np.repeat(np.arange(n_events), raw.event_n_pulses)
    pulse_channel, pulse_left, pulse_length, pulse_offset = (
        np.asarray(values, np.int64) for values in (raw.pulse_channel, raw.pulse_left, raw.pulse_length,
                                                    raw.pulse_offset))
    pulse_end = np.concatenate([[0], np.cumsum(pulse_length)])
    event_end_samples = pulse_end[raw.event_first_pulse + raw.event_n_pulses]
    block_starts = np.arange(BLOCK_SAMPLES, event_end_samples[-1] if n_events else 0, BLOCK_SAMPLES)
    edges = np.unique(np.concatenate([[0], np.searchsorted(event_end_samples, block_starts, side="right"),
                                      [n_events]]))
    pmt_xy = detector.pmt_positions()
    n_top = len(detector.TOP_CHANNELS)
    channel, area, n_hits = [], [], []
    order, bounds, event, scalars, quantiles = [], [np.zeros(1, np.int64)], [], [], []
    n_found = 0
    n_ordered = 0
    for e0, e1 in zip(edges[:-1], edges[1:]):
        p0 = raw.event_first_pulse[e0]
        p1 = raw.event_first_pulse[e1 - 1] + raw.event_n_pulses[e1 - 1]
        hits = find_hits(raw.samples, pulse_event[p0:p1], pulse_channel[p0:p1], pulse_left[p0:p1],
                         pulse_length[p0:p1], pulse_offset[p0:p1], to_pe, processing, dt)
        clusters = cluster_hits(hits, e1 - e0, raw.samples, to_pe, processing, dt, first_event=e0)
        block_scalars, block_quantiles = property_arrays(clusters, hits, raw.samples, to_pe, pmt_xy, n_top,
                                                         processing.tight_coincidence_window_ns, dt)
        channel.append(hits.channel)
        area.append(hits.area_pe)
        n_hits.append(np.bincount(hits.event - e0, minlength=e1 - e0))
        order.append(clusters.order + n_found)
        bounds.append(clusters.bounds[1:] + n_ordered)
        event.append(clusters.event + e0)
        scalars.append(block_scalars)
        quantiles.append(block_quantiles)
        n_found += len(hits)
        n_ordered += len(clusters.order)
    clusters = Clusters(order=np.concatenate(order) if order else np.zeros(0, np.int64),
                        bounds=np.concatenate(bounds), event=np.concatenate(event) if event else np.zeros(0, np.int64))
    if scalars:
        props = property_columns(np.concatenate(scalars, axis=1), np.concatenate(quantiles, axis=1))
        hit_columns = np.concatenate(channel), np.concatenate(area), np.concatenate(n_hits).astype(np.int64)
    else:
        props = property_columns(np.zeros((N_SCALARS, 0)), np.zeros((N_QUANTILES, 0)))
        hit_columns = np.zeros(0, np.int16), np.zeros(0), np.zeros(n_events, np.int64)
    return *hit_columns, clusters, props


def _process_chunk(raw: RawData, calibration: Calibration,
                   processing: ProcessingParameters) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    dt = raw.sample_duration_ns
    n_events = raw.n_events
    to_pe = calibration.adc_to_pe(dt)
    hit_channel, hit_area_pe, n_hits, clusters, props = _find_peaks(raw, to_pe, processing)
    kind = classify(props, processing, clusters.event)

    lone = kind == LONE_HIT
    keep = np.flatnonzero(~lone)
    keep = keep[np.lexsort((props["left"][keep], clusters.event[keep]))]
    event_of_peak = clusters.event[keep]
    event_bounds = np.searchsorted(event_of_peak, np.arange(n_events + 1))
    peak_index = np.arange(len(keep)) - event_bounds[event_of_peak]
    kept_kind = kind[keep]

    peaks = {"event_number": raw.event_number[event_of_peak], "peak_index": peak_index,
             "type": np.asarray(PEAK_TYPES, dtype=object)[kept_kind]}
    for name, values in props.items():
        peaks[name] = values[keep]
    _add_positions(peaks, kept_kind, event_of_peak, keep, clusters, hit_channel, hit_area_pe, calibration, processing)

    pairs = find_interactions(event_bounds, kept_kind, peaks["area"], peaks["tight_coincidence"],
                              peaks["index_of_maximum"], processing, s1_pairing_rank(peaks, processing))
    events = {
        "event_number": np.asarray(raw.event_number, dtype=np.int64),
        "event_duration_ns": (raw.event_length_samples * dt).astype(np.int64),
        "n_pulses": np.asarray(raw.event_n_pulses, dtype=np.int64),
        "n_hits": n_hits,
        "n_lone_hits": np.bincount(clusters.event[lone], minlength=n_events).astype(np.int64),
        "n_peaks": np.diff(event_bounds).astype(np.int64),
    }
    for name in INTERACTION_PEAKS:
        events[name] = np.where(pairs[name] >= 0, pairs[name] - event_bounds[:-1], -1).astype(np.int64)
    has_pair = pairs["main_s2"] >= 0
    s1, s2 = pairs["main_s1"][has_pair], pairs["main_s2"][has_pair]
    drift = np.full(n_events, np.nan)
    drift[has_pair] = drift_time_ns(peaks["index_of_maximum"][s1], peaks["index_of_maximum"][s2], dt)
    events["drift_time"] = drift
    for axis in ("x", "y"):
        column = np.full(n_events, np.nan)
        column[has_pair] = peaks[axis][s2]
        events[axis] = column
    events["z"] = depth_z_cm(drift, calibration)
    return events, peaks


def _add_positions(peaks, kind, event_of_peak, keep, clusters, hit_channel, hit_area_pe, calibration,
                   processing) -> None:
    """Pattern-fit the S2s that can be main or alternative S2s (the ``pair_n_s2s`` largest per event
    with area ≥ ``s2_pairing_threshold_pe``); set the preferred x, y columns."""
    area = peaks["area"]
    s2 = np.flatnonzero((kind == S2) & (area >= processing.s2_pairing_threshold_pe))
    s2 = s2[np.lexsort((-area[s2], event_of_peak[s2]))]
    s2_events = event_of_peak[s2]
    rank = np.arange(len(s2)) - np.searchsorted(s2_events, s2_events)
    fit = s2[rank < processing.pair_n_s2s]
    top_area = top_area_per_channel(clusters.order, clusters.bounds, keep[fit], hit_channel, hit_area_pe,
                                    len(detector.TOP_CHANNELS))
    x_fit, y_fit, gof = pattern_fit(top_area, calibration.s2_pattern_height_cm, calibration.gain_period)
    n = len(area)
    for name, values in (("x_tpf", x_fit), ("y_tpf", y_fit), ("tpf_goodness_of_fit", gof)):
        column = np.full(n, np.nan)
        column[fit] = values
        peaks[name] = column
    fitted = np.isfinite(peaks["x_tpf"])
    peaks["x"] = np.where(fitted, peaks["x_tpf"], peaks["x_weighted_sum"])
    peaks["y"] = np.where(fitted, peaks["y_tpf"], peaks["y_weighted_sum"])


def process_file(raw: Path | RawData, processed_out: Path, processing: ProcessingParameters) -> StepCounts:
    """Process a raw-data file (or raw data already in memory) and write the Parquet file described
    in the module docstring."""
    data = raw if isinstance(raw, RawData) else read_raw(Path(raw), lazy_samples=True)
    events, peaks = _process_columns(data, processing)
    _write_columns(Path(processed_out), events, peaks, data.sample_duration_ns, processing)
    return StepCounts(events_in=data.n_events, events_out=len(events["event_number"]))


def process_batches(batches: Iterable[RawData], processed_out: Path, processing: ProcessingParameters) -> StepCounts:
    """Process raw data arriving in (at least one) batches of consecutive events, e.g. from a simulation
    that streams them, into the file :func:`process_file` writes for the same events. Only one batch's
    raw data is held at a time, and each batch is processed before the next is asked for."""
    parts, n_events, sample_duration_ns = [], 0, None
    for raw in batches:
        parts.append(_process_columns(raw, processing))
        n_events += raw.n_events
        sample_duration_ns = raw.sample_duration_ns
    if not parts:
        raise ValueError("process_batches needs at least one batch (an empty one for no events)")
    events, peaks = _joined(parts)
    parts.clear()  # the batches' columns are copied into the joined ones: free them before the table is built
    _write_columns(Path(processed_out), events, peaks, sample_duration_ns, processing)
    return StepCounts(events_in=n_events, events_out=len(events["event_number"]))


def write_processed(path: Path, result: Processed, processing: ProcessingParameters) -> None:
    _write_columns(Path(path), {name: result.events[name].to_numpy() for name in result.events.columns},
                   {name: result.peaks[name].to_numpy() for name in result.peaks.columns},
                   result.sample_duration_ns, processing)


def _arrow_column(name: str, values: np.ndarray) -> pa.Array:
    if name == "type":
        return pa.array(values, pa.large_string())
    return pa.array(values)


def _write_columns(path: Path, events: dict[str, np.ndarray], peaks: dict[str, np.ndarray],
                   sample_duration_ns: float, processing: ProcessingParameters) -> None:
    """One table: the event rows, then the peak rows; each kind's own columns are null in the other."""
    n_events = len(events["event_number"])
    n_peaks = len(peaks["event_number"])
    event_columns = list(events) + ["row_type"]
    peak_columns = list(peaks) + ["row_type"]
    names = event_columns + [name for name in peak_columns if name not in event_columns]
    arrays = []
    for name in names:
        if name == "row_type":
            arrays.append(pa.DictionaryArray.from_arrays(
                np.repeat(np.array([0, 1], np.int8), [n_events, n_peaks]), pa.array(["event", "peak"])
            ).cast(pa.string()))
            continue
        in_events, in_peaks = name in events, name in peaks
        if in_events and in_peaks:
            arrays.append(pa.concat_arrays([_arrow_column(name, events[name]), _arrow_column(name, peaks[name])]))
        elif in_events:
            column = _arrow_column(name, events[name])
            arrays.append(pa.concat_arrays([column, pa.nulls(n_peaks, column.type)]))
        else:
            column = _arrow_column(name, peaks[name])
            arrays.append(pa.concat_arrays([pa.nulls(n_events, column.type), column]))
    metadata = {"format_version": FORMAT_VERSION, "sample_duration_ns": sample_duration_ns,
                "event_columns": event_columns, "peak_columns": peak_columns,
                "processing": processing.model_dump(mode="json")}
    table = pa.table(arrays, names=names).replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
    pq.write_table(table, path, **PARQUET_OPTIONS)


def read_processed(path: Path) -> Processed:
    """Read a processed Parquet file back; BadInputError if it is missing or not one of ours."""
    events, peaks, sample_duration_ns = read_processed_columns(path)
    return Processed(events=pd.DataFrame(events), peaks=pd.DataFrame(peaks), sample_duration_ns=sample_duration_ns)


def read_processed_columns(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """(event columns, peak columns, sample duration in ns) of a processed file, as numpy arrays (peak
    ``type`` as str objects); BadInputError if it is missing or not one of ours."""
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
    is_event = pc.equal(table.column("row_type"), "event").to_numpy(zero_copy_only=False)
    n_events = int(is_event.sum())
    if is_event[:n_events].all():  # event rows first, as written: slices instead of copies
        parts = {"event": table.slice(0, n_events), "peak": table.slice(n_events)}
    else:
        parts = {"event": table.filter(is_event), "peak": table.filter(~is_event)}
    columns = [{name: parts[kind].column(name).to_numpy() for name in metadata[f"{kind}_columns"] if name != "row_type"}
               for kind in ("event", "peak")]
    return columns[0], columns[1], float(metadata["sample_duration_ns"])
