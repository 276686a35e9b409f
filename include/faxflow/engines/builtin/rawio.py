"""The builtin engine's raw-data file: ZLE pulses of every event in one ``.npz`` (no pickle).

Arrays (all required; format 2, written since the kept raw is compressed):

* scalars: ``format_version`` (int64, = 2), ``sample_duration_ns`` (float64), ``baseline_adc`` (int64)
* per event, sorted by event number: ``event_number``, ``event_length_samples``,
  ``event_first_pulse``, ``event_n_pulses`` (int64)
* per pulse, sorted by (event, channel, left): ``pulse_channel`` (int16), ``pulse_left`` (int64,
  sample index since the event start), ``pulse_length`` (int32), ``pulse_offset`` (int64, index of
  the pulse's first sample in the samples)
* the samples (raw ADC counts, int16; the baseline is ``baseline_adc`` and signals go down), in
  frames of at most :data:`FRAME_SAMPLES` samples: ``frame_samples`` and ``frame_bytes`` (int64, per
  frame its number of samples and of compressed bytes) and ``samples_zstd`` (uint8, the frames one
  after another). A frame is ``d = baseline_adc - sample`` (16-bit wrap-around), zigzag-coded
  (``(d << 1) ^ (d >> 15)``, so small negative and positive values both become small), split into its
  low bytes followed by its high bytes, then compressed with zstd at level :data:`ZSTD_LEVEL`. Noise
  around the baseline then costs about half a byte per sample (a quarter of the int16 size).

The table members are deflate-compressed zip members, ``samples_zstd`` is stored; every member has a
fixed timestamp, so the same data always give the same bytes. :func:`read_raw` also reads format 1
files (the same tables, stored, and the plain int16 ``samples``).
"""

import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit

from faxflow.engines.builtin import kernel_cache
from faxflow.errors import BadInputError

kernel_cache.use()  # before the frame kernels are defined: this module may be the first kernel module imported

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
FRAME_SAMPLES = 1 << 20  # 2 MB of int16 per frame: encoded while in the CPU cache, and bounds the writer's buffer
ZSTD_LEVEL = 1  # measured on 1000 SR1 events: 0.25 of the int16 bytes, ~4x faster than level 9 for 0.24
TABLE_DEFLATE_LEVEL = 1
_DOS_DATE, _DOS_TIME = (0 << 9) | (1 << 5) | 1, 0  # every zip member is dated 1980-01-01 00:00:00
_ZIP64_VERSION = 45
_NPY_HEADER_BYTES = 128

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
_FRAME_DTYPES = {"frame_samples": np.int64, "frame_bytes": np.int64, "samples_zstd": np.uint8}


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
        if self.format_version not in READABLE_FORMATS:
            problems.append(f"format_version {self.format_version}, expected one of {READABLE_FORMATS}")
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


