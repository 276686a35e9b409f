"""The builtin fax: instruction CSV -> fax truth CSV + ZLE raw data (docs/physics.md).

Events are simulated in batches of :data:`BATCH_EVENTS`, every physics step vectorised over the
whole batch. One ``numpy.random.Generator`` is threaded through every step, so the same seed and
parameters give byte-identical outputs. Times inside a batch are in ns relative to the
instruction time origin; the event window starts at -event_padding.
"""

import ctypes
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from faxflow.engines import StepCounts
from faxflow.engines.builtin import BATCH_EVENTS, detector, rawio
from faxflow.engines.builtin.detector import lightmaps
from faxflow.engines.builtin.parameters import PhysicsParameters
from faxflow.engines.builtin.simulation import (
    digitizer,
    drift,
    instructions_io,
    light_sharing,
    luminescence,
    photoionization,
    pmt,
    s1,
)
from faxflow.errors import StorageError

log = logging.getLogger(__name__)

TRUTH_COLUMNS = ("instruction", "repetition", "event", "peak_type", "g4_id", "x", "y", "z", "t_interaction",
                 "top_fraction", "n_photons", "t_mean_photons", "t_first_photon", "t_last_photon",
                 "t_sigma_photons", "n_electrons", "t_mean_electrons", "t_first_electron",
                 "t_last_electron", "t_sigma_electrons")
TRUTH_FLOAT_FORMAT = "%.10g"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters

# Wall-clock seconds spent per step, summed over calls; read by the benchmark.
STEP_SECONDS: dict[str, float] = defaultdict(float)


@contextmanager
def _timed(step: str):
    started = time.perf_counter()
    yield
    STEP_SECONDS[step] += time.perf_counter() - started


@dataclass
class _Photons:
    """Detected photons of a batch: event (batch-local), channel, arrival time at the PMT (ns)."""

    event: np.ndarray
    channel: np.ndarray
    time_ns: np.ndarray


def _time_statistics(group, values, n_groups):
    """Per group: count, mean, min, max, population std of ``values`` (NaN where empty)."""
    return _group_statistics(np.asarray(group, dtype=np.int64), np.asarray(values, dtype=np.float64), n_groups)


@numba.njit(cache=True, boundscheck=False)
def _group_statistics(group, values, n_groups):
    # Sums in element order, as numpy's bincount does, so the results are the same to the last bit.
    count = np.zeros(n_groups, dtype=np.int64)
    total = np.zeros(n_groups)
    first = np.full(n_groups, np.inf)
    last = np.full(n_groups, -np.inf)
    for i in range(len(group)):
        g = group[i]
        v = values[i]
        count[g] += 1
        total[g] += v
        first[g] = min(first[g], v)
        last[g] = max(last[g], v)
    mean = np.full(n_groups, np.nan)
    for g in range(n_groups):
        if count[g]:
            mean[g] = total[g] / count[g]
    squares = np.zeros(n_groups)
    for i in range(len(group)):
        deviation = values[i] - mean[group[i]]
        squares[group[i]] += deviation * deviation
    sigma = np.full(n_groups, np.nan)
    for g in range(n_groups):
        if count[g]:
            sigma[g] = np.sqrt(squares[g] / count[g])
        else:
            first[g] = last[g] = np.nan
    return count, mean, first, last, sigma


