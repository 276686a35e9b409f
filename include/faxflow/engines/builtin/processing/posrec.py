"""S2 position reconstruction on the top array: a Poisson maximum-likelihood fit of the S2 top pattern.

The expected fraction of top light per live top PMT is ``lightmaps.s2_top_pattern`` — the same
pattern the simulator draws from. With e_j = O·p_j(x, y) (O = observed live top area) the
Baker–Cousins statistic 2 Σ [e_j − o_j + o_j ln(o_j / e_j)] reduces to −2 Σ o_j ln p_j + const,
so the fit is:

1. a global grid (``GRID_PITCH_CM`` over r ≤ ``GRID_RADIUS_CM``), scored for all peaks at once with
   one matrix product against the tabulated log-pattern; the area-weighted mean is not used as a
   seed because it is pulled towards the centre by up to ~10 cm at the wall;
2. a pattern search: 3×3 neighbours at half the grid pitch, moving to the best and halving the step
   down to ``FINAL_STEP_CM``; the last 3×3 scores give the minimum by a parabola along x and y.

The reported goodness of fit is the Baker–Cousins value at the minimum. The area-weighted mean and
max-PMT positions are cheap per-peak sums and are computed with the other peak properties.
"""

from functools import lru_cache

import numpy as np
from numba import njit

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.detector import lightmaps, s2_pattern

GRID_PITCH_CM = 2.5
GRID_RADIUS_CM = 50.0
FINAL_STEP_CM = 0.15
_PATTERN_FLOOR = 1e-300


@lru_cache(maxsize=4)
def _grid(pattern_height_cm: float, period: str) -> tuple[np.ndarray, np.ndarray]:
    """Grid points (float[g, 2], cm) and log-pattern (float[127, g])."""
    axis = np.arange(-GRID_RADIUS_CM, GRID_RADIUS_CM + GRID_PITCH_CM / 2, GRID_PITCH_CM)
    gx, gy = np.meshgrid(axis, axis)
    inside = np.hypot(gx, gy) <= GRID_RADIUS_CM
    points = np.column_stack([gx[inside], gy[inside]])
    log_pattern = np.log(np.maximum(lightmaps.s2_top_pattern(points[:, 0], points[:, 1], pattern_height_cm,
                                                             period), _PATTERN_FLOOR))
    return points, np.ascontiguousarray(log_pattern.T)


def pattern_fit(top_area_pe: np.ndarray, pattern_height_cm: float,
                period: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit (x, y) in cm and the Baker–Cousins goodness of fit for each row of ``top_area_pe`` (float[n, 127]).

    ``pattern_height_cm`` is the calibration's S2 top-pattern model (``lightmaps.s2_top_pattern``),
    ``period`` the calibration's gain period, whose dead PMTs the pattern leaves out.
    Dead PMTs (pattern 0, no hits) drop out of the sums. Rows without top area give NaN.
    """
    n = len(top_area_pe)
    if n == 0:
        empty = np.empty(0)
        return empty, empty.copy(), empty.copy()
    points, log_pattern = _grid(float(pattern_height_cm), period)
    observed = np.asarray(top_area_pe, dtype=float)
    best = points[np.argmax(observed @ log_pattern, axis=1)].copy()

    step = GRID_PITCH_CM / 2
    offsets = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
    while True:
        trial = best[:, None, :] + step * offsets[None, :, :]  # [n, 9, 2]
        score = _log_likelihood(observed, trial.reshape(-1, 2), pattern_height_cm, period).reshape(n, 9)
        if step / 2 < FINAL_STEP_CM:
            break
        best = trial[np.arange(n), np.argmax(score, axis=1)]
        step /= 2
    best = best + step * _parabola_vertex(score)

    expected_fraction = lightmaps.s2_top_pattern(best[:, 0], best[:, 1], pattern_height_cm, period)
    gof = _baker_cousins(observed, expected_fraction)
    no_light = observed.sum(axis=1) <= 0
    best[no_light] = np.nan
    gof[no_light] = np.nan
    return best[:, 0], best[:, 1], gof


def _parabola_vertex(score: np.ndarray) -> np.ndarray:
    """Offsets (in steps, within ±1) of the maximum of parabolas through the 3×3 scores' centre row/column."""
    grid = score.reshape(-1, 3, 3)  # [n, x offset, y offset]
    vertex = np.zeros((len(grid), 2))
    for axis, (low, mid, high) in enumerate(((grid[:, 0, 1], grid[:, 1, 1], grid[:, 2, 1]),
                                             (grid[:, 1, 0], grid[:, 1, 1], grid[:, 1, 2]))):
        curvature = low - 2 * mid + high
        shift = np.divide(low - high, 2 * curvature, out=np.zeros_like(mid), where=curvature < 0)
        vertex[:, axis] = np.clip(shift, -1.0, 1.0)
    return vertex


def _log_likelihood(observed: np.ndarray, xy: np.ndarray, pattern_height_cm: float, period: str) -> np.ndarray:
    """Σ o_j ln p_j(x, y) for each trial position; ``xy`` holds len(observed) blocks of equal size."""
    pmt_xy, live = _top_pmts(period)
    return s2_pattern.log_likelihood_rows(observed, np.ascontiguousarray(xy), pmt_xy, live,
                                          float(pattern_height_cm) ** 2)


@lru_cache(maxsize=4)
def _top_pmts(period: str) -> tuple[np.ndarray, np.ndarray]:
    """(float[2, n] x, y in cm, int64[n] channel) of the top PMTs live in ``period``."""
    live = np.flatnonzero(detector.live_mask(period)[detector.TOP_CHANNELS])
    return np.ascontiguousarray(detector.pmt_positions()[detector.TOP_CHANNELS][live].T), live


def _baker_cousins(observed: np.ndarray, expected_fraction: np.ndarray) -> np.ndarray:
    expected = expected_fraction * observed.sum(axis=1, keepdims=True)
    ratio_term = np.where(observed > 0, observed * np.log(np.maximum(observed, _PATTERN_FLOOR)
                                                          / np.maximum(expected, _PATTERN_FLOOR)), 0.0)
    return 2 * np.sum(np.where(expected > 0, expected - observed + ratio_term, 0.0), axis=1)


def top_area_per_channel(order: np.ndarray, bounds: np.ndarray, peaks: np.ndarray, channel: np.ndarray,
                         area_pe: np.ndarray, n_top_channels: int) -> np.ndarray:
    """float[len(peaks), n_top_channels]: each selected peak's area per top channel (PE)."""
    return _top_area(order, bounds, np.asarray(peaks, np.int64), np.asarray(channel, np.int64), area_pe, n_top_channels)


@njit(cache=True)
def _top_area(order, bounds, peaks, channel, area, n_top):
    out = np.zeros((len(peaks), n_top))
    for i, p in enumerate(peaks):
        for h in order[bounds[p]:bounds[p + 1]]:
            if channel[h] < n_top:
                out[i, channel[h]] += area[h]
    return out
