"""Peak properties (pax ``BasicProperties`` + ``SumWaveformProperties`` + the two simple posrecs).

All times are ns since the event start; ``left``/``right``/``index_of_maximum`` are samples.
The sum waveform is the hits-only TPC sum (PE/sample) over [left, right]. Single-channel peaks (lone
hits) only get ``n_contributing_channels`` (the rest NaN, or −1 for integer columns): they are dropped
after classification.

- ``range_area_decile_<i>`` = t(50 + 5i %) − t(50 − 5i %) of the area quantiles (5 = 50 % width,
  9 = 90 % width, 10 = full width); ``area_decile_from_midpoint_<j>`` = t(10j %) − t(50 %), so the
  rise time is −``area_decile_from_midpoint_1``.
- ``tight_coincidence``: distinct channels with a hit maximum within ± ``tight_coincidence_window_ns``
  of the sum-waveform maximum.
- ``center_time`` / ``time_std``: area-weighted mean / standard deviation of the sum waveform's sample
  times (positive samples). Variances of convolved shapes add, so ``time_std``² of an S2 grows by
  exactly 2 D t / v² with drift time t (docs/physics.md "S2"); quantile widths do not.
- ``x/y_weighted_sum``: area-weighted mean of the top-PMT positions (cm); ``x/y_max_pmt``: position of
  the top PMT with the most area. NaN without top area.
"""

import numpy as np
from numba import njit

from faxflow.engines.builtin.processing.hits import Hits
from faxflow.engines.builtin.processing.peaks import Clusters
from faxflow.engines.builtin.processing.sumwaveform import N_QUANTILES, area_quantile_times, build_sum_waveform

DECILE_COLUMNS = [f"range_area_decile_{i}" for i in range(11)]
MIDPOINT_COLUMNS = [f"area_decile_from_midpoint_{j}" for j in range(11)]
SCALAR_COLUMNS = [
    "left", "right", "index_of_maximum", "area", "area_fraction_top", "n_hits", "n_contributing_channels",
    "n_contributing_channels_top", "tight_coincidence", "hit_time_mean", "hit_time_std", "largest_hit_area",
    "largest_hit_channel", "center_time", "height", "x_weighted_sum", "y_weighted_sum", "x_max_pmt", "y_max_pmt",
    "time_std",
]
N_SCALARS = len(SCALAR_COLUMNS)
INTEGER_COLUMNS = {"left", "right", "index_of_maximum", "n_hits", "n_contributing_channels",
                   "n_contributing_channels_top", "tight_coincidence", "largest_hit_channel"}


def peak_properties(clusters: Clusters, hits: Hits, samples: np.ndarray, adc_to_pe: np.ndarray,
                    pmt_xy_cm: np.ndarray, n_top_channels: int, tight_coincidence_window_ns: float,
                    sample_duration_ns: float) -> dict[str, np.ndarray]:
    """Compute every peak's properties; returns column name → array (one entry per peak)."""
    return property_columns(*property_arrays(clusters, hits, samples, adc_to_pe, pmt_xy_cm, n_top_channels,
                                             tight_coincidence_window_ns, sample_duration_ns))


def property_arrays(clusters: Clusters, hits: Hits, samples: np.ndarray, adc_to_pe: np.ndarray,
                    pmt_xy_cm: np.ndarray, n_top_channels: int, tight_coincidence_window_ns: float,
                    sample_duration_ns: float) -> tuple[np.ndarray, np.ndarray]:
    """(float[N_SCALARS, n_peaks] in SCALAR_COLUMNS order, float[N_QUANTILES, n_peaks] quantile times): one
    contiguous row per column."""
    return _properties(
        clusters.order, clusters.bounds, np.asarray(hits.channel, np.int64), hits.left, hits.right,
        hits.index_of_maximum, hits.area_pe, hits.center_ns, hits.sample_offset, hits.baseline_adc, samples,
        np.asarray(adc_to_pe, np.float64), np.asarray(pmt_xy_cm, np.float64), n_top_channels,
        int(round(tight_coincidence_window_ns / sample_duration_ns)), float(sample_duration_ns))


