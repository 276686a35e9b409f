"""Kernels of the S2 top pattern (``detector.lightmaps.s2_top_pattern``), the one home of its formula:
the pattern itself (one pass per position, no [n, 127] temporaries, the same values as the numpy
expression it replaces) and its log-likelihood for the position fit (``processing.posrec``)."""

import numba
import numpy as np

from faxflow.engines.builtin import kernel_cache

kernel_cache.use()  # before its kernel is defined: no kernel package may have been imported yet

_PAIRWISE_LANES = 8


@numba.njit(cache=True, boundscheck=False)
def pattern_rows(x, y, pmt_x, pmt_y, live, height_sq):
    """float64[n, m]: (1 + d^2 / height_sq)^-1.5 for live PMTs (0 for dead ones), each row divided
    by its sum. The row sum is numpy's pairwise summation of a row shorter than its 128-value
    block (8 running sums, combined in pairs, then the remainder), so results match numpy's
    ``weights / weights.sum(axis=1, keepdims=True)`` bit for bit."""
    n, m = len(x), len(pmt_x)
    out = np.empty((n, m))
    lanes = np.empty(_PAIRWISE_LANES)
    paired = m - m % _PAIRWISE_LANES
    for i in range(n):
        row = out[i]
        for j in range(m):
            if live[j]:
                dx = x[i] - pmt_x[j]
                dy = y[i] - pmt_y[j]
                row[j] = (1.0 + (dx * dx + dy * dy) / height_sq) ** -1.5
            else:
                row[j] = 0.0
        if m < _PAIRWISE_LANES:
            total = 0.0
            for j in range(m):
                total += row[j]
        else:
            for k in range(_PAIRWISE_LANES):
                lanes[k] = row[k]
            for j in range(_PAIRWISE_LANES, paired, _PAIRWISE_LANES):
                for k in range(_PAIRWISE_LANES):
                    lanes[k] += row[j + k]
            total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
            for j in range(paired, m):
                total += row[j]
        for j in range(m):
            row[j] /= total
    return out


@numba.njit(cache=True)
def log_likelihood_rows(observed, xy, pmt_xy, live, height_sq_cm2):
    """float64[len(xy)]: Σ_j o_j ln p_j(x, y) of the pattern of :func:`pattern_rows` at each trial
    position ``xy[i]`` for the observed top areas ``observed[i // (len(xy) // len(observed))]``
    (per top channel; ``live`` indexes the live ones, ``pmt_xy`` [2, n live]), without the [n, 127]
    pattern: with u_j = 1 + d_j²/h², the pattern is p_j = u_j^−3/2 / Σ_live u^−3/2 on live PMTs, so
    Σ o_j ln p_j = −3/2 Σ o_j ln u_j − O ln Σ_live u^−3/2 (dead PMTs see no light: o_j = 0)."""
    n_per_row = len(xy) // len(observed)
    out = np.empty(len(xy))
    for i in range(len(xy)):
        o = observed[i // n_per_row]
        weight_sum = 0.0
        weighted_log = 0.0
        total = 0.0
        for k in range(len(live)):
            dx = xy[i, 0] - pmt_xy[0, k]
            dy = xy[i, 1] - pmt_xy[1, k]
            u = 1.0 + (dx * dx + dy * dy) / height_sq_cm2
            weight_sum += 1.0 / (u * np.sqrt(u))
            light = o[live[k]]
            if light > 0:
                weighted_log += light * np.log(u)
                total += light
        out[i] = -1.5 * weighted_log - total * np.log(weight_sum)
    return out
