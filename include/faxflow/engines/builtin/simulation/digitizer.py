"""Digitiser and software ZLE: PE pulses -> ADC samples -> stored pulses (docs/physics.md "PMT response
and digitiser").

Only the samples that can end up in a ZLE pulse are ever built: around every photoelectron (and
every noise-tail spike) a region of +-(zle_padding + 2) samples is digitised with noise taken from
a pre-generated Gaussian noise bank, the ZLE threshold is applied inside it, and the padded,
merged, even/odd-aligned windows are stored. The cost scales with the number of photoelectrons,
not with the event length.
"""

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros
from numba.extending import intrinsic

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.radix import RADIX_COUNTS, stable_argsort, stable_argsort_values

SAMPLES_BEFORE_PULSE_CENTRE = 2
SAMPLES_AFTER_PULSE_CENTRE = 20
PULSE_SAMPLES = SAMPLES_BEFORE_PULSE_CENTRE + SAMPLES_AFTER_PULSE_CENTRE
MAX_ADC = 16383
NOISE_BANK_SIZE = 2 ** 20
_SCAN_BLOCK = 64  # samples per block of the ZLE threshold scan: at most the 64 bits of its crossing mask
_SPIKE = -1  # offset marker of a noise-tail spike (its "area" is in ADC counts)

# SPE template (1 ns steps, -12..196 ns, maximum at 0): Gaussian rise (sigma 3 ns), then
# 95.25 % exp(-t / 7 ns) + 4.75 % exp(-t / 117 ns). Mean 24.3 ns after the maximum, 26.6 % of the
# charge > 20 ns later, 17.2 % > 50 ns, 8.8 % > 100 ns; largest 10 ns sample 34-48 % of the charge.
_SPE_RISE_SIGMA_NS = 3.0
_SPE_FAST_DECAY_NS = 7.0
_SPE_SLOW_DECAY_NS = 117.0
_SPE_SLOW_FRACTION = 0.0475


def spe_pulse_shape() -> tuple[np.ndarray, np.ndarray]:
    """(times ns, relative amplitudes) of the 209-point single-PE template; peak 1 at t = 0."""
    times = np.arange(-12.0, 197.0)
    falling = ((1.0 - _SPE_SLOW_FRACTION) * np.exp(-times / _SPE_FAST_DECAY_NS)
               + _SPE_SLOW_FRACTION * np.exp(-times / _SPE_SLOW_DECAY_NS))
    rising = np.exp(-0.5 * (times / _SPE_RISE_SIGMA_NS) ** 2)
    return times, np.where(times < 0, rising, falling)


@lru_cache(maxsize=4)
def pulse_charge_fractions(sample_duration_ns: float) -> np.ndarray:
    """float64[offsets, 22]: fraction of a PE's charge in each sample of its 22-sample block.

    Row = the PE's whole-ns time modulo the sample duration. Block sample k covers template times
    [k - 2, k - 1] x dt - offset, as in fax; the block itself starts one sample before the PE's
    sample, so the pulse lands one sample later than the photon (fax's placement quirk).
    """
    times, amplitudes = spe_pulse_shape()
    cdf = np.cumsum(amplitudes) / amplitudes.sum()
    n_offsets = int(round(sample_duration_ns))
    offsets = np.arange(n_offsets)[:, None]
    k = np.arange(PULSE_SAMPLES)[None, :]
    lower = (k - SAMPLES_BEFORE_PULSE_CENTRE) * sample_duration_ns - offsets
    upper = lower + sample_duration_ns
    return np.interp(upper, times, cdf, left=0.0, right=1.0) - np.interp(lower, times, cdf, left=0.0, right=1.0)


@lru_cache(maxsize=4)
def _noise_rms_table(median_rms_adc: float, period: str) -> np.ndarray:
    rms = median_rms_adc * np.random.default_rng(5037).lognormal(0.0, 0.17, size=detector.N_TPC_CHANNELS)
    rms[~detector.live_mask(period)] = 0.0
    rms.setflags(write=False)
    return rms


def noise_rms_adc(physics) -> np.ndarray:
    """float64[248]: per-channel noise RMS in ADC (median noise_rms_adc, 10-90 % spread ~ +-20 %)."""
    return _noise_rms_table(float(physics.noise_rms_adc), physics.period)


