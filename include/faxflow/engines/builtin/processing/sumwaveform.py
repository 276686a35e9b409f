"""Hits-only sum waveforms and their area quantiles, shared by clustering and peak properties."""

import numpy as np
from numba import njit

# Area fractions 0, 5, ..., 100 %; index 2i is the i-th decile.
N_QUANTILES = 21


@njit(cache=True)
def build_sum_waveform(hit_ids, left, right, sample_offset, baseline_adc, channel, samples, adc_to_pe, buffer):
    """Sum the PE/sample waveforms of ``hit_ids`` into ``buffer``; return (first, last) sample (inclusive)."""
    first = left[hit_ids[0]]
    last = right[hit_ids[0]]
    for h in hit_ids:
        first = min(first, left[h])
        last = max(last, right[h])
    buffer[: last - first + 1] = 0.0
    for h in hit_ids:
        to_pe = adc_to_pe[channel[h]]
        base = baseline_adc[h]
        n = right[h] - left[h] + 1
        # slices indexed from 0 let the compiler drop negative-index checks and vectorise
        hit = samples[sample_offset[h]:sample_offset[h] + n]
        target = buffer[left[h] - first:left[h] - first + n]
        for s in range(n):
            target[s] += (base - hit[s]) * to_pe
    return first, last


@njit(cache=True)
def area_quantile_times(buffer, n_samples, first_sample, dt_ns, out):
    """Times (ns since event start) at which 0, 5, …, 100 % of the area has accumulated.

    The area of a sample is spread uniformly over it; each quantile is the first crossing of the
    cumulative (signed, so baseline noise in hit tails cancels) area. ``out`` gets NaN if the
    total area is not positive.
    """
    total = 0.0
    for i in range(n_samples):
        total += buffer[i]
    if total <= 0:
        out[:] = np.nan
        return
    q = 0
    level = 0.0  # total * q / (N_QUANTILES - 1), computed once per quantile
    cumulative = 0.0
    last_positive = 0
    for i in range(n_samples):
        w = buffer[i]
        if w > 0:
            last_positive = i
            while q < N_QUANTILES and cumulative + w >= level:
                fraction = (level - cumulative) / w
                out[q] = (first_sample + i + max(fraction, 0.0)) * dt_ns
                q += 1
                level = total * q / (N_QUANTILES - 1)
        cumulative += w
    while q < N_QUANTILES:  # float rounding can leave the 100 % point unreached
        out[q] = (first_sample + last_positive + 1) * dt_ns
        q += 1


@njit(cache=True)
def rise_time_and_width90(quantiles):
    """(t50 − t10, t95 − t5) in ns from the 21 quantile times."""
    return quantiles[10] - quantiles[2], quantiles[19] - quantiles[1]
