"""Clustering hits into peaks: pax ``GapSizeClustering`` + ``NaturalBreaksClustering`` (docs/physics.md
"Processing").

Per event, hits sorted by index of maximum:

1. Pass 1 splits at gaps > ``s1_cluster_gap_ns`` between successive hit maxima. A cluster is kept
   as a peak if it has < 4 contributing channels, or if its sum waveform is S1-like (rise time
   t50 − t10 < ``s1_max_rise_time_ns`` and 90 % width < ``s1_max_width_90p_ns``).
2. Pass 2 clusters all other hits with gaps > ``s2_cluster_gap_ns``.
3. Every cluster is then split recursively by natural breaks: hits sorted by centre, a split is
   tried at each gap of > 10 ns between the left part's last sample and the right part's first;
   goodness = 1 − (SAD_left + SAD_right) / SAD_all, with SAD = Σ max(area·|centre − mean|, the hit's
   own spread = area × its RMS time width); the best split is made if goodness exceeds pax's
   threshold curve of log10(area).

The result is a permutation of the hits (``order``) and peak boundaries into it; hits of a peak
are contiguous in ``order`` and sorted by centre.

Not reproduced: ``RejectNoiseHits``, ``LocalMinimumClustering`` (it needs > 25 PE/sample on both
sides of a minimum, which only much larger S2s than the MC campaigns produce reach) and
``TailSeparation``; S2 trains are handled by natural breaks alone.
"""

from dataclasses import dataclass

import numpy as np
from numba import njit

from faxflow.engines.builtin.parameters import ProcessingParameters
from faxflow.engines.builtin.processing.hits import Hits
from faxflow.engines.builtin.processing.sumwaveform import (
    N_QUANTILES,
    area_quantile_times,
    build_sum_waveform,
    rise_time_and_width90,
)
from faxflow.engines.builtin.radix import RADIX_COUNTS, stable_argsort, stable_argsort_values

MIN_S2_LIKE_CHANNELS = 4  # pass-1 clusters with fewer channels are always kept
NATURAL_BREAKS_MIN_GAP_NS = 10.0
# pax HEAD split threshold as a function of log10(area / PE)
NATURAL_BREAKS_LOG10_AREA = np.array([0.0, 1.477, 1.903, 2.0, 2.30, 2.60, 3.30, 4.30, 5.30])
NATURAL_BREAKS_THRESHOLD = np.array([1.0, 0.99, 0.97, 0.94, 0.82, 0.70, 0.56, 0.45, 0.45])


@dataclass(frozen=True)
class Clusters:
    order: np.ndarray  # int64 permutation of the hits
    bounds: np.ndarray  # int64 [n_peaks + 1]; peak p has hits order[bounds[p]:bounds[p + 1]]
    event: np.ndarray  # int64 [n_peaks], event index

    def __len__(self) -> int:
        return len(self.event)


