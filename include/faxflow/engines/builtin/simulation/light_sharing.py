"""Which PMT each detected photon lands in (docs/physics.md "Light maps", "S2").

Dead PMTs (gain 0) never receive photons. S1: top or bottom array with the position-dependent
area-fraction-top, then uniform over the live PMTs of that array. S2: top array with the fixed
probability ``s2_mean_area_fraction_top`` following the parametric top pattern at the (distorted)
S2 position, else uniform over the live bottom PMTs.
"""

import numba
import numpy as np

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.detector import lightmaps


def _live_top_and_bottom(period: str) -> tuple[np.ndarray, np.ndarray]:
    live = detector.live_mask(period)
    top = detector.is_top(np.arange(detector.N_TPC_CHANNELS))
    return np.flatnonzero(live & top), np.flatnonzero(live & ~top)


def s1_photon_channels(top_probability, period: str, rng: np.random.Generator) -> np.ndarray:
    """int64 channel per S1 photon; ``top_probability`` is each photon's chance to hit the top array."""
    top_probability = np.asarray(top_probability, dtype=float)
    live_top, live_bottom = _live_top_and_bottom(period)
    n = len(top_probability)
    goes_top = rng.random(n) < top_probability
    return np.where(goes_top, live_top[rng.integers(0, len(live_top), n)],
                    live_bottom[rng.integers(0, len(live_bottom), n)])


def s2_photon_channels(source_of_photon, source_x_cm, source_y_cm, physics,
                       rng: np.random.Generator) -> np.ndarray:
    """int64 channel per S2 photon.

    ``source_of_photon`` indexes ``source_x_cm``/``source_y_cm``: where the light of that photon
    is produced (distorted S2 position of an interaction, or a photo-ionisation electron).
    """
    source_of_photon = np.asarray(source_of_photon, dtype=np.int64)
    n = len(source_of_photon)
    _, live_bottom = _live_top_and_bottom(physics.period)
    channels = live_bottom[rng.integers(0, len(live_bottom), n)]
    goes_top = np.flatnonzero(rng.random(n) < physics.s2_mean_area_fraction_top)
    if len(goes_top) == 0:
        return channels
    used_sources, source_index = _unique_inverse(source_of_photon[goes_top])
    pattern = lightmaps.s2_top_pattern(np.asarray(source_x_cm)[used_sources],
                                       np.asarray(source_y_cm)[used_sources], physics.s2_pattern_height_cm,
                                       physics.period)
    # Inverse-CDF sampling of every photon's top channel. Row i of the cumulative pattern is shifted
    # by +i, the photon's uniform number u becomes i + u, and the channel is the first entry > i + u
    # (what one searchsorted over all rows, which form one increasing sequence, would return).
    targets = source_index + rng.random(len(goes_top))
    channels[goes_top] = detector.TOP_CHANNELS[_search_rows(_shifted_cdf_rows(pattern), source_index, targets)]
    return channels


@numba.njit(cache=True, boundscheck=False)
def _shifted_cdf_rows(pattern):
    """In place: row i of ``pattern`` becomes its cumulative sum divided by its total, plus i (in
    numpy's order: ``np.cumsum(pattern, axis=1) / total + arange(n)[:, None]``, to the last bit)."""
    n_rows, n_columns = pattern.shape
    for i in range(n_rows):
        row = pattern[i]
        total = 0.0
        for k in range(n_columns):
            total += row[k]
            row[k] = total
        for k in range(n_columns):
            row[k] = row[k] / total + i
    return pattern


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``, without a sort when ``values`` is already sorted."""
    if len(values) and np.all(values[1:] >= values[:-1]):
        new = np.empty(len(values), dtype=bool)
        new[0] = True
        np.not_equal(values[1:], values[:-1], out=new[1:])
        return values[new], np.cumsum(new) - 1
    return np.unique(values, return_inverse=True)


@numba.njit(cache=True, boundscheck=False)
def _search_rows(cumulative, row, targets):
    """Per target: index of the first entry of ``cumulative[row]`` > target, at most the last one.

    Row i holds a CDF shifted by +i. A guide table per row (first entry above each of 64 equal
    steps of the CDF) gives a starting point; a short exact local search finishes, so the result
    equals a binary search's.
    """
    n_rows, n_columns = cumulative.shape
    n_guide = 64
    guide = np.empty((n_rows, n_guide), dtype=np.int32)
    for i in range(n_rows):
        values = cumulative[i]
        k = 0
        for b in range(n_guide):
            level = i + b / n_guide
            while k < n_columns - 1 and values[k] <= level:
                k += 1
            guide[i, b] = k
    found = np.empty(len(targets), dtype=np.int64)
    for j in range(len(targets)):
        i = row[j]
        values = cumulative[i]
        target = targets[j]
        b = min(max(int((target - i) * n_guide), 0), n_guide - 1)
        k = guide[i, b]
        while k > 0 and values[k - 1] > target:
            k -= 1
        while k < n_columns and values[k] <= target:
            k += 1
        found[j] = min(k, n_columns - 1)
    return found