def property_columns(scalars: np.ndarray, quantiles: np.ndarray) -> dict[str, np.ndarray]:
    """Column name → array from :func:`property_arrays`' output."""
    columns = {}
    for values, name in zip(scalars, SCALAR_COLUMNS):
        columns[name] = np.where(np.isnan(values), -1, values).astype(np.int64) if name in INTEGER_COLUMNS else values
    for i, name in enumerate(DECILE_COLUMNS):
        columns[name] = quantiles[10 + i] - quantiles[10 - i]
    for j, name in enumerate(MIDPOINT_COLUMNS):
        columns[name] = quantiles[2 * j] - quantiles[10]
    return columns


@njit(cache=True)
def _properties(order, bounds, channel, left, right, imax, area, center, sample_offset, baseline_adc, samples,
                adc_to_pe, pmt_xy, n_top, tc_window, dt_ns):
    n_peaks = len(bounds) - 1
    out = np.full((N_SCALARS, n_peaks), np.nan)
    quantiles = np.full((N_QUANTILES, n_peaks), np.nan)
    peak_quantiles = np.empty(N_QUANTILES)
    buffer = np.empty(max(right.max() + 2, 1) if len(right) else 1)
    per_channel = np.zeros(len(adc_to_pe))
    stamp = np.full(len(adc_to_pe), -1, np.int64)
    for p in range(n_peaks):
        ids = order[bounds[p]:bounds[p + 1]]
        n_channels = 0
        for h in ids:
            if stamp[channel[h]] != p:
                stamp[channel[h]] = p
                per_channel[channel[h]] = 0.0
                n_channels += 1
        row = out[:, p]
        row[6] = n_channels
        if n_channels == 1:  # a lone hit: dropped after classification, nothing else needed
            continue
        total = 0.0
        top = 0.0
        weighted_t = 0.0
        x_sum = 0.0
        y_sum = 0.0
        largest = ids[0]
        n_channels_top = 0
        for h in ids:
            ch = channel[h]
            total += area[h]
            weighted_t += area[h] * center[h]
            if ch < n_top:
                top += area[h]
                x_sum += area[h] * pmt_xy[ch, 0]
                y_sum += area[h] * pmt_xy[ch, 1]
                if per_channel[ch] == 0.0:
                    n_channels_top += 1
            if area[h] > area[largest]:
                largest = h
            per_channel[ch] += area[h]
        mean_t = weighted_t / total
        var_t = 0.0
        best_top = -1
        for h in ids:
            var_t += area[h] * (center[h] - mean_t) ** 2
            ch = channel[h]
            if ch < n_top and (best_top < 0 or per_channel[ch] > per_channel[best_top]):
                best_top = ch

        first, last = build_sum_waveform(ids, left, right, sample_offset, baseline_adc, channel, samples,
                                         adc_to_pe, buffer)
        row[0] = first
        row[1] = last
        row[3] = total
        row[4] = top / total
        row[5] = len(ids)
        row[7] = n_channels_top
        row[9] = mean_t
        row[10] = np.sqrt(var_t / total)
        row[11] = area[largest]
        row[12] = channel[largest]
        if top > 0:
            row[15] = x_sum / top
            row[16] = y_sum / top
            row[17] = pmt_xy[best_top, 0]
            row[18] = pmt_xy[best_top, 1]

        n = last - first + 1
        peak_max = 0
        weighted_s = 0.0
        weighted_s2 = 0.0
        positive = 0.0
        for i in range(n):
            if buffer[i] > buffer[peak_max]:
                peak_max = i
            if buffer[i] > 0:
                weighted_s += buffer[i] * i
                weighted_s2 += buffer[i] * i * i
                positive += buffer[i]
        area_quantile_times(buffer, n, first, dt_ns, peak_quantiles)
        quantiles[:, p] = peak_quantiles
        peak_max_sample = first + peak_max

        n_tight = 0
        mark = -2 - p  # distinct from the channel-count stamps
        for h in ids:
            if abs(imax[h] - peak_max_sample) <= tc_window and stamp[channel[h]] != mark:
                stamp[channel[h]] = mark
                n_tight += 1

        row[2] = peak_max_sample
        row[8] = n_tight
        if positive > 0:
            row[13] = (first + weighted_s / positive) * dt_ns
            mean_s = weighted_s / positive
            row[19] = np.sqrt(max(weighted_s2 / positive - mean_s * mean_s, 0.0)) * dt_ns
        row[14] = buffer[peak_max]
    return out, quantiles