def _peak_truth(peak_type, rows, n_rows, photon_row, photon_time, photon_channel, physics,
                electron_row=None, electron_time=None):
    """Truth columns (dict of arrays) of one peak type for every instruction row of a batch."""
    padding = physics.event_padding_ns
    n_photons, t_mean, t_first, t_last, t_sigma = _time_statistics(photon_row, photon_time, n_rows)
    n_top = np.bincount(photon_row, detector.is_top(photon_channel), minlength=n_rows)
    columns = {"peak_type": np.full(n_rows, peak_type, dtype=object), "n_photons": n_photons,
               "top_fraction": np.divide(n_top, n_photons, out=np.full(n_rows, np.nan), where=n_photons > 0),
               "t_mean_photons": t_mean + padding, "t_first_photon": t_first + padding,
               "t_last_photon": t_last + padding, "t_sigma_photons": t_sigma}
    if electron_row is None:
        for name in ("n_electrons", "t_mean_electrons", "t_first_electron", "t_last_electron",
                     "t_sigma_electrons"):
            columns[name] = np.full(n_rows, np.nan)
    else:
        n_electrons, e_mean, e_first, e_last, e_sigma = _time_statistics(electron_row, electron_time, n_rows)
        columns.update({"n_electrons": n_electrons.astype(float), "t_mean_electrons": e_mean + padding,
                        "t_first_electron": e_first + padding, "t_last_electron": e_last + padding,
                        "t_sigma_electrons": e_sigma})
    columns.update({"instruction": rows["event"], "repetition": np.zeros(n_rows, dtype=np.int64),
                    "event": rows["event"], "g4_id": np.full(n_rows, -1, dtype=np.int64),
                    "z": -rows["depth"], "t_interaction": rows["t"] + padding})
    return columns


def _s1_photons(rows, row_event, physics, rng):
    n_rows = len(row_event)
    x, y, z = rows["x"], rows["y"], -rows["depth"]
    n_detected = s1.detected_s1_photons(rows["s1_photons"], lightmaps.s1_light_yield(x, y, z), physics, rng)
    photon_row = np.repeat(np.arange(n_rows), n_detected)
    recoil = np.zeros(n_rows, dtype=np.int64)
    for name, code in s1.RECOIL_CODES.items():
        recoil[rows["recoil_type"] == name] = code
    times = rows["t"][photon_row] + s1.s1_emission_delays_ns(recoil[photon_row], physics, rng)
    channels = light_sharing.s1_photon_channels(lightmaps.s1_top_fraction(x, y, z)[photon_row], physics.period,
                                                rng)
    times += pmt.transit_times_ns(len(times), physics, rng)
    truth = _peak_truth("s1", rows, n_rows, photon_row, times, channels, physics)
    truth["x"], truth["y"] = x, y
    return _Photons(row_event[photon_row], channels, times), truth, n_detected > 0


def _s2_photons(rows, row_event, physics, rng):
    n_rows = len(row_event)
    x, y, depth = rows["x"], rows["y"], rows["depth"]
    below_cathode = depth > physics.tpc_length_cm
    if below_cathode.any():
        log.warning("%d instruction row(s) deeper than the TPC (%.1f cm): S1 only, no S2",
                    below_cathode.sum(), physics.tpc_length_cm)
    drift_time = drift.mean_drift_time_ns(depth, physics)
    produced = np.where(below_cathode, 0, rows["s2_electrons"])
    n_electrons = drift.surviving_electrons(produced, drift_time, physics, rng)
    electron_row = np.repeat(np.arange(n_rows), n_electrons)
    electron_time = rows["t"][electron_row] + drift.electron_arrival_delays_ns(
        drift_time[electron_row], physics, rng)
    mean_yield = physics.s2_secondary_sc_gain_photons_per_electron * lightmaps.s2_light_yield(x, y)
    photons_per_electron = luminescence.photons_per_electron(len(electron_row), mean_yield[electron_row], rng)
    photon_electron = np.repeat(np.arange(len(electron_row)), photons_per_electron)
    photon_row = electron_row[photon_electron]
    times = electron_time[photon_electron] + luminescence.s2_photon_delays_ns(len(photon_row), physics, rng)
    x_seen, y_seen = drift.distorted_xy(x, y, -depth, physics)
    channels = light_sharing.s2_photon_channels(photon_row, x_seen, y_seen, physics, rng)
    times += pmt.transit_times_ns(len(times), physics, rng)
    truth = _peak_truth("s2", rows, n_rows, photon_row, times, channels, physics, electron_row, electron_time)
    truth["x"], truth["y"] = x_seen, y_seen
    has_peak = (n_electrons > 0) & (np.bincount(photon_row, minlength=n_rows) > 0)
    return _Photons(row_event[photon_row], channels, times), truth, has_peak