def _crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A + B from crc1 = crc32(A), crc2 = crc32(B) and len(B) (zlib's crc32_combine)."""
    def times(matrix, vector):
        total, row = 0, 0
        while vector:
            if vector & 1:
                total ^= matrix[row]
            vector >>= 1
            row += 1
        return total

    def square(matrix):
        return [times(matrix, matrix[n]) for n in range(32)]

    if length2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # operator for one zero bit
    even = square(odd)  # two zero bits
    odd = square(even)  # four zero bits
    while True:  # apply len(B) zero bytes to crc1
        even = square(odd)
        if length2 & 1:
            crc1 = times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = square(even)
        if length2 & 1:
            crc1 = times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2


def _npy_header(dtype, shape: tuple) -> bytes:
    """A version-1.0 ``.npy`` header, always 128 bytes long, so it can be rewritten in place once
    the final length of a streamed array is known."""
    shape_text = "(" + "".join(f"{n}," for n in shape) + ")"
    text = f"{{'descr': {np.dtype(dtype).str!r}, 'fortran_order': False, 'shape': {shape_text}, }}"
    text = text.ljust(_NPY_HEADER_BYTES - 11) + "\n"
    if len(text) != _NPY_HEADER_BYTES - 10:
        raise ValueError(f"npy header too long for shape {shape}")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


class _NpzStream:
    """Minimal single-pass writer of a zip64, ``np.load``-compatible zip.

    Every member gets a fixed timestamp, so the same arrays always give the same bytes. Arrays are
    added whole (:meth:`add_array`, optionally deflated), or one stored member is streamed
    (:meth:`begin_stream`, :meth:`write_chunk`, :meth:`end_stream`): its data go straight to the
    file and only its local header and ``.npy`` header are patched in place at the end (the CRC of
    the patched header is combined with the running CRC of the data).
    """

    def __init__(self, handle):
        self._file = handle
        # name, header offset, compressed size, size, crc, method
        self._entries: list[tuple[bytes, int, int, int, int, int]] = []
        self._stream = None

    def _local_header(self, name: bytes, size: int, crc: int, method: int = zipfile.ZIP_STORED,
                      compressed_size: int | None = None) -> bytes:
        compressed_size = size if compressed_size is None else compressed_size
        extra = struct.pack("<HHQQ", 0x0001, 16, size, compressed_size)
        return struct.pack("<IHHHHHIIIHH", 0x04034B50, _ZIP64_VERSION, 0, method, _DOS_TIME,
                           _DOS_DATE, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra)) + name + extra

    def add_array(self, name: str, array: np.ndarray, deflate_level: int | None = None) -> None:
        array = np.require(array, requirements="C")  # (ascontiguousarray would make scalars 1-d)
        header = _npy_header(array.dtype, array.shape)
        data = memoryview(array.reshape(-1)).cast("B")
        crc = zlib.crc32(data, zlib.crc32(header))
        size = len(header) + data.nbytes
        encoded = f"{name}.npy".encode()
        offset = self._file.tell()
        if deflate_level is None:
            self._file.write(self._local_header(encoded, size, crc))
            self._file.write(header)
            self._file.write(data)
            self._entries.append((encoded, offset, size, size, crc, zipfile.ZIP_STORED))
            return
        deflater = zlib.compressobj(deflate_level, zlib.DEFLATED, -15)  # raw deflate, as zip wants
        compressed = deflater.compress(header) + deflater.compress(data) + deflater.flush()
        self._file.write(self._local_header(encoded, size, crc, zipfile.ZIP_DEFLATED, len(compressed)))
        self._file.write(compressed)
        self._entries.append((encoded, offset, len(compressed), size, crc, zipfile.ZIP_DEFLATED))

    def begin_stream(self, name: str, dtype) -> None:
        encoded = f"{name}.npy".encode()
        offset = self._file.tell()
        self._file.write(self._local_header(encoded, 0, 0))
        data_offset = self._file.tell()
        self._file.write(_npy_header(dtype, (0,)))
        self._stream = {"name": encoded, "dtype": np.dtype(dtype), "offset": offset,
                        "data_offset": data_offset, "n_bytes": 0, "crc": 0}

    def write_chunk(self, values) -> None:
        stream = self._stream
        data = memoryview(values).cast("B") if isinstance(values, bytes) else \
            memoryview(np.ascontiguousarray(values, dtype=stream["dtype"]).reshape(-1)).cast("B")
        stream["crc"] = zlib.crc32(data, stream["crc"])
        self._file.write(data)
        stream["n_bytes"] += data.nbytes

    def end_stream(self) -> None:
        stream, self._stream = self._stream, None
        header = _npy_header(stream["dtype"], (stream["n_bytes"] // stream["dtype"].itemsize,))
        crc = _crc32_combine(zlib.crc32(header), stream["crc"], stream["n_bytes"])
        size = len(header) + stream["n_bytes"]
        end = self._file.tell()
        self._file.seek(stream["offset"])
        self._file.write(self._local_header(stream["name"], size, crc))
        self._file.seek(stream["data_offset"])
        self._file.write(header)
        self._file.seek(end)
        self._entries.append((stream["name"], stream["offset"], size, size, crc, zipfile.ZIP_STORED))

    def finish(self) -> None:
        """Write the central directory and the zip64 end records."""
        directory_offset = self._file.tell()
        for name, offset, compressed_size, size, crc, method in self._entries:
            extra = struct.pack("<HHQQQ", 0x0001, 24, size, compressed_size, offset)
            self._file.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, _ZIP64_VERSION, _ZIP64_VERSION, 0,
                                         method, _DOS_TIME, _DOS_DATE, crc, 0xFFFFFFFF,
                                         0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0o600 << 16, 0xFFFFFFFF)
                             + name + extra)
        directory_size = self._file.tell() - directory_offset
        zip64_end_offset = self._file.tell()
        n = len(self._entries)
        self._file.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, _ZIP64_VERSION, _ZIP64_VERSION, 0, 0, n, n,
                                     directory_size, directory_offset))
        self._file.write(struct.pack("<IIQI", 0x07064B50, 0, zip64_end_offset, 1))
        self._file.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                                     min(directory_size, 0xFFFFFFFF), min(directory_offset, 0xFFFFFFFF), 0))