def make_noise_bank(rng: np.random.Generator, size: int = NOISE_BANK_SIZE) -> np.ndarray:
    """float32[size] of unit Gaussian noise; regions take random contiguous chunks of it."""
    return rng.standard_normal(size, dtype=np.float32)


@dataclass(frozen=True)
class Deposits:
    """What the digitiser places in the waveforms of a batch, sorted by (event, channel, start).

    ``offset`` is the PE's ns offset within its sample (row of the charge-fraction table) or -1 for
    a noise spike; ``amount`` is the PE charge in electrons or the spike's signal in ADC counts;
    ``start`` is the first sample of the PE's 22-sample block (or the spike's sample).
    """

    event: np.ndarray
    channel: np.ndarray
    start: np.ndarray
    offset: np.ndarray
    amount: np.ndarray


def pe_deposits(event, channel, time_ns, area_electrons, event_length_samples, physics) -> Deposits:
    """Place photoelectrons at event-window times ``time_ns`` (ns since the event start).

    PEs whose block would start before the first or end after the last sample are dropped, like fax.
    """
    dt = physics.sample_duration_ns
    centre_ns = np.floor(time_ns).astype(np.int64)
    start = centre_ns // int(round(dt)) - 1
    offset = centre_ns % int(round(dt))
    inside = (start >= 0) & (start + PULSE_SAMPLES <= np.asarray(event_length_samples)[event])
    return Deposits(event[inside], channel[inside], start[inside], offset[inside], area_electrons[inside])


def noise_spike_deposits(event_length_samples, physics, rng: np.random.Generator) -> Deposits:
    """Noise-tail threshold crossings: Poisson(rate x event length) per live channel, uniform in time.

    The spike sample's signal is threshold + 2 + floor(Exp(2)) ADC (it replaces that sample's
    Gaussian noise, which has no such tails), so every spike makes one noise-only ZLE pulse
    unless it falls inside another pulse.
    """
    lengths = np.asarray(event_length_samples, dtype=np.int64)
    live_channels = np.flatnonzero(detector.live_mask(physics.period))
    expected = physics.noise_pulse_rate_per_channel_hz * lengths * physics.sample_duration_ns * 1e-9
    n_spikes = rng.poisson(expected * len(live_channels))
    event = np.repeat(np.arange(len(lengths)), n_spikes)
    channel = live_channels[rng.integers(0, len(live_channels), len(event))]
    start = (rng.random(len(event)) * lengths[event]).astype(np.int64)
    height = detector.zle_thresholds_adc(physics)[channel] + 2.0 + np.floor(rng.exponential(2.0, len(event)))
    return Deposits(event, channel, start, np.full(len(event), _SPIKE, dtype=np.int64), height)


def sort_deposits(parts: list[Deposits]) -> Deposits:
    """Concatenate and sort deposits by (event, channel, start), stably."""
    merged = {name: np.concatenate([getattr(p, name) for p in parts])
              for name in ("event", "channel", "start", "offset", "amount")}
    return Deposits(*_sorted_deposits(merged["event"], merged["channel"], merged["start"], merged["offset"],
                                      merged["amount"], detector.N_TPC_CHANNELS))


def photoelectron_deposits(event, channel, time_ns, area_electrons, copies, afterpulse_parent,
                           afterpulse_delay_ns, afterpulse_area, spikes: Deposits, event_length_samples,
                           physics) -> Deposits:
    """Sorted deposits of a batch: its photoelectrons plus the noise spikes ``spikes``.

    The photoelectrons are the photons (``event``, ``channel``, ``time_ns`` since the event
    origin), then the double-PE copies ``copies`` (photon indices), then the afterpulses, whose
    parents index photons followed by copies; ``area_electrons`` covers photons and copies.
    Same result as ``sort_deposits([pe_deposits(<all PEs concatenated>), spikes])``, with no
    intermediate arrays.
    """
    return Deposits(*_build_sorted_deposits(
        np.asarray(event, dtype=np.int64), np.asarray(channel, dtype=np.int64), np.asarray(time_ns, dtype=float),
        np.asarray(copies, dtype=np.int64), np.asarray(area_electrons, dtype=float),
        np.asarray(afterpulse_parent, dtype=np.int64), np.asarray(afterpulse_delay_ns, dtype=float),
        np.asarray(afterpulse_area, dtype=float), spikes.event.astype(np.int64, copy=False),
        spikes.channel.astype(np.int64, copy=False), spikes.start.astype(np.int64, copy=False),
        spikes.offset.astype(np.int64, copy=False), spikes.amount.astype(float, copy=False),
        np.asarray(event_length_samples, dtype=np.int64), float(physics.event_padding_ns),
        int(round(physics.sample_duration_ns)), PULSE_SAMPLES, detector.N_TPC_CHANNELS))


