"""Which PMT each detected photon lands in (domain-reference §3.4, §4.4).

Dead PMTs (gain 0) never receive photons. S1: top or bottom array with the position-dependent
area-fraction-top, then uniform over the live PMTs of that array. S2: top array with the fixed
probability ``s2_mean_area_fraction_top`` following the parametric top pattern at the (distorted)
S2 position, else uniform over the live bottom PMTs.
"""

import numpy as np

from faxflow.engines.builtin import detector, lightmaps


def _live_top_and_bottom() -> tuple[np.ndarray, np.ndarray]:
    live = detector.live_mask()
    top = detector.is_top(np.arange(detector.N_TPC_CHANNELS))
    return np.flatnonzero(live & top), np.flatnonzero(live & ~top)


def s1_photon_channels(top_probability, rng: np.random.Generator) -> np.ndarray:
    """int64 channel per S1 photon; ``top_probability`` is each photon's chance to hit the top array."""
    top_probability = np.asarray(top_probability, dtype=float)
    live_top, live_bottom = _live_top_and_bottom()
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
    _, live_bottom = _live_top_and_bottom()
    channels = live_bottom[rng.integers(0, len(live_bottom), n)]
    goes_top = np.flatnonzero(rng.random(n) < physics.s2_mean_area_fraction_top)
    if len(goes_top) == 0:
        return channels
    used_sources, source_index = np.unique(source_of_photon[goes_top], return_inverse=True)
    pattern = lightmaps.s2_top_pattern(np.asarray(source_x_cm)[used_sources],
                                       np.asarray(source_y_cm)[used_sources], physics)
    # Sample every photon's top channel in one search: row i of the cumulative pattern is shifted
    # by +i so all rows form one increasing sequence.
    cumulative = np.cumsum(pattern, axis=1)
    cumulative /= cumulative[:, -1:]
    cumulative += np.arange(len(used_sources))[:, None]
    flat_index = np.searchsorted(cumulative.ravel(), source_index + rng.random(len(goes_top)), side="right")
    n_top = pattern.shape[1]
    channels[goes_top] = detector.TOP_CHANNELS[np.minimum(flat_index - source_index * n_top, n_top - 1)]
    return channels
