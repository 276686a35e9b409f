"""Hit finding on ZLE pulses (pax ``PulseProperties`` + ``HitFinder``, docs/physics.md "Processing").

Per pulse, on the inverted waveform w = baseline − raw (ADC):

- baseline = mean of the first ``baseline_samples`` samples (all of them if the pulse is shorter);
- noise σ = RMS about the baseline of the samples below it (w < 0);
- threshold = int(max(``hit_threshold_sigma`` σ, ``hit_threshold_min_adc``)); a hit is a run of
  samples with w > threshold (strict);
- each hit is extended ``hit_extension_left/right_samples`` without overlapping its neighbours
  or leaving the pulse; hits with area ≤ 0 PE are dropped; dead channels (adc_to_pe = 0) are skipped.

Times are sample indices since the event start (×``sample_duration_ns`` for ns).
"""

from dataclasses import dataclass

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from faxflow.engines.builtin.parameters import ProcessingParameters


@dataclass(frozen=True)
class Hits:
    """One row per hit, ordered by (event, channel, left). Sample indices are since event start."""

    event: np.ndarray  # int64, index into the raw data's per-event arrays (not the event number)
    channel: np.ndarray  # int16
    left: np.ndarray  # int64, first sample, inclusive
    right: np.ndarray  # int64, last sample, inclusive
    index_of_maximum: np.ndarray  # int64
    area_pe: np.ndarray  # float64
    center_ns: np.ndarray  # float64, area-weighted time since event start
    height_pe: np.ndarray  # float64, PE/sample at the maximum
    spread_pe_ns: np.ndarray  # float64, area × RMS time spread of the hit's own samples (PE·ns)
    sample_offset: np.ndarray  # int64, index of sample `left` in the raw samples array
    baseline_adc: np.ndarray  # float64, the pulse's baseline

    def __len__(self) -> int:
        return len(self.area_pe)


def find_hits(samples: np.ndarray, pulse_event: np.ndarray, pulse_channel: np.ndarray,
              pulse_left: np.ndarray, pulse_length: np.ndarray, pulse_offset: np.ndarray,
              adc_to_pe: np.ndarray, processing: ProcessingParameters,
              sample_duration_ns: float) -> Hits:
    """Find the hits of every pulse. ``pulse_event`` is the event index of each pulse."""
    columns = _find_hits(
        samples, *(np.asarray(a, np.int64) for a in (pulse_event, pulse_channel, pulse_left, pulse_length,
                                                      pulse_offset)),
        np.asarray(adc_to_pe, np.float64), processing.baseline_samples, processing.hit_threshold_sigma,
        processing.hit_threshold_min_adc, processing.hit_extension_left_samples,
        processing.hit_extension_right_samples, float(sample_duration_ns))
    (event, channel, left, right, imax, area, center, height, spread, offset, baseline) = columns
    return Hits(event=event, channel=channel.astype(np.int16), left=left, right=right,
                index_of_maximum=imax, area_pe=area, center_ns=center, height_pe=height,
                spread_pe_ns=spread, sample_offset=offset, baseline_adc=baseline)


@njit(cache=True)
def _grow(array, size):
    grown = np.empty(max(2 * len(array), size), array.dtype)
    grown[:len(array)] = array
    return grown


# Kernels index a pulse's own slice of the samples with loop counters from 0: the compiler then
# drops the negative-index checks and vectorises the loops (3x faster than indexing the whole array).