def cluster_hits(hits: Hits, n_events: int, samples: np.ndarray, adc_to_pe: np.ndarray,
                 processing: ProcessingParameters, sample_duration_ns: float, first_event: int = 0) -> Clusters:
    """Group the hits of each event into peaks; ``hits`` must be ordered by event (as found) and
    belong to events first_event .. first_event + n_events − 1 (``Clusters.event`` counts from 0 there)."""
    event_bounds = np.searchsorted(hits.event, np.arange(first_event, first_event + n_events + 1))
    order, bounds, event = _cluster(
        event_bounds, hits.index_of_maximum, np.asarray(hits.channel, np.int64), hits.left, hits.right,
        hits.sample_offset, hits.baseline_adc, hits.area_pe, hits.center_ns, hits.spread_pe_ns, samples,
        np.asarray(adc_to_pe, np.float64), len(adc_to_pe), float(sample_duration_ns),
        int(processing.s1_cluster_gap_ns // sample_duration_ns),
        int(processing.s2_cluster_gap_ns // sample_duration_ns),
        processing.s1_max_rise_time_ns, processing.s1_max_width_90p_ns,
        NATURAL_BREAKS_LOG10_AREA, NATURAL_BREAKS_THRESHOLD)
    return Clusters(order=order, bounds=bounds, event=event)


@njit(cache=True)
def _n_channels(hit_ids, channel, stamp, mark):
    n = 0
    for h in hit_ids:
        if stamp[channel[h]] != mark:
            stamp[channel[h]] = mark
            n += 1
    return n


@njit(cache=True)
def _cluster(event_bounds, imax, channel, left, right, sample_offset, baseline_adc, area, center, spread,
             samples, adc_to_pe, n_channels, dt_ns, gap1, gap2, max_rise_ns, max_width90_ns, nb_x, nb_y):
    n_hits = len(imax)
    by_time = np.empty(n_hits, np.int64)
    order = np.empty(n_hits, np.int64)
    bounds = np.empty(n_hits + 1, np.int64)
    peak_event = np.empty(n_hits, np.int64)
    bounds[0] = 0
    n_peaks = 0
    n_ordered = 0
    rest = np.empty(n_hits, np.int64)
    radix_scratch = np.empty(n_hits, np.int64)
    radix_counts = np.empty(RADIX_COUNTS, np.int64)
    buffer = np.empty(max(right.max() + 2, 1) if n_hits else 1)
    quantiles = np.empty(N_QUANTILES)
    stamp = np.full(n_channels, -1, np.int64)
    mark = 0
    # scratch for natural breaks
    stack = np.empty((n_hits + 1, 2), np.int64)
    final = np.empty((n_hits + 1, 2), np.int64)
    split_scratch = np.empty((5, n_hits + 1))
    id_scratch = np.empty(n_hits, np.int64)

    for e in range(len(event_bounds) - 1):
        a, b = event_bounds[e], event_bounds[e + 1]
        if a == b:
            continue
        stable_argsort(imax[a:b], by_time[a:b], radix_scratch, radix_counts)
        by_time[a:b] += a
        first_cluster = n_peaks
        n_rest = 0
        # pass 1: S1-like clusters
        start = a
        for k in range(a + 1, b + 1):
            if k < b and imax[by_time[k]] - imax[by_time[k - 1]] <= gap1:
                continue
            ids = by_time[start:k]
            mark += 1
            keep = _n_channels(ids, channel, stamp, mark) < MIN_S2_LIKE_CHANNELS
            if not keep:
                first, last = build_sum_waveform(ids, left, right, sample_offset, baseline_adc, channel,
                                                 samples, adc_to_pe, buffer)
                area_quantile_times(buffer, last - first + 1, first, dt_ns, quantiles)
                rise, width90 = rise_time_and_width90(quantiles)
                keep = rise < max_rise_ns and width90 < max_width90_ns
            if keep:
                order[n_ordered:n_ordered + len(ids)] = ids
                n_ordered += len(ids)
                n_peaks += 1
                bounds[n_peaks] = n_ordered
            else:
                rest[n_rest:n_rest + len(ids)] = ids
                n_rest += len(ids)
            start = k
        # pass 2: everything else, larger gaps
        start = 0
        for k in range(1, n_rest + 1):
            if k < n_rest and imax[rest[k]] - imax[rest[k - 1]] <= gap2:
                continue
            order[n_ordered:n_ordered + k - start] = rest[start:k]
            n_ordered += k - start
            n_peaks += 1
            bounds[n_peaks] = n_ordered
            start = k
        # natural breaks on each cluster of this event
        n_final = 0
        for c in range(first_cluster, n_peaks):
            if bounds[c + 1] - bounds[c] == 1:
                final[n_final, 0], final[n_final, 1] = bounds[c], bounds[c + 1]
                n_final += 1
                continue
            n_final = _natural_breaks(order, bounds[c], bounds[c + 1], left, right, area, center, spread, dt_ns,
                                      nb_x, nb_y, stack, final, n_final, split_scratch, id_scratch)
        # the segments tile this event's part of `order`; re-emit them as peaks in that order
        n_peaks = first_cluster
        for j in stable_argsort_values(final[:n_final, 0]):
            n_peaks += 1
            bounds[n_peaks] = final[j, 1]
            peak_event[n_peaks - 1] = e
    return order[:n_ordered], bounds[:n_peaks + 1].copy(), peak_event[:n_peaks].copy()


@njit(cache=True)
def _natural_breaks(order, lo, hi, left, right, area, center, spread, dt_ns, nb_x, nb_y, stack, final, n_final,
                    split_scratch, id_scratch):
    """Sort order[lo:hi] by hit centre and split it recursively; append segments to ``final``.
    ``split_scratch`` (float[5, ≥ hi − lo + 1]) and ``id_scratch`` (int64[≥ hi − lo]) are overwritten."""
    n = hi - lo
    centers = split_scratch[0, :n]
    for i in range(n):
        centers[i] = center[order[lo + i]]
    by_center = stable_argsort_values(centers)
    for i in range(n):
        id_scratch[i] = order[lo + by_center[i]]
    order[lo:hi] = id_scratch[:n]
    n_stack = 1
    stack[0, 0], stack[0, 1] = lo, hi
    while n_stack > 0:
        n_stack -= 1
        s_lo, s_hi = stack[n_stack, 0], stack[n_stack, 1]
        k = _best_split(order[s_lo:s_hi], left, right, area, center, spread, dt_ns, nb_x, nb_y, split_scratch,
                        id_scratch)
        if k > 0:
            stack[n_stack, 0], stack[n_stack, 1] = s_lo, s_lo + k
            stack[n_stack + 1, 0], stack[n_stack + 1, 1] = s_lo + k, s_hi
            n_stack += 2
        else:
            final[n_final, 0], final[n_final, 1] = s_lo, s_hi
            n_final += 1
    return n_final


@njit(cache=True)
def _best_split(ids, left, right, area, center, spread, dt_ns, nb_x, nb_y, scratch, int_scratch):
    """Index k of the accepted split ids[:k] | ids[k:], or 0 for no split. ``ids`` sorted by centre;
    ``scratch`` (float[5, ≥ len(ids) + 1]) and ``int_scratch`` (int64[≥ len(ids)]) are overwritten."""
    n = len(ids)
    if n < 2:
        return 0
    c = scratch[0, :n]
    a = scratch[1, :n]
    s = scratch[2, :n]
    cum_a = scratch[3, :n + 1]
    cum_ac = scratch[4, :n + 1]
    sufmin_left = int_scratch[:n]
    for i in range(n):
        c[i] = center[ids[i]]
        a[i] = area[ids[i]]
        s[i] = spread[ids[i]]
    cum_a[0] = 0.0
    cum_ac[0] = 0.0
    d_max = 0.0
    for i in range(n):
        cum_a[i + 1] = cum_a[i] + a[i]
        cum_ac[i + 1] = cum_ac[i] + a[i] * c[i]
        d_max = max(d_max, s[i] / a[i])
    sad_all = _sad(c, a, s, d_max, cum_a, cum_ac, 0, n)
    if sad_all <= 0:
        return 0
    sufmin_left[n - 1] = left[ids[n - 1]]
    for i in range(n - 2, -1, -1):
        sufmin_left[i] = min(sufmin_left[i + 1], left[ids[i]])
    best_k = 0
    best_goodness = -1.0
    max_right = right[ids[0]]
    for k in range(1, n):
        if (sufmin_left[k] - max_right - 1) * dt_ns > NATURAL_BREAKS_MIN_GAP_NS:
            sad_split = _sad(c, a, s, d_max, cum_a, cum_ac, 0, k) + _sad(c, a, s, d_max, cum_a, cum_ac, k, n)
            goodness = 1 - sad_split / sad_all
            if goodness > best_goodness:
                best_goodness = goodness
                best_k = k
        max_right = max(max_right, right[ids[k]])
    if best_k == 0:
        return 0
    threshold = _interpolate(np.log10(max(cum_a[n], 1.0)), nb_x, nb_y)
    return best_k if best_goodness > threshold else 0


@njit(cache=True)
def _interpolate(x, xp, fp):
    """``np.interp(x, xp, fp)`` for a finite x and increasing xp, with its arithmetic (bit for bit)."""
    if x < xp[0]:
        return fp[0]
    last = len(xp) - 1
    if x > xp[last]:
        return fp[last]
    j = 0
    while j < last and xp[j + 1] <= x:
        j += 1
    if j == last or xp[j] == x:
        return fp[j]
    return (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]) * (x - xp[j]) + fp[j]


@njit(cache=True)
def _sad(c, a, s, d_max, cum_a, cum_ac, i0, i1):
    """Σ max(a·|c − mean|, s) over hits i0..i1-1 (sorted by c); mean is area-weighted."""
    total_a = cum_a[i1] - cum_a[i0]
    mean = (cum_ac[i1] - cum_ac[i0]) / total_a
    p = i0 + np.searchsorted(c[i0:i1], mean)
    result = (mean * (cum_a[p] - cum_a[i0]) - (cum_ac[p] - cum_ac[i0])
              + (cum_ac[i1] - cum_ac[p]) - mean * (cum_a[i1] - cum_a[p]))
    j = p - 1
    while j >= i0 and mean - c[j] < d_max:
        result += max(0.0, s[j] - a[j] * (mean - c[j]))
        j -= 1
    j = p
    while j < i1 and c[j] - mean < d_max:
        result += max(0.0, s[j] - a[j] * (c[j] - mean))
        j += 1
    return result