@njit(cache=True)
def _split_zigzag(samples, baseline_adc, out):
    """The uncompressed frame of ``samples`` into ``out[:2n]`` in one pass (see the module docstring):
    per sample its zigzag-coded ``baseline_adc - sample``, low byte at ``i``, high byte at ``n + i``.
    16-bit arithmetic throughout (each step cast back), which wraps around like the format and
    lets the loop vectorise."""
    n = len(samples)
    low, high = out[:n], out[n:2 * n]
    baseline = np.int16(baseline_adc)
    for i in range(n):
        below = np.int16(baseline - samples[i])
        code = np.uint16((below << 1) ^ (below >> 15))
        low[i] = np.uint8(code)
        high[i] = np.uint8(code >> 8)


@njit(cache=True)
def _unsplit_zigzag(split, baseline_adc, out):
    """Inverse of :func:`_split_zigzag`: the ``len(out)`` samples of the uncompressed frame ``split``."""
    n = len(out)
    low, high = split[:n], split[n:2 * n]
    baseline = np.int16(baseline_adc)
    for i in range(n):
        code = np.int16(np.uint16(low[i]) | (np.uint16(high[i]) << 8))
        below = np.int16(np.int16((code >> 1) & 0x7FFF) ^ np.int16(-(code & 1)))
        out[i] = np.int16(baseline - below)


def _encode_frame(samples: np.ndarray, baseline_adc: int, scratch: np.ndarray | None = None) -> bytes:
    """One compressed frame (see the module docstring); ``scratch`` (uint8, ≥ 2 bytes a sample) is
    reused for the uncompressed frame if given."""
    samples = np.asarray(samples, dtype=np.int16)
    split = np.empty(2 * len(samples), np.uint8) if scratch is None else scratch[:2 * len(samples)]
    _split_zigzag(samples, int(np.int16(baseline_adc)), split)
    return pa.Codec("zstd", ZSTD_LEVEL).compress(split, asbytes=True)


def _decode_frame(frame, n_samples: int, baseline_adc: int, out: np.ndarray) -> None:
    """Decode one frame of ``n_samples`` samples into ``out`` (in place)."""
    split = np.frombuffer(pa.Codec("zstd").decompress(frame, decompressed_size=2 * n_samples), np.uint8)
    if len(split) != 2 * n_samples:  # the kernel does not check bounds
        raise ValueError(f"frame holds {len(split)} bytes, expected {2 * n_samples}")
    _unsplit_zigzag(split, int(np.int16(baseline_adc)), out)


class _FrameWriter:
    """Cuts a stream of samples into :data:`FRAME_SAMPLES`-sample frames, whatever the batch sizes,
    so that streamed and whole-array writes give the same bytes."""

    def __init__(self, archive: _NpzStream, baseline_adc: int):
        self._archive, self._baseline = archive, baseline_adc
        self._pending = np.zeros(0, np.int16)
        self._scratch = np.empty(2 * FRAME_SAMPLES, np.uint8)
        self.frame_samples: list[int] = []
        self.frame_bytes: list[int] = []
        archive.begin_stream("samples_zstd", np.uint8)

    def _emit(self, samples: np.ndarray) -> None:
        frame = _encode_frame(samples, self._baseline, self._scratch)
        self._archive.write_chunk(frame)
        self.frame_samples.append(len(samples))
        self.frame_bytes.append(len(frame))

    def write(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=np.int16)
        start = 0
        if len(self._pending):
            start = min(FRAME_SAMPLES - len(self._pending), len(samples))
            self._pending = np.concatenate([self._pending, samples[:start]])
            if len(self._pending) < FRAME_SAMPLES:
                return
            self._emit(self._pending)
            self._pending = np.zeros(0, np.int16)
        full_stop = start + (len(samples) - start) // FRAME_SAMPLES * FRAME_SAMPLES
        for frame_start in range(start, full_stop, FRAME_SAMPLES):
            self._emit(samples[frame_start:frame_start + FRAME_SAMPLES])
        self._pending = samples[full_stop:].copy()  # the caller may reuse its buffer

    def finish(self) -> dict[str, np.ndarray]:
        """End the samples member; the frame tables to store with the other tables."""
        if len(self._pending):
            self._emit(self._pending)
            self._pending = np.zeros(0, np.int16)
        self._archive.end_stream()
        return {"frame_samples": np.array(self.frame_samples, np.int64),
                "frame_bytes": np.array(self.frame_bytes, np.int64)}