def _photoionization_photons(photons: _Photons, n_events, physics, rng) -> _Photons:
    order = np.argsort(photons.event, kind="stable")
    electrons = photoionization.photoionization_electrons(
        np.bincount(photons.event, minlength=n_events), photons.time_ns[order], physics, rng)
    mean_yield = (physics.s2_secondary_sc_gain_photons_per_electron
                  * lightmaps.s2_light_yield(electrons.x_cm, electrons.y_cm))
    per_electron = luminescence.photons_per_electron(len(electrons.event), mean_yield, rng)
    source = np.repeat(np.arange(len(electrons.event)), per_electron)
    times = (electrons.time_ns[source] + luminescence.s2_photon_delays_ns(len(source), physics, rng)
             + pmt.transit_times_ns(len(source), physics, rng))
    channels = light_sharing.s2_photon_channels(source, electrons.x_cm, electrons.y_cm, physics, rng)
    return _Photons(electrons.event[source], channels, times)


def _event_lengths_samples(photons: _Photons, n_events, physics) -> np.ndarray:
    """Samples per event: window [-padding, last photon + padding], rounded up to an even count."""
    last_photon = _latest_times(photons.event, photons.time_ns, n_events)
    n_samples = np.ceil((last_photon + 2 * physics.event_padding_ns) / physics.sample_duration_ns)
    n_samples = np.maximum(n_samples.astype(np.int64), 2)
    return n_samples + n_samples % 2


@numba.njit(cache=True, boundscheck=False)
def _latest_times(event, time_ns, n_events):
    """Per event the latest of 0 and its times (an event without photons is 2 x padding long)."""
    latest = np.zeros(n_events)
    for i in range(len(event)):
        latest[event[i]] = max(latest[event[i]], time_ns[i])
    return latest


def _photoelectron_deposits(photons: _Photons, lengths, physics, pmt_afterpulse, rng):
    """Sorted deposits of all photoelectrons (photons, double-PE copies, lone hits, afterpulses) and noise spikes."""
    copies = pmt.double_pe_copies(len(photons.time_ns), physics, rng)
    lone = pmt.lone_hits(lengths, physics, rng)  # after the double-PE draw: lone hits emit no second PE
    photons = _Photons(*(np.concatenate([getattr(photons, f), extra])
                         for f, extra in zip(("event", "channel", "time_ns"), lone)))
    channel = np.concatenate([photons.channel, photons.channel[copies]])
    area = pmt.pe_areas_electrons(channel, physics, rng)
    if pmt_afterpulse:
        parent, delay, ap_area = pmt.afterpulses(channel, physics, rng)
        if physics.pmt_afterpulse_areas == "fax":
            pmt.fax_pulse_order(photons.event, photons.channel, photons.time_ns, copies, area, parent, delay,
                                ap_area)
    else:
        parent, delay, ap_area = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    spikes = digitizer.noise_spike_deposits(lengths, physics, rng)
    return digitizer.photoelectron_deposits(photons.event, photons.channel, photons.time_ns, area, copies, parent,
                                            delay, ap_area, spikes, lengths, physics)


