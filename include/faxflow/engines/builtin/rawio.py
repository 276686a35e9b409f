"""The builtin engine's raw-data file: ZLE pulses of every event in one ``.npz`` (no pickle).

Arrays (all required):

* scalars: ``format_version`` (int64, = 1), ``sample_duration_ns`` (float64), ``baseline_adc`` (int64)
* per event, sorted by event number: ``event_number``, ``event_length_samples``,
  ``event_first_pulse``, ``event_n_pulses`` (int64)
* per pulse, sorted by (event, channel, left): ``pulse_channel`` (int16), ``pulse_left`` (int64,
  sample index since the event start), ``pulse_length`` (int32), ``pulse_offset`` (int64, index of
  the pulse's first sample in ``samples``)
* ``samples`` (int16): raw ADC counts; the baseline is ``baseline_adc`` and signals go down.
"""

import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from faxflow.errors import BadInputError

FORMAT_VERSION = 1
_FIXED_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)

_DTYPES = {
    "format_version": np.int64,
    "sample_duration_ns": np.float64,
    "baseline_adc": np.int64,
    "event_number": np.int64,
    "event_length_samples": np.int64,
    "event_first_pulse": np.int64,
    "event_n_pulses": np.int64,
    "pulse_channel": np.int16,
    "pulse_left": np.int64,
    "pulse_length": np.int32,
    "pulse_offset": np.int64,
    "samples": np.int16,
}
_SCALARS = ("format_version", "sample_duration_ns", "baseline_adc")


@dataclass
class RawData:
    """ZLE raw data of a set of events; see the module docstring for the meaning of each array."""

    sample_duration_ns: float
    baseline_adc: int
    event_number: np.ndarray
    event_length_samples: np.ndarray
    event_first_pulse: np.ndarray
    event_n_pulses: np.ndarray
    pulse_channel: np.ndarray
    pulse_left: np.ndarray
    pulse_length: np.ndarray
    pulse_offset: np.ndarray
    samples: np.ndarray
    format_version: int = FORMAT_VERSION

    @property
    def n_events(self) -> int:
        return len(self.event_number)

    def pulse_samples(self, pulse_index: int) -> np.ndarray:
        """The raw ADC samples of one pulse (a view)."""
        start = self.pulse_offset[pulse_index]
        return self.samples[start:start + self.pulse_length[pulse_index]]

    def problems(self) -> list[str]:
        """Inconsistencies between the arrays; empty if the data is well formed."""
        problems = []
        n_events, n_pulses = len(self.event_number), len(self.pulse_channel)
        if self.format_version != FORMAT_VERSION:
            problems.append(f"format_version {self.format_version}, expected {FORMAT_VERSION}")
        for name in ("event_length_samples", "event_first_pulse", "event_n_pulses"):
            if len(getattr(self, name)) != n_events:
                problems.append(f"{name} has {len(getattr(self, name))} entries for {n_events} events")
        for name in ("pulse_left", "pulse_length", "pulse_offset"):
            if len(getattr(self, name)) != n_pulses:
                problems.append(f"{name} has {len(getattr(self, name))} entries for {n_pulses} pulses")
        if problems:
            return problems
        if np.any(np.diff(self.event_number) <= 0):
            problems.append("event_number is not strictly increasing")
        if self.event_n_pulses.sum() != n_pulses or np.any(self.event_n_pulses < 0):
            problems.append("event_n_pulses does not add up to the number of pulses")
        elif np.any(self.event_first_pulse != np.cumsum(self.event_n_pulses) - self.event_n_pulses):
            problems.append("event_first_pulse does not match event_n_pulses")
        if np.any(self.pulse_length <= 0):
            problems.append("a pulse has no samples")
        if n_pulses and (self.pulse_offset.min() < 0 or
                         (self.pulse_offset + self.pulse_length).max() > len(self.samples)):
            problems.append("pulse_offset/pulse_length point outside samples")
        if problems:
            return problems
        event_of_pulse = np.repeat(np.arange(n_events), self.event_n_pulses)
        pulse_stop = self.pulse_left + self.pulse_length
        if n_pulses and (self.pulse_left.min() < 0 or
                         np.any(pulse_stop > self.event_length_samples[event_of_pulse])):
            problems.append("a pulse lies outside its event")
        return problems


