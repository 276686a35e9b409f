"""Hit finding on ZLE pulses (pax ``PulseProperties`` + ``HitFinder``, domain-reference §5.1).

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
        samples, pulse_event.astype(np.int64), pulse_channel.astype(np.int64),
        pulse_left.astype(np.int64), pulse_length.astype(np.int64), pulse_offset.astype(np.int64),
        adc_to_pe.astype(np.float64), processing.baseline_samples, processing.hit_threshold_sigma,
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


@njit(cache=True)
def _scan_pulse(samples, offset, length, baseline, threshold, starts, stops, n):
    """Write runs of w > threshold (inclusive pulse-sample bounds) to starts/stops from index n.

    The arrays must have room for (length + 1) // 2 more runs. Returns the new n and the noise σ
    (RMS about the baseline of the samples below it, 0 if there are none) in ADC.
    """
    sum_sq = 0.0
    n_below = 0
    inside = False
    for i in range(length):
        w = baseline - samples[offset + i]
        if w < 0:
            sum_sq += w * w
            n_below += 1
        above = w > threshold
        if above != inside:
            if above:
                starts[n] = i
            else:
                stops[n] = i - 1
                n += 1
            inside = above
    if inside:
        stops[n] = length - 1
        n += 1
    return n, np.sqrt(sum_sq / n_below) if n_below > 0 else 0.0


@njit(cache=True, fastmath=True)
def _find_hits(samples, pulse_event, pulse_channel, pulse_left, pulse_length, pulse_offset,
               adc_to_pe, baseline_samples, thr_sigma, thr_min, ext_left, ext_right, dt_ns):
    n_pulses = len(pulse_left)
    baselines = np.zeros(n_pulses)
    first_interval = np.zeros(n_pulses + 1, np.int64)
    starts = np.empty(4 * n_pulses + 16, np.int64)
    stops = np.empty(4 * n_pulses + 16, np.int64)
    lowest_threshold = float(int(thr_min))
    n = 0
    # pass 1: baseline, noise, threshold crossings
    for p in range(n_pulses):
        first_interval[p] = n
        length = pulse_length[p]
        if adc_to_pe[pulse_channel[p]] == 0 or length == 0:
            continue
        off = pulse_offset[p]
        n_base = min(baseline_samples, length)
        baseline = 0.0
        for i in range(n_base):
            baseline += samples[off + i]
        baseline /= n_base
        baselines[p] = baseline
        if n + (length + 1) // 2 > len(starts):
            starts = _grow(starts, n + (length + 1) // 2)
            stops = _grow(stops, n + (length + 1) // 2)
        # scan at the lowest possible threshold; scan again if the pulse's noise raises it
        n, sigma = _scan_pulse(samples, off, length, baseline, lowest_threshold, starts, stops, n)
        threshold = float(int(max(thr_sigma * sigma, thr_min)))
        if threshold > lowest_threshold:
            n, _ = _scan_pulse(samples, off, length, baseline, threshold, starts, stops, first_interval[p])
    first_interval[n_pulses] = n

    event = np.empty(n, np.int64)
    channel = np.empty(n, np.int64)
    left = np.empty(n, np.int64)
    right = np.empty(n, np.int64)
    imax = np.empty(n, np.int64)
    area = np.empty(n)
    center = np.empty(n)
    height = np.empty(n)
    spread_out = np.empty(n)
    offset = np.empty(n, np.int64)
    baseline_out = np.empty(n)

    # pass 2: extend the crossings into hits and measure them
    n_hits = 0
    for p in range(n_pulses):
        a, b = first_interval[p], first_interval[p + 1]
        off = pulse_offset[p]
        length = pulse_length[p]
        base = baselines[p]
        to_pe = adc_to_pe[pulse_channel[p]]
        previous_right = -1
        for h in range(a, b):
            lo = max(starts[h] - ext_left, previous_right + 1, 0)
            hi = min(stops[h] + ext_right, length - 1)
            if h + 1 < b:
                hi = min(hi, starts[h + 1] - 1)
            previous_right = hi
            total = 0.0
            weighted_t = 0.0
            weighted_t2 = 0.0
            best = lo
            lowest_raw = samples[off + lo]
            for i in range(lo, hi + 1):
                raw = samples[off + i]
                w = base - raw
                t = float(i - lo)
                total += w
                weighted_t += w * t
                weighted_t2 += w * t * t
                if raw < lowest_raw:
                    lowest_raw = raw
                    best = i
            best_w = base - lowest_raw
            if total <= 0:
                continue
            center_sample = lo + weighted_t / total
            spread = total * np.sqrt(max(weighted_t2 / total - (weighted_t / total) ** 2, 0.0))
            start = pulse_left[p]
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
    return (event[:n_hits], channel[:n_hits], left[:n_hits], right[:n_hits], imax[:n_hits], area[:n_hits],
            center[:n_hits], height[:n_hits], spread_out[:n_hits], offset[:n_hits], baseline_out[:n_hits])