@njit(cache=True, fastmath=True)
def _pulse_noise(pulse, n_base, base_sum):
    """(σ in ADC, lowest raw sample) of one pulse's samples, in one vectorisable pass.

    A sample is below the baseline iff raw > t = floor(Σ baseline samples / n_base) (raw is an
    integer). With S = Σ baseline samples, Σ (n_base·raw − S)² over those k samples is
    n_base²·Σ raw² + k·S² − 2·n_base·S·Σ raw: integer sums, exact in int64 while
    len(pulse)·n_base² ≤ ``_MAX_EXACT_SQUARE_SUM`` (the caller checks), so σ is that of the
    per-sample differences (baseline − raw)².
    """
    t = np.int32(base_sum // n_base)
    n_below = np.int32(0)
    sum_raw = np.int64(0)
    sum_raw_sq = np.int64(0)
    lowest = np.int32(32767)
    for i in range(len(pulse)):
        raw = np.int32(pulse[i])
        below = raw > t
        n_below += np.int32(below)
        sum_raw += np.int64(raw if below else 0)
        sum_raw_sq += np.int64(raw * raw if below else 0)
        lowest = min(lowest, raw)
    n, s = np.int64(n_base), np.int64(base_sum)
    sum_sq = (n * n * sum_raw_sq + np.int64(n_below) * s * s) - 2 * n * s * sum_raw
    sigma = np.sqrt(np.float64(sum_sq) / n_below) / n_base if n_below > 0 else 0.0
    return sigma, lowest


_MAX_EXACT_SQUARE_SUM = 1 << 30  # len(pulse)·n_base²: each partial sum of _pulse_noise < 2⁶²


@njit(cache=True)
def _pulse_noise_wide(pulse, n_base, base_sum):
    """_pulse_noise in int64 with a float64 sum of d², for (unusually) long baselines or pulses."""
    sum_sq = 0.0
    n_below = 0
    lowest = np.int16(32767)
    for i in range(len(pulse)):
        raw = pulse[i]
        d = max(n_base * np.int64(raw) - base_sum, 0)
        sum_sq += float(d) * float(d)
        n_below += d > 0
        lowest = min(lowest, raw)
    sigma = np.sqrt(sum_sq / n_below) / n_base if n_below > 0 else 0.0
    return sigma, lowest


@njit(cache=True)
def _runs_at_or_below(pulse, cut, starts, stops):
    """Number of runs of samples ≤ ``cut``, their first and last sample written to ``starts``/``stops``.

    Each block of 64 samples becomes a bit mask and runs are read off it with trailing-zero counts:
    no branch per sample, whose outcome the CPU could not predict inside a hit."""
    n = len(pulse)
    n_runs = 0
    in_run = False
    for block in range(0, n, 64):
        samples = pulse[block:min(block + 64, n)]
        n_block = len(samples)
        bits = np.uint64(0)
        for s in range(n_block):
            bits |= np.uint64(samples[s] <= cut) << np.uint64(s)
        position = 0
        while position < n_block:
            if in_run:  # the first sample above the cut ends the run
                rest = ~bits >> np.uint64(position)
                if rest == 0:
                    break
                position += trailing_zeros(rest)
                if position >= n_block:
                    break
                stops[n_runs] = block + position - 1
                n_runs += 1
                in_run = False
            else:
                rest = bits >> np.uint64(position)
                if rest == 0:
                    break
                position += trailing_zeros(rest)
                starts[n_runs] = block + position
                in_run = True
    if in_run:
        stops[n_runs] = n - 1
        n_runs += 1
    return n_runs


@njit(cache=True)
def _find_hits(samples, pulse_event, pulse_channel, pulse_left, pulse_length, pulse_offset,
               adc_to_pe, baseline_samples, thr_sigma, thr_min, ext_left, ext_right, dt_ns):
    """One pass over the pulses: baseline, noise, threshold crossings, extension and hit properties.

    The hit columns grow here, between calls of :func:`_pulse_hits`, which stops before a pulse
    that might not fit: an array reassigned inside the pulse loop would cost reference-count
    updates on every pulse."""
    n_pulses = len(pulse_left)
    capacity = 2 * n_pulses + 16
    event = np.empty(capacity, np.int64)
    channel = np.empty(capacity, np.int64)
    left = np.empty(capacity, np.int64)
    right = np.empty(capacity, np.int64)
    imax = np.empty(capacity, np.int64)
    area = np.empty(capacity)
    center = np.empty(capacity)
    height = np.empty(capacity)
    spread_out = np.empty(capacity)
    offset = np.empty(capacity, np.int64)
    baseline_out = np.empty(capacity)
    max_length = pulse_length.max() if n_pulses else 0
    starts = np.empty(max_length // 2 + 2, np.int64)
    stops = np.empty(max_length // 2 + 2, np.int64)
    p, n_hits = 0, 0
    while True:
        p, n_hits = _pulse_hits(p, n_hits, samples, pulse_event, pulse_channel, pulse_left, pulse_length,
                                pulse_offset, adc_to_pe, baseline_samples, thr_sigma, thr_min, ext_left, ext_right,
                                dt_ns, starts, stops, event, channel, left, right, imax, area, center, height,
                                spread_out, offset, baseline_out)
        if p == n_pulses:
            break
        size = n_hits + _max_runs(pulse_length[p])
        event, channel = _grow(event, size), _grow(channel, size)
        left, right = _grow(left, size), _grow(right, size)
        imax, area, center, height = _grow(imax, size), _grow(area, size), _grow(center, size), _grow(height, size)
        spread_out, offset, baseline_out = _grow(spread_out, size), _grow(offset, size), _grow(baseline_out, size)
    return (event[:n_hits], channel[:n_hits], left[:n_hits], right[:n_hits], imax[:n_hits], area[:n_hits],
            center[:n_hits], height[:n_hits], spread_out[:n_hits], offset[:n_hits], baseline_out[:n_hits])


@njit(cache=True, inline="always")
def _max_runs(length):
    return (length + 1) // 2  # runs are at least one sample apart


@njit(cache=True)
def _pulse_hits(first_pulse, n_hits, samples, pulse_event, pulse_channel, pulse_left, pulse_length, pulse_offset,
                adc_to_pe, baseline_samples, thr_sigma, thr_min, ext_left, ext_right, dt_ns, starts, stops,
                event, channel, left, right, imax, area, center, height, spread_out, offset, baseline_out):
    """Hits of pulses first_pulse, … into the columns from row n_hits on, until a pulse's hits might
    not fit; returns (that pulse, or the number of pulses, and the new number of hits)."""
    for p in range(first_pulse, len(pulse_left)):
        if n_hits + _max_runs(pulse_length[p]) > len(area):
            return p, n_hits
        length = pulse_length[p]
        to_pe = adc_to_pe[pulse_channel[p]]
        if to_pe == 0 or length == 0:
            continue
        off = pulse_offset[p]
        pulse = samples[off:off + length]
        n_base = min(baseline_samples, length)
        base_sum = 0
        for i in range(n_base):
            base_sum += np.int64(pulse[i])
        base = base_sum / n_base
        if length * n_base * n_base <= _MAX_EXACT_SQUARE_SUM:
            sigma, lowest = _pulse_noise(pulse, n_base, base_sum)
        else:
            sigma, lowest = _pulse_noise_wide(pulse, n_base, base_sum)
        threshold = float(int(max(thr_sigma * sigma, thr_min)))
        if not base - lowest > threshold:
            continue
        # runs of w = base − raw > threshold (inclusive pulse-sample bounds). base − threshold is an
        # integer or ≥ 1/n_base away from one, so for integer raw: w > threshold ⇔ raw ≤ cut.
        cut = np.int16(np.ceil(base - threshold) - 1)
        n_runs = _runs_at_or_below(pulse, cut, starts, stops)

        # extend the runs into hits (no overlap, within the pulse) and measure them
        start = pulse_left[p]
        previous_right = -1
        for h in range(n_runs):
            lo = max(starts[h] - ext_left, previous_right + 1, 0)
            hi = min(stops[h] + ext_right, length - 1)
            if h + 1 < n_runs:
                hi = min(hi, starts[h + 1] - 1)
            previous_right = hi
            # integer sums of raw, raw·t, raw·t² (t = i − lo) are exact; w = base − raw
            n = hi - lo + 1
            sum_raw = 0
            sum_rt = 0
            sum_rt2 = 0
            best = 0  # first t of the lowest raw sample
            hit_lowest = np.int64(pulse[lo])
            for t in range(n):
                raw = np.int64(pulse[lo + t])
                sum_raw += raw
                sum_rt += raw * t
                sum_rt2 += raw * t * t
                if raw < hit_lowest:
                    hit_lowest = raw
                    best = t
            sum_t = n * (n - 1) / 2
            sum_t2 = (n - 1) * n * (2 * n - 1) / 6
            total = n * base - sum_raw
            if total <= 0:
                continue
            weighted_t = base * sum_t - sum_rt
            weighted_t2 = base * sum_t2 - sum_rt2
            best_w = base - pulse[lo + best]
            center_sample = lo + weighted_t / total
            spread = total * np.sqrt(max(weighted_t2 / total - (weighted_t / total) ** 2, 0.0))
            best += lo
            event[n_hits] = pulse_event[p]
            channel[n_hits] = pulse_channel[p]
            left[n_hits] = start + lo
            right[n_hits] = start + hi
            imax[n_hits] = start + best
            area[n_hits] = total * to_pe
            center[n_hits] = (start + center_sample) * dt_ns
            height[n_hits] = best_w * to_pe
            spread_out[n_hits] = spread * to_pe * dt_ns
            offset[n_hits] = off + lo
            baseline_out[n_hits] = base
            n_hits += 1
    return len(pulse_left), n_hits
