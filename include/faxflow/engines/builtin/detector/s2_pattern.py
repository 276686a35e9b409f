"""Kernel of the S2 top pattern (``detector.lightmaps.s2_top_pattern``): one pass per position, no
[n, 127] temporaries, the same values as the numpy expression it replaces."""

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