class RawWriter:
    """Writes a raw-data file in one pass with bounded memory: each batch's samples are compressed
    frame by frame straight into the output (under a temporary name, renamed by :meth:`close`);
    only the (small) event and pulse tables are kept until :meth:`close`."""

    def __init__(self, path: Path, sample_duration_ns: float, baseline_adc: int):
        self.path = Path(path)
        self.sample_duration_ns, self.baseline_adc = float(sample_duration_ns), int(baseline_adc)
        self._tables: dict[str, list[np.ndarray]] = {name: [] for name in (
            "event_number", "event_length_samples", "event_n_pulses", "pulse_channel", "pulse_left",
            "pulse_length")}
        self._n_samples = 0
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._file = open(self._partial, "wb")
        self._zip = _NpzStream(self._file)
        self._frames = _FrameWriter(self._zip, self.baseline_adc)

    def append(self, event_number, event_length_samples, event_n_pulses, pulse_channel, pulse_left,
               pulse_length, samples) -> None:
        """Add consecutive events; pulses sorted by (event, channel, left), samples in pulse order.

        ``samples`` is consumed before returning, so it may be a reused buffer."""
        for name, values in (("event_number", event_number), ("event_length_samples", event_length_samples),
                             ("event_n_pulses", event_n_pulses), ("pulse_channel", pulse_channel),
                             ("pulse_left", pulse_left), ("pulse_length", pulse_length)):
            self._tables[name].append(np.array(values, dtype=_DTYPES[name]))
        self._frames.write(samples)
        self._n_samples += len(samples)

    def close(self) -> None:
        """Validate the tables, finish the file and move it to its final name."""
        try:
            tables = {name: (np.concatenate(parts) if parts else np.zeros(0, _DTYPES[name]))
                      for name, parts in self._tables.items()}
            self._tables = {}
            n_pulses, pulse_length = tables["event_n_pulses"], tables["pulse_length"]
            raw = RawData(sample_duration_ns=self.sample_duration_ns, baseline_adc=self.baseline_adc,
                          event_first_pulse=np.cumsum(n_pulses) - n_pulses,
                          pulse_offset=np.cumsum(pulse_length, dtype=np.int64) - pulse_length,
                          samples=np.broadcast_to(np.int16(0), (self._n_samples,)), **tables)
            problems = raw.problems()
            if problems:
                raise ValueError("refusing to write inconsistent raw data: " + "; ".join(problems))
            _add_tables(self._zip, raw, self._frames.finish())
            self._zip.finish()
            self._file.close()
            os.replace(self._partial, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the partial output."""
        self._file.close()
        self._partial.unlink(missing_ok=True)


def _add_tables(archive: _NpzStream, raw: RawData, frame_tables: dict[str, np.ndarray]) -> None:
    for name, dtype in _DTYPES.items():
        if name == "format_version":
            archive.add_array(name, np.int64(FORMAT_VERSION))
        elif name != "samples":
            archive.add_array(name, np.asarray(getattr(raw, name), dtype=dtype), TABLE_DEFLATE_LEVEL)
    for name, values in frame_tables.items():
        archive.add_array(name, values, TABLE_DEFLATE_LEVEL)


def write_raw(path: Path, raw: RawData) -> None:
    """Write ``raw`` to ``path`` (a compressed ``.npz``, see the module docstring).

    Raises ValueError on inconsistent data.
    """
    problems = raw.problems()
    if problems:
        raise ValueError("refusing to write inconsistent raw data: " + "; ".join(problems))
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as handle:
            archive = _NpzStream(handle)
            frames = _FrameWriter(archive, raw.baseline_adc)
            frames.write(raw.samples)
            _add_tables(archive, raw, frames.finish())
            archive.finish()
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _check_shape(path: Path, name: str, array: np.ndarray, dtype, ndim: int) -> None:
    if array.ndim != ndim or not np.can_cast(array.dtype, dtype, "same_kind"):
        raise BadInputError(f"{path}: array {name!r} has shape {array.shape} and dtype "
                            f"{array.dtype}, expected {ndim}-d {np.dtype(dtype).name}")


class FrameSamples:
    """The samples of a format-2 file, decoded only where sliced (``samples[a:b]``), so a reader
    that works through the events in chunks never holds all of them decoded."""

    def __init__(self, path: Path, compressed: np.ndarray, frame_samples: np.ndarray, frame_bytes: np.ndarray,
                 baseline_adc: int):
        if (len(frame_samples) != len(frame_bytes) or np.any(frame_samples < 0) or np.any(frame_bytes < 0)
                or frame_bytes.sum() != len(compressed)):
            raise BadInputError(f"{path}: inconsistent raw-data file: the frame tables do not match samples_zstd")
        self._path, self._compressed, self._baseline = path, compressed, baseline_adc
        self._n = frame_samples
        self._bytes = frame_bytes
        self._start = np.cumsum(frame_samples) - frame_samples
        self._byte_start = np.cumsum(frame_bytes) - frame_bytes
        self._length = int(frame_samples.sum())
        self._last: tuple[int, np.ndarray] | None = None  # (frame, its samples): the last one cut by a slice

    def __len__(self) -> int:
        return self._length

    def _decode(self, frame: int, out: np.ndarray) -> None:
        offset, size = self._byte_start[frame], self._bytes[frame]
        try:
            _decode_frame(self._compressed[offset:offset + size], len(out), self._baseline, out)
        except (pa.ArrowException, OSError, ValueError) as error:
            raise BadInputError(f"{self._path}: corrupt raw-data frame at sample {self._start[frame]}: "
                                f"{error}") from error

    def _cut_frame(self, frame: int) -> np.ndarray:
        """The samples of a frame a slice only partly covers; kept, as a reader slicing consecutive
        ranges cuts the same frame at the end of one slice and the start of the next."""
        if self._last is None or self._last[0] != frame:
            decoded = np.empty(int(self._n[frame]), np.int16)
            self._decode(frame, decoded)
            self._last = (frame, decoded)
        return self._last[1]

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, step = key.indices(self._length)
        if step != 1:
            raise ValueError("raw samples can only be sliced contiguously")
        stop = max(start, stop)
        out = np.empty(stop - start, np.int16)
        first = max(int(np.searchsorted(self._start, start, side="right")) - 1, 0)
        for frame in range(first, len(self._n)):
            frame_start, n = int(self._start[frame]), int(self._n[frame])
            if frame_start >= stop:
                break
            lo, hi = max(start, frame_start), min(stop, frame_start + n)
            if hi - lo == n:
                self._decode(frame, out[lo - start:hi - start])
            elif hi > lo:
                out[lo - start:hi - start] = self._cut_frame(frame)[lo - frame_start:hi - frame_start]
        return out


def read_raw(path: Path, *, lazy_samples: bool = False) -> RawData:
    """Read and validate a raw-data file; BadInputError naming the file if it is unusable.

    With ``lazy_samples`` (format 2) the samples are a :class:`FrameSamples`, decoded where sliced."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            version = int(archive["format_version"]) if "format_version" in archive.files else None
            if version not in READABLE_FORMATS:
                raise BadInputError(f"{path}: not a faxflow raw-data file (format_version {version}, "
                                    f"readable: {', '.join(map(str, READABLE_FORMATS))})")
            wanted = {**_DTYPES, **_FRAME_DTYPES} if version == 2 else dict(_DTYPES)
            if version == 2:
                del wanted["samples"]
            missing = sorted(set(wanted) - set(archive.files))
            if missing:
                raise BadInputError(f"{path}: not a faxflow raw-data file, missing arrays {missing}")
            arrays = {name: archive[name] for name in wanted}
    except BadInputError:
        raise
    except FileNotFoundError as error:
        raise BadInputError(f"{path}: raw-data file does not exist") from error
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise BadInputError(f"{path}: unreadable raw-data file (truncated or corrupt): {error}") from error

    for name, dtype in wanted.items():
        _check_shape(path, name, arrays[name], dtype, 0 if name in _SCALARS else 1)
    values = {name: arrays[name].astype(dtype, copy=False) for name, dtype in wanted.items()}
    baseline_adc = int(values["baseline_adc"])
    if version == 2:
        lazy = FrameSamples(path, values["samples_zstd"], values["frame_samples"], values["frame_bytes"], baseline_adc)
        values["samples"] = lazy if lazy_samples else lazy[:]
    raw = RawData(**{f.name: values[f.name] for f in fields(RawData) if f.name not in _SCALARS},
                  sample_duration_ns=float(values["sample_duration_ns"]), baseline_adc=baseline_adc,
                  format_version=version)
    problems = raw.problems()
    if problems:
        raise BadInputError(f"{path}: inconsistent raw-data file: " + "; ".join(problems))
    return raw