@numba.njit(cache=True, boundscheck=False)
def _stable_sort_by_key(key, order, lo, hi):
    """Stable in-place sort of ``order[lo:hi]`` by ``key[lo:hi]``: insertion sort for the usual
    small groups, a merge sort for large ones."""
    if hi - lo <= 64:
        for j in range(lo + 1, hi):
            k = key[j]
            o = order[j]
            m = j - 1
            while m >= lo and key[m] > k:
                key[m + 1] = key[m]
                order[m + 1] = order[m]
                m -= 1
            key[m + 1] = k
            order[m + 1] = o
    else:
        within = stable_argsort_values(key[lo:hi])
        unsorted = order[lo:hi].copy()
        for i in range(hi - lo):
            order[lo + i] = unsorted[within[i]]


@numba.njit(cache=True, boundscheck=False)
def _build_sorted_deposits(event, channel, time_ns, copies, area, ap_parent, ap_delay, ap_area, spike_event,
                           spike_channel, spike_start, spike_offset, spike_amount, event_length, padding_ns,
                           dt, pulse_samples, n_channels):
    n_photons, n_copies, n_afterpulses = len(event), len(copies), len(ap_parent)
    n_pe = n_photons + n_copies + n_afterpulses
    total = n_pe + len(spike_event)
    n_events = len(event_length)
    # 1. Place every PE (dropping those whose block leaves the event) and append the spikes.
    u_event = np.empty(total, dtype=np.int64)
    u_channel = np.empty(total, dtype=np.int64)
    u_start = np.empty(total, dtype=np.int64)
    u_offset = np.empty(total, dtype=np.int64)
    u_amount = np.empty(total, dtype=np.float64)
    m = 0
    for j in range(n_pe):
        if j < n_photons:
            p = j
            t = time_ns[p]
            a = area[j]
        elif j < n_photons + n_copies:
            p = copies[j - n_photons]
            t = time_ns[p]
            a = area[j]
        else:
            q = ap_parent[j - n_photons - n_copies]
            p = q if q < n_photons else copies[q - n_photons]
            t = time_ns[p] + ap_delay[j - n_photons - n_copies]
            a = ap_area[j - n_photons - n_copies]
        centre = np.int64(np.floor(t + padding_ns))
        start = centre // dt - 1
        e = event[p]
        if start >= 0 and start + pulse_samples <= event_length[e]:
            u_event[m] = e
            u_channel[m] = channel[p]
            u_start[m] = start
            u_offset[m] = centre % dt
            u_amount[m] = a
            m += 1
    for j in range(len(spike_event)):
        u_event[m] = spike_event[j]
        u_channel[m] = spike_channel[j]
        u_start[m] = spike_start[j]
        u_offset[m] = spike_offset[j]
        u_amount[m] = spike_amount[j]
        m += 1
    # 2. Stable counting sort by event: move the deposits into event order (sequential streams).
    event_first = np.zeros(n_events + 1, dtype=np.int64)
    for i in range(m):
        event_first[u_event[i] + 1] += 1
    for e in range(n_events):
        event_first[e + 1] += event_first[e]
    cursor = event_first[:-1].copy()
    e_channel = np.empty(m, dtype=np.int64)
    e_start = np.empty(m, dtype=np.int64)
    e_offset = np.empty(m, dtype=np.int64)
    e_amount = np.empty(m, dtype=np.float64)
    for i in range(m):
        e = u_event[i]
        position = cursor[e]
        cursor[e] = position + 1
        e_channel[position] = u_channel[i]
        e_start[position] = u_start[i]
        e_offset[position] = u_offset[i]
        e_amount[position] = u_amount[i]
    # 3. Per event, within its (cache-resident) range: a stable radix sort by start, then a stable
    # counting sort by channel that gathers straight into place: sorted by (channel, start), ties
    # in their original order.
    sorted_event = np.empty(m, dtype=np.int64)
    sorted_channel = np.empty(m, dtype=np.int64)
    sorted_start = np.empty(m, dtype=np.int64)
    sorted_offset = np.empty(m, dtype=np.int64)
    sorted_amount = np.empty(m, dtype=np.float64)
    by_start = np.empty(m, dtype=np.int64)
    scratch = np.empty(m, dtype=np.int64)
    counts = np.empty(RADIX_COUNTS, dtype=np.int64)
    channel_cursor = np.zeros(n_channels + 1, dtype=np.int64)
    for e in range(n_events):
        lo, hi = event_first[e], event_first[e + 1]
        order = by_start[lo:hi]
        stable_argsort(e_start[lo:hi], order, scratch, counts)
        channel_cursor[:] = 0
        for j in range(lo, hi):
            channel_cursor[e_channel[j] + 1] += 1
        channel_cursor[0] = lo
        for c in range(n_channels):
            channel_cursor[c + 1] += channel_cursor[c]
        for j in range(hi - lo):
            i = lo + order[j]
            c = e_channel[i]
            position = channel_cursor[c]
            channel_cursor[c] = position + 1
            sorted_event[position] = e
            sorted_channel[position] = c
            sorted_start[position] = e_start[i]
            sorted_offset[position] = e_offset[i]
            sorted_amount[position] = e_amount[i]
    return sorted_event, sorted_channel, sorted_start, sorted_offset, sorted_amount