def _simulate_batch(rows, n_events, physics, pmt_afterpulse, s2_afterpulse, noise_bank, rng,
                    sample_buffer=None):
    """Truth columns (:data:`TRUTH_COLUMNS`), event lengths and ZLE pulses of one batch of events.

    ``rows`` are the batch's instruction columns (numpy arrays), ``rows['event']`` batch-local.
    """
    row_event = rows["event"]
    with _timed("s1"):
        s1_photons, s1_truth, s1_exists = _s1_photons(rows, row_event, physics, rng)
    with _timed("s2"):
        s2_photons, s2_truth, s2_exists = _s2_photons(rows, row_event, physics, rng)
    photons = _Photons(*(np.concatenate([getattr(s1_photons, f), getattr(s2_photons, f)])
                         for f in ("event", "channel", "time_ns")))
    if s2_afterpulse:
        with _timed("photoionization"):
            pi = _photoionization_photons(photons, n_events, physics, rng)
            photons = _Photons(*(np.concatenate([getattr(photons, f), getattr(pi, f)])
                                 for f in ("event", "channel", "time_ns")))
    lengths = _event_lengths_samples(photons, n_events, physics)
    with _timed("pmt"):
        deposits = _photoelectron_deposits(photons, lengths, physics, pmt_afterpulse, rng)
    with _timed("digitize_zle"):
        pulses = digitizer.digitize(deposits, lengths, physics, noise_bank, rng, sample_buffer)
    # per instruction row its S1 truth row, then its S2 truth row, each if the peak exists
    exists = np.column_stack([s1_exists, s2_exists]).ravel()
    truth = {name: np.column_stack([s1_truth[name], s2_truth[name]]).ravel()[exists] for name in TRUTH_COLUMNS}
    return truth, lengths, pulses