def _write_archive(path: Path, raw: RawData, sample_chunks: Iterable[np.ndarray]) -> None:
    """Write the arrays of ``raw`` as an ``np.load``-compatible zip; ``samples`` comes from
    ``sample_chunks`` (raw.samples only provides its length). Member timestamps are fixed so the
    same data always gives the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, dtype in _DTYPES.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIMESTAMP)
            with archive.open(member, "w", force_zip64=True) as handle:
                if name != "samples":
                    np.lib.format.write_array(handle, np.asarray(getattr(raw, name), dtype=dtype),
                                              allow_pickle=False)
                    continue
                header = np.lib.format.header_data_from_array_1_0(np.zeros(0, dtype=dtype))
                header["shape"] = (len(raw.samples),)
                np.lib.format.write_array_header_1_0(handle, header)
                for chunk in sample_chunks:
                    handle.write(memoryview(np.ascontiguousarray(chunk, dtype=dtype)).cast("B"))


def write_raw(path: Path, raw: RawData) -> None:
    """Write ``raw`` to ``path`` (an uncompressed ``.npz`` readable by ``np.load``).

    Raises ValueError on inconsistent data.
    """
    problems = raw.problems()
    if problems:
        raise ValueError("refusing to write inconsistent raw data: " + "; ".join(problems))
    _write_archive(Path(path), raw, [raw.samples])


class RawWriter:
    """Writes raw data batch by batch with bounded memory: samples are kept in memory up to
    ``memory_limit_bytes`` and spooled to a temporary file next to the output beyond that; the
    (small) event and pulse tables are kept until :meth:`close`."""

    def __init__(self, path: Path, sample_duration_ns: float, baseline_adc: int,
                 memory_limit_bytes: int = 256 << 20):
        self.path = Path(path)
        self.sample_duration_ns, self.baseline_adc = float(sample_duration_ns), int(baseline_adc)
        self._tables: dict[str, list[np.ndarray]] = {name: [] for name in (
            "event_number", "event_length_samples", "event_n_pulses", "pulse_channel", "pulse_left",
            "pulse_length")}
        self._n_samples = 0
        self._memory_limit_bytes = memory_limit_bytes
        self._in_memory: list[np.ndarray] = []
        self._in_memory_bytes = 0
        self._spool = None

    def append(self, event_number, event_length_samples, event_n_pulses, pulse_channel, pulse_left,
               pulse_length, samples) -> None:
        """Add consecutive events; pulses sorted by (event, channel, left), samples in pulse order."""
        for name, values in (("event_number", event_number), ("event_length_samples", event_length_samples),
                             ("event_n_pulses", event_n_pulses), ("pulse_channel", pulse_channel),
                             ("pulse_left", pulse_left), ("pulse_length", pulse_length)):
            self._tables[name].append(np.asarray(values, dtype=_DTYPES[name]))
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        self._in_memory.append(samples)
        self._in_memory_bytes += samples.nbytes
        self._n_samples += len(samples)
        if self._in_memory_bytes > self._memory_limit_bytes:
            if self._spool is None:
                self._spool = tempfile.NamedTemporaryFile(dir=self.path.parent, prefix=f".{self.path.name}.",
                                                          suffix=".samples")
            for chunk in self._in_memory:
                self._spool.write(memoryview(chunk).cast("B"))
            self._in_memory, self._in_memory_bytes = [], 0

    def _sample_chunks(self, chunk_samples: int = 1 << 23):
        if self._spool is not None:
            self._spool.flush()
            self._spool.seek(0)
            buffer = np.empty(chunk_samples, dtype=np.int16)
            while n_bytes := self._spool.readinto(memoryview(buffer).cast("B")):
                yield buffer[:n_bytes // 2]
        yield from self._in_memory

    def close(self) -> None:
        """Validate and write the file, then drop the buffered samples and the spool."""
        try:
            tables = {name: (np.concatenate(parts) if parts else np.zeros(0, _DTYPES[name]))
                      for name, parts in self._tables.items()}
            n_pulses, pulse_length = tables["event_n_pulses"], tables["pulse_length"]
            raw = RawData(sample_duration_ns=self.sample_duration_ns, baseline_adc=self.baseline_adc,
                          event_first_pulse=np.cumsum(n_pulses) - n_pulses,
                          pulse_offset=np.cumsum(pulse_length, dtype=np.int64) - pulse_length,
                          samples=np.broadcast_to(np.int16(0), (self._n_samples,)), **tables)
            problems = raw.problems()
            if problems:
                raise ValueError("refusing to write inconsistent raw data: " + "; ".join(problems))
            _write_archive(self.path, raw, self._sample_chunks())
        finally:
            self._in_memory = []
            if self._spool is not None:
                self._spool.close()


def read_raw(path: Path) -> RawData:
    """Read and validate a raw-data file; BadInputError naming the file if it is unusable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = sorted(set(_DTYPES) - set(archive.files))
            if missing:
                raise BadInputError(f"{path}: not a faxflow raw-data file, missing arrays {missing}")
            arrays = {name: archive[name] for name in _DTYPES}
    except BadInputError:
        raise
    except FileNotFoundError as error:
        raise BadInputError(f"{path}: raw-data file does not exist") from error
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise BadInputError(f"{path}: unreadable raw-data file (truncated or corrupt): {error}") from error

    for name, dtype in _DTYPES.items():
        expected_ndim = 0 if name in _SCALARS else 1
        if arrays[name].ndim != expected_ndim or not np.can_cast(arrays[name].dtype, dtype, "same_kind"):
            raise BadInputError(f"{path}: array {name!r} has shape {arrays[name].shape} and dtype "
                                f"{arrays[name].dtype}, expected {expected_ndim}-d {np.dtype(dtype).name}")
    values = {name: arrays[name].astype(dtype, copy=False) for name, dtype in _DTYPES.items()}
    raw = RawData(**{f.name: values[f.name] for f in fields(RawData) if f.name not in _SCALARS},
                  sample_duration_ns=float(values["sample_duration_ns"]),
                  baseline_adc=int(values["baseline_adc"]),
                  format_version=int(values["format_version"]))
    problems = raw.problems()
    if problems:
        raise BadInputError(f"{path}: inconsistent raw-data file: " + "; ".join(problems))
    return raw