@numba.njit(cache=True, boundscheck=False)
def _sorted_deposits(event, channel, start, offset, amount, n_channels):
    """Stable sort by (event, channel, start): a counting sort by (event, channel), then an
    insertion sort by start inside each (small) group; large groups use a stable merge sort."""
    n = len(event)
    n_groups = 1
    for i in range(n):
        n_groups = max(n_groups, event[i] * n_channels + channel[i] + 1)
    cursor = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(n):
        cursor[event[i] * n_channels + channel[i] + 1] += 1
    for g in range(n_groups):
        cursor[g + 1] += cursor[g]
    group_start = cursor[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    key = np.empty(n, dtype=np.int64)
    for i in range(n):
        g = event[i] * n_channels + channel[i]
        position = cursor[g]
        order[position] = i
        key[position] = start[i]
        cursor[g] = position + 1
    for g in range(n_groups):
        lo = group_start[g]
        hi = cursor[g]
        _stable_sort_by_key(key, order, lo, hi)
    sorted_event = np.empty(n, dtype=event.dtype)
    sorted_channel = np.empty(n, dtype=channel.dtype)
    sorted_start = np.empty(n, dtype=start.dtype)
    sorted_offset = np.empty(n, dtype=offset.dtype)
    sorted_amount = np.empty(n, dtype=amount.dtype)
    for j in range(n):
        i = order[j]
        sorted_event[j] = event[i]
        sorted_channel[j] = channel[i]
        sorted_start[j] = start[i]
        sorted_offset[j] = offset[i]
        sorted_amount[j] = amount[i]
    return sorted_event, sorted_channel, sorted_start, sorted_offset, sorted_amount


@numba.njit(cache=True)
def _regions(event, channel, start, offset, event_length, margin, pulse_samples):
    """Merged sample ranges [left, right) to digitise around every deposit (merged only within an
    (event, channel)), and their deposit ranges."""
    n = len(event)
    left = np.empty(n, dtype=np.int64)
    right = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    last = np.empty(n, dtype=np.int64)
    n_regions = 0
    for i in range(n):
        length = pulse_samples if offset[i] >= 0 else 1
        lo = max(start[i] - margin, 0)
        hi = min(start[i] + length + margin, event_length[event[i]])
        same_group = i > 0 and event[i] == event[i - 1] and channel[i] == channel[i - 1]
        if same_group and lo <= right[n_regions - 1]:
            right[n_regions - 1] = max(right[n_regions - 1], hi)
            last[n_regions - 1] = i + 1
        else:
            left[n_regions] = lo
            right[n_regions] = hi
            first[n_regions] = i
            last[n_regions] = i + 1
            n_regions += 1
    return left[:n_regions], right[:n_regions], first[:n_regions], last[:n_regions]


@intrinsic
def _prefetch(typingctx, array, index):
    """Hint the CPU to load ``array[index]``'s cache line (LLVM's prefetch: read, keep in all levels)."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        int32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [address.type, int32, int32, int32]), "llvm.prefetch.p0")
        builder.call(prefetch, [address, int32(0), int32(3), int32(1)])
        return context.get_dummy_value()
    return numba.types.void(array, index), codegen


@numba.njit(cache=True, boundscheck=False)
def _digitize_regions(channel, start, offset, amount, region_left, region_right, region_first,
                      region_last, noise_starts, noise_bank, noise_rms, current_per_electron,
                      adc_per_current, baseline, threshold, padding, samples):
    """Build each region's waveform, apply the ZLE and store the kept pulses in ``samples``.

    Each region is digitised into a small (cache-resident) scratch waveform and its ZLE windows are
    copied to ``samples`` (int16, at least as long as all regions together). Loops index the whole
    arrays with unsigned offsets: LLVM vectorises them without negative-index checks, and no array
    is viewed or aliased per deposit, region or block (each view or alias costs two atomic
    reference-count updates, and each waits for all pending stores: they took ~15 % of this kernel).
    Returns (region index, left, length) per pulse and the number of samples written.
    """
    max_width = 0
    for r in range(len(region_left)):
        max_width = max(max_width, region_right[r] - region_left[r])
    max_pulses = len(samples) // (2 * padding) + 2 * len(region_left) + 1
    pulse_region = np.empty(max_pulses, dtype=np.int64)
    pulse_left = np.empty(max_pulses, dtype=np.int64)
    pulse_length = np.empty(max_pulses, dtype=np.int64)
    current = np.zeros(max_width + PULSE_SAMPLES)
    scratch = np.empty(max_width, dtype=np.int16)
    fractions = current_per_electron.ravel()
    one_window_per_block = 2 * padding + 1 >= _SCAN_BLOCK
    n_pulses = 0
    n_samples = 0
    bank_size = len(noise_bank)
    baseline_float = float(baseline)
    for r in range(len(region_left)):
        left = region_left[r]
        width = region_right[r] - left
        current[:width] = 0.0
        for i in range(region_first[r], region_last[r]):
            if offset[i] >= 0:
                a = amount[i]
                position = np.uint64(start[i] - left)
                row = np.uint64(offset[i] * PULSE_SAMPLES)
                for k in range(np.uint64(PULSE_SAMPLES)):  # a compile-time length: unrolled, vectorised
                    current[position + k] += a * fractions[row + k]
        ch = channel[region_first[r]]
        rms = noise_rms[ch]
        bank_start = noise_starts[r]
        if r + 1 < len(region_left):  # the noise bank is larger than L2: fetch the next region's
            next_start = noise_starts[r + 1]  # noise (16 float32 a cache line) while this one is built
            next_stop = min(next_start + region_right[r + 1] - region_left[r + 1], bank_size)
            for line in range(next_start, next_stop, 16):
                _prefetch(noise_bank, line)
        done = 0
        while done < width:  # the noise bank is read cyclically
            chunk = min(width - done, bank_size - bank_start)
            noise_at = np.uint64(bank_start)
            at = np.uint64(done)
            for s in range(np.uint64(chunk)):
                # baseline - trunc(signal) + rint(noise), clamped to the ADC range. In float64 (exact
                # for these integers) so it vectorises: AVX2 has no float64 -> int64 conversion.
                # Capping the signal at 1e9 ADC cannot change the clamped value.
                value = (baseline_float - np.trunc(min(current[at + s] * adc_per_current, 1e9))
                         + np.rint(noise_bank[noise_at + s] * rms))
                scratch[at + s] = np.int32(min(max(value, 0.0), float(MAX_ADC)))
            done += chunk
            bank_start = 0
        for i in range(region_first[r], region_last[r]):
            if offset[i] < 0:  # a noise-tail sample replaces the Gaussian noise sample
                position = start[i] - left
                scratch[position] = max(min(np.int64(scratch[position]), baseline - np.int64(amount[i])), 0)
        # Windows stay inside the region (which never extends past the event): only a rare
        # Gaussian-noise crossing near a region edge would reach further.
        level = baseline - threshold[ch] - 1  # ZLE: kept if baseline - raw > threshold + 1
        window_start = -1
        window_stop = -1  # inclusive, region-relative
        write = n_samples
        block = 0
        while block < width:
            block_stop = min(block + _SCAN_BLOCK, width)
            n_block = block_stop - block
            crossed = np.uint64(0)
            at = np.uint64(block)
            for s in range(np.uint64(n_block)):  # bit s: sample s of this block crosses
                crossed |= np.uint64(scratch[at + s] < level) << s
            if crossed != 0:
                first = trailing_zeros(crossed)
                last = 63 - leading_zeros(crossed)
                # All crossings of one block overlap (block <= 2 x padding + 1): only its first
                # and last crossing matter.
                crossing = block + first
                last_crossing = block + last if one_window_per_block else block_stop - 1
                while crossing <= last_crossing:
                    if scratch[crossing] < level:
                        lo = max(crossing - padding, 0)
                        hi = min(crossing + padding, width - 1)
                        if window_start >= 0 and lo <= window_stop:
                            window_stop = max(window_stop, hi)
                        else:
                            if window_start >= 0:
                                write, n_pulses = _store(window_start, window_stop, left, r, scratch, samples,
                                                         write, pulse_region, pulse_left, pulse_length,
                                                         n_pulses)
                            window_start = lo
                            window_stop = hi
                    crossing = last_crossing if one_window_per_block and crossing < last_crossing else crossing + 1
            block = block_stop
        if window_start >= 0:
            write, n_pulses = _store(window_start, window_stop, left, r, scratch, samples, write,
                                     pulse_region, pulse_left, pulse_length, n_pulses)
        n_samples = write
    return pulse_region[:n_pulses], pulse_left[:n_pulses], pulse_length[:n_pulses], n_samples


@numba.njit(cache=True, boundscheck=False, inline="always")
def _store(window_start, window_stop, region_left, region, raw, samples, write, pulse_region,
           pulse_left, pulse_length, n_pulses):
    """Copy one ZLE window (region-relative; absolute start rounded up to even, inclusive stop
    down to odd) to ``samples[write:]``."""
    first = window_start + (region_left + window_start) % 2
    last = window_stop - (1 - (region_left + window_stop) % 2)
    if last < first:
        return write, n_pulses
    length = last - first + 1
    source, target = np.uint64(first), np.uint64(write)
    for s in range(np.uint64(length)):
        samples[target + s] = raw[source + s]
    pulse_region[n_pulses] = region
    pulse_left[n_pulses] = region_left + first
    pulse_length[n_pulses] = length
    return write + length, n_pulses + 1


@dataclass(frozen=True)
class ZlePulses:
    """Stored pulses of a batch, sorted by (event, channel, left); samples concatenated in that order."""

    event: np.ndarray
    channel: np.ndarray
    left: np.ndarray
    length: np.ndarray
    samples: np.ndarray


class SampleBuffer:
    """Reusable int16 working memory for :func:`digitize` (grows, never shrinks)."""

    def __init__(self):
        self._array = np.empty(0, dtype=np.int16)

    def get(self, n: int) -> np.ndarray:
        if len(self._array) < n:
            self._array = np.empty(n + n // 4, dtype=np.int16)
        return self._array


def digitize(deposits: Deposits, event_length_samples, physics, noise_bank,
             rng: np.random.Generator, sample_buffer: SampleBuffer | None = None) -> ZlePulses:
    """Digitise sorted deposits and apply the software ZLE (threshold + 1, +-padding, even/odd).

    With a ``sample_buffer`` the returned ``samples`` are a view into its memory, valid until
    the buffer's next use; without, they are a fresh array.
    """
    event_length = np.asarray(event_length_samples, dtype=np.int64)
    padding = int(physics.zle_padding_samples)
    left, right, first, last = _regions(deposits.event, deposits.channel, deposits.start, deposits.offset,
                                        event_length, padding + 2, PULSE_SAMPLES)
    noise_starts = rng.integers(0, len(noise_bank), size=len(left))
    current_per_electron = pulse_charge_fractions(physics.sample_duration_ns) / physics.sample_duration_ns
    region_event = deposits.event[first]
    n_region_samples = int((right - left).sum())
    samples = (np.empty(n_region_samples, dtype=np.int16) if sample_buffer is None
               else sample_buffer.get(n_region_samples))
    pulse_region, pulse_left, pulse_length, n_samples = _digitize_regions(
        deposits.channel, deposits.start, deposits.offset, deposits.amount.astype(np.float64, copy=False),
        left, right, first, last, noise_starts, noise_bank, noise_rms_adc(physics), current_per_electron,
        float(physics.adc_per_electron_per_ns), int(physics.digitizer_baseline_adc),
        detector.zle_thresholds_adc(physics), padding, samples)
    samples = samples[:n_samples]
    first_of_pulse = first[pulse_region]
    return ZlePulses(region_event[pulse_region], deposits.channel[first_of_pulse], pulse_left,
                     pulse_length, samples)