def _keep_freed_memory() -> None:
    """Ask glibc's malloc to reuse freed memory instead of handing it back to the kernel.

    Every batch allocates and frees the same few-MB arrays; by default glibc serves each with a
    fresh mmap, so all its pages are faulted in (and zeroed) again, which costs more than the
    arithmetic on them. With these settings allocations below 32 MB come from the heap and freed
    heap memory is kept (up to 1 GB), so later batches reuse warm pages. Peak memory is unchanged.
    No-op where mallopt is unavailable.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):
        pass


def _resolve_random_positions(table: pd.DataFrame, physics, rng) -> pd.DataFrame:
    table = table.copy()
    random_xy = np.isnan(table["x"].to_numpy())
    if random_xy.any():
        radius = physics.tpc_radius_cm * np.sqrt(rng.random(random_xy.sum()))
        angle = rng.uniform(-np.pi, np.pi, random_xy.sum())
        table.loc[random_xy, "x"] = radius * np.cos(angle)
        table.loc[random_xy, "y"] = radius * np.sin(angle)
    random_depth = np.isnan(table["depth"].to_numpy())
    if random_depth.any():
        table.loc[random_depth, "depth"] = rng.uniform(0.0, physics.tpc_length_cm, random_depth.sum())
    return table


def _batches(table: pd.DataFrame, physics, pmt_afterpulse, s2_afterpulse, rng, reuse_samples=False):
    """Yield (first event number, truth columns, event lengths, ZLE pulses) per batch of events of a
    parsed instruction table (:func:`instructions_io.parse_instructions`; its events are numbered in
    row order, so a batch's rows are contiguous).

    With ``reuse_samples`` every batch's pulse samples live in one reused buffer, so they must be
    consumed before the next batch is requested.
    """
    _keep_freed_memory()
    table = _resolve_random_positions(table, physics, rng)
    noise_bank = digitizer.make_noise_bank(rng)
    sample_buffer = digitizer.SampleBuffer() if reuse_samples else None
    n_events = _event_count(table)
    columns = {name: table[name].to_numpy() for name in table.columns}
    for first_event in range(0, n_events, BATCH_EVENTS):
        batch_events = min(BATCH_EVENTS, n_events - first_event)
        first_row, end_row = np.searchsorted(columns["event"], [first_event, first_event + batch_events])
        rows = {name: values[first_row:end_row] for name, values in columns.items()}
        rows["event"] = rows["event"] - first_event
        truth, lengths, pulses = _simulate_batch(rows, batch_events, physics, pmt_afterpulse, s2_afterpulse,
                                                 noise_bank, rng, sample_buffer)
        truth["instruction"] += first_event
        truth["event"] += first_event
        yield first_event, truth, lengths, pulses


def _pulse_tables(first_event, lengths, pulses: digitizer.ZlePulses) -> dict:
    """Arguments of :meth:`rawio.RawWriter.append` for one batch."""
    return {"event_number": first_event + np.arange(len(lengths)), "event_length_samples": lengths,
            "event_n_pulses": np.bincount(pulses.event, minlength=len(lengths)),
            "pulse_channel": pulses.channel, "pulse_left": pulses.left, "pulse_length": pulses.length,
            "samples": pulses.samples}


def _truth_table(parts: list[dict]) -> pd.DataFrame:
    """The truth DataFrame of consecutive batches' truth columns."""
    truth = pd.DataFrame({name: np.concatenate([part[name] for part in parts]) if parts else []
                          for name in TRUTH_COLUMNS})
    truth.index.name = TRUTH_INDEX
    return truth


class _SampleStore:
    """All batches' samples in one array, sized from the first batch's samples per event (and grown
    if needed), so in-memory raw data peak at about their own size instead of twice it (the batches
    plus their concatenation)."""

    SPARE = 1.1

    def __init__(self, expected_events: int):
        self._expected_events = expected_events
        self._array = np.empty(0, np.int16)
        self.size = 0

    def append(self, samples: np.ndarray, events_so_far: int) -> None:
        needed = self.size + len(samples)
        if needed > len(self._array):
            per_event = needed / max(events_so_far, 1)
            capacity = int(self.SPARE * max(needed, per_event * self._expected_events)) + 1
            grown = np.empty(capacity, np.int16)
            grown[:self.size] = self._array[:self.size]
            self._array = grown
        self._array[self.size:needed] = samples
        self.size = needed

    def samples(self) -> np.ndarray:
        return self._array[:self.size]


def simulate(instructions: pd.DataFrame, physics: PhysicsParameters, *, pmt_afterpulse: bool,
             s2_afterpulse: bool, rng: np.random.Generator) -> tuple[pd.DataFrame, rawio.RawData]:
    """Simulate an instruction table (as read by :func:`instructions_io.read_instructions`, or any
    table with the instruction columns) into (truth DataFrame indexed by fax_truth_peak_id, raw data)."""
    return _simulate_parsed(instructions_io.parse_instructions(instructions), physics, pmt_afterpulse=pmt_afterpulse,
                            s2_afterpulse=s2_afterpulse, rng=rng)


def _simulate_parsed(table: pd.DataFrame, physics: PhysicsParameters, *, pmt_afterpulse: bool,
                     s2_afterpulse: bool, rng: np.random.Generator) -> tuple[pd.DataFrame, rawio.RawData]:
    """:func:`simulate` of an already parsed instruction table."""
    truth_parts, tables = [], []
    store = _SampleStore(expected_events=_event_count(table))
    for first_event, truth, lengths, pulses in _batches(table, physics, pmt_afterpulse, s2_afterpulse, rng,
                                                        reuse_samples=True):
        truth_parts.append(truth)
        tables.append(_pulse_tables(first_event, lengths, pulses))
        store.append(tables[-1].pop("samples"), first_event + len(lengths))
    return _truth_table(truth_parts), _raw_data(physics, tables, store.samples())


def _raw_data(physics, tables: list[dict], samples: np.ndarray) -> rawio.RawData:
    """Raw data of consecutive batches' :func:`_pulse_tables` (without their samples) and ``samples``."""
    def joined(name, dtype):  # a new array: its cast needs no second copy
        return (np.concatenate([t[name] for t in tables]) if tables else np.zeros(0, dtype)).astype(dtype, copy=False)

    n_pulses, pulse_length = joined("event_n_pulses", np.int64), joined("pulse_length", np.int32)
    return rawio.RawData(
        sample_duration_ns=float(physics.sample_duration_ns), baseline_adc=int(physics.digitizer_baseline_adc),
        event_number=joined("event_number", np.int64), event_length_samples=joined("event_length_samples", np.int64),
        event_first_pulse=np.cumsum(n_pulses) - n_pulses, event_n_pulses=n_pulses,
        pulse_channel=joined("pulse_channel", np.int16), pulse_left=joined("pulse_left", np.int64),
        pulse_length=pulse_length, pulse_offset=np.cumsum(pulse_length, dtype=np.int64) - pulse_length,
        samples=samples)


TRUTH_INDEX = "fax_truth_peak_id"


def _csv_cells(values: np.ndarray) -> tuple[str, list] | None:
    """(printf conversion, values) that give the cells pandas' ``to_csv(float_format=TRUTH_FLOAT_FORMAT)``
    writes for one column, or None if the column needs pandas' own handling (quoting, unusual dtypes)."""
    if values.dtype.kind == "f":
        if np.isnan(values).any():  # pandas writes NaN as an empty cell
            return "%s", ["" if v != v else TRUTH_FLOAT_FORMAT % v for v in values.tolist()]
        return TRUTH_FLOAT_FORMAT, values.tolist()
    if values.dtype.kind in "iu":
        return "%d", values.tolist()
    if values.dtype.kind == "O" and all(type(v) is str for v in values):
        if any(("," in v) or ('"' in v) or ("\n" in v) or ("\r" in v) or v == "" for v in values):
            return None
        return "%s", values.tolist()
    return None


def _truth_rows(index: np.ndarray, columns: list[np.ndarray]) -> str | None:
    """The CSV rows (no header) pandas' ``to_csv(float_format=TRUTH_FLOAT_FORMAT)`` writes for a table
    with this index and columns, or None if a column needs pandas' own handling."""
    cells = [_csv_cells(np.asarray(values)) for values in [index, *columns]]
    if any(column is None for column in cells):
        return None
    row = ",".join(conversion for conversion, _ in cells) + "\n"
    return "".join([row % values for values in zip(*(values for _, values in cells))])


def _frame_rows(truth: pd.DataFrame) -> str:
    rows = _truth_rows(np.asarray(truth.index), [truth[name].to_numpy() for name in truth.columns])
    return truth.to_csv(header=False, float_format=TRUTH_FLOAT_FORMAT) if rows is None else rows


def _truth_header(columns) -> str:
    return ",".join([TRUTH_INDEX, *columns]) + "\n"


def write_truth(path: Path, truth: pd.DataFrame) -> None:
    """Write the truth table like fax (index label fax_truth_peak_id), with a fixed float format:
    byte-identical to ``truth.to_csv(path, index_label=TRUTH_INDEX, float_format=TRUTH_FLOAT_FORMAT)``
    but much faster."""
    Path(path).write_text(_truth_header(truth.columns) + _frame_rows(truth))


class _TruthWriter:
    """Writes the truth CSV batch by batch under a temporary name (renamed by :meth:`close`), the same
    bytes as :func:`write_truth` of all batches' truth joined."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._file = open(self._partial, "w")
        self._file.write(_truth_header(TRUTH_COLUMNS))
        self._rows = 0

    def append(self, truth: dict) -> None:
        """Append one batch's truth columns (:data:`TRUTH_COLUMNS`)."""
        n_rows = len(truth["event"])
        columns = [truth[name] for name in TRUTH_COLUMNS]
        index = np.arange(self._rows, self._rows + n_rows)
        rows = _truth_rows(index, columns)
        assert rows is not None, "simulation truth holds numbers and 's1'/'s2' only"
        self._file.write(rows)
        self._rows += n_rows

    def close(self) -> None:
        self._file.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


def simulate_file_to_memory(instructions_csv: Path, truth_out: Path, physics: PhysicsParameters, *,
                            pmt_afterpulse: bool, s2_afterpulse: bool,
                            seed: int) -> tuple[StepCounts, rawio.RawData]:
    """Like :func:`simulate_file` (the same truth bytes, the same raw content for the same seed) but
    the raw data stay in memory, for a chain that processes them without writing them."""
    table = instructions_io.read_instructions(Path(instructions_csv))
    truth, raw = _simulate_parsed(table, physics, pmt_afterpulse=pmt_afterpulse, s2_afterpulse=s2_afterpulse,
                          rng=np.random.default_rng(seed))
    try:
        with _timed("write"):
            write_truth(Path(truth_out), truth)
    except OSError as error:
        raise StorageError(f"cannot write the simulation truth {truth_out}: {error}") from error
    return StepCounts(events_in=_event_count(table), events_out=raw.n_events), raw


def _event_count(table: pd.DataFrame) -> int:
    """Events of an instruction table (ids run from 0)."""
    return int(table["event"].max()) + 1 if len(table) else 0


class SimulationBatches:
    """An instruction CSV simulated with ``np.random.default_rng(seed)``, batch by batch.

    Iterating yields the raw data of each batch of :data:`BATCH_EVENTS` events (at least one, maybe
    empty) as it is made, so memory does not grow with the production. Each batch's samples are
    reused by the next one: consume a batch before asking for the next. With ``raw_out`` the batches
    also stream to that raw file. The truth CSV (and the raw file) are written batch by batch under
    temporary names, renamed once the last batch has been consumed; a consumer that stops early
    leaves neither. Iterate once.
    """

    def __init__(self, instructions_csv: Path, truth_out: Path, physics: PhysicsParameters, *,
                 pmt_afterpulse: bool, s2_afterpulse: bool, seed: int, raw_out: Path | None = None):
        self._table = instructions_io.read_instructions(Path(instructions_csv))
        self.events_in = _event_count(self._table)
        self.events_out = 0
        self._truth_out, self._raw_out, self._physics = Path(truth_out), raw_out, physics
        self._options = {"pmt_afterpulse": pmt_afterpulse, "s2_afterpulse": s2_afterpulse,
                         "rng": np.random.default_rng(seed)}

    def counts(self) -> StepCounts:
        return StepCounts(events_in=self.events_in, events_out=self.events_out)

    def __iter__(self) -> Iterator[rawio.RawData]:
        physics, n_batches, writers = self._physics, 0, []
        try:
            try:
                truth_writer = _TruthWriter(self._truth_out)
                writers.append(truth_writer)
                raw_writer = None if self._raw_out is None else rawio.RawWriter(
                    Path(self._raw_out), physics.sample_duration_ns, physics.digitizer_baseline_adc)
                writers += [raw_writer] if raw_writer else []
                for first_event, truth, lengths, pulses in _batches(self._table, physics, reuse_samples=True,
                                                                    **self._options):
                    tables = _pulse_tables(first_event, lengths, pulses)
                    with _timed("write"):
                        truth_writer.append(truth)
                        if raw_writer is not None:
                            raw_writer.append(**tables)
                    self.events_out += len(lengths)
                    n_batches += 1
                    yield _raw_data(physics, [tables], tables.pop("samples"))
                if not n_batches:
                    yield _raw_data(physics, [], np.zeros(0, np.int16))
                with _timed("write"):
                    for writer in reversed(writers):  # the truth last: it marks a finished simulation
                        writer.close()
            except BaseException:
                for writer in writers:
                    writer.abort()
                raise
        except OSError as error:
            raise StorageError(f"cannot write simulation outputs ({self._truth_out}, "
                               f"{self._raw_out or 'no raw file'}): {error}") from error


def simulate_file(instructions_csv: Path, truth_out: Path, raw_out: Path, physics: PhysicsParameters, *,
                  pmt_afterpulse: bool, s2_afterpulse: bool, seed: int) -> StepCounts:
    """Simulate an instruction CSV into its truth CSV and raw-data ``.npz`` (see :class:`SimulationBatches`)."""
    batches = SimulationBatches(instructions_csv, truth_out, physics, pmt_afterpulse=pmt_afterpulse,
                                s2_afterpulse=s2_afterpulse, seed=seed, raw_out=raw_out)
    for _ in batches:
        pass
    return batches.counts()
