"""Smooth parametric stand-ins for fax's light-yield, area-fraction-top, pattern and field-distortion maps.

Positions are in cm (x, y in TPC coordinates, z negative below the gate). The fits reproduce the
map values quoted in domain-reference §3.2, §3.3 and §4.3 to within about 0.01 (0.4 cm for the
distortion); all functions broadcast over numpy arrays and clamp to the TPC where the fits
would otherwise extrapolate.
"""

import numpy as np

from faxflow.engines.builtin import detector

TPC_RADIUS_CM = 47.9
TPC_LENGTH_CM = 96.9

# S1 relative light yield vs depth: exact through 0.73 @ 5 cm, 0.93 @ 40 cm, 1.29 @ 93 cm.
_S1_LY_DEPTH_POLY = (1.22519e-05, 5.16295e-03, 7.03879e-01)
# Mild radial fall-off: 0.98 -> 0.965 between r = 10 and 38 cm (a 1.5 % drop).
_S1_LY_RADIAL_COEFF_PER_CM2 = 1.14e-5
# S1 area fraction top vs depth (cubic through 0.34 @ 5, 0.30 @ 20, 0.22 @ 40, 0.16 @ 60, 0.09 @ 93 cm).
_S1_AFT_DEPTH_POLY = (3.044004e-07, -3.313311e-05, -2.388996e-03, 3.542383e-01)
# S2 relative light yield vs r (cubic through 1.12 @ 0 ... 0.86 @ 47 cm).
_S2_LY_RADIAL_POLY = (-1.981175e-06, 5.012975e-05, -3.534974e-03, 1.120387)
# to_distorted_r: least-squares fit in s = r / 43.5 cm, u = depth / 96.9 cm of the SR1 FDC map values.
_DISTORTION_COEFFS_CM = (-0.303109, -1.956213, -7.809665, -6.666848, 15.944188, -7.187507)


def _depth_cm(z):
    return np.clip(-np.asarray(z, dtype=float), 0.0, TPC_LENGTH_CM)


def _radius_cm(x, y):
    return np.minimum(np.hypot(x, y), TPC_RADIUS_CM)


def s1_light_yield(x, y, z) -> np.ndarray:
    """Relative S1 light yield (mean ~1 over the TPC): ~0.73 at z = -5 cm, 0.93 at -40, 1.29 at -93."""
    depth = _depth_cm(z)
    radius = _radius_cm(x, y)
    return np.polyval(_S1_LY_DEPTH_POLY, depth) * (1.0 - _S1_LY_RADIAL_COEFF_PER_CM2 * radius ** 2)


def s1_top_fraction(x, y, z) -> np.ndarray:
    """Expected fraction of S1 light seen by the top array: 0.34 at z = -5 cm ... 0.09 at -93 cm."""
    depth = _depth_cm(z) * np.ones_like(np.asarray(x, dtype=float))
    return np.clip(np.polyval(_S1_AFT_DEPTH_POLY, depth), 0.05, 0.4)


def s2_light_yield(x, y) -> np.ndarray:
    """Relative S2 light yield (photons per electron / 21.3): 1.12 at r = 0 ... 0.86 at r = 47 cm."""
    return np.polyval(_S2_LY_RADIAL_POLY, _radius_cm(x, y))


def distortion_dr(r, z) -> np.ndarray:
    """Radial shift in cm (<= 0, inward) of where the S2 light appears, for a true (r, z).

    Grows with r and depth: about -0.25 cm at (43.5, 0), -3.9 at (43.5, -54), -7.8 at (43.5, -97),
    -1.3 at (24, -43). Never moves a point past the axis.
    """
    radius = np.minimum(np.asarray(r, dtype=float), TPC_RADIUS_CM)
    s = radius / 43.5
    u = _depth_cm(z) / TPC_LENGTH_CM
    c = _DISTORTION_COEFFS_CM
    shift = (c[0] * s ** 2 + c[1] * s ** 2 * u + c[2] * s ** 3 * u + c[3] * s * u ** 2
             + c[4] * s ** 3 * u ** 2 + c[5] * s ** 3 * u ** 3)
    return np.maximum(np.minimum(shift, 0.0), -radius)


def s2_top_pattern(x, y, physics) -> np.ndarray:
    """float64[n, 127]: probability that an S2 top-array photon from (x, y) hits each top PMT.

    Proportional to the solid-angle-like (1 + d^2/h^2)^-3/2, d = horizontal distance to the
    PMT centre, h = ``physics.s2_pattern_height_cm``; 0 for dead PMTs; each row sums to 1.
    """
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    pmt_xy = detector.pmt_positions()[detector.TOP_CHANNELS]
    distance_sq = (x[:, None] - pmt_xy[:, 0]) ** 2 + (y[:, None] - pmt_xy[:, 1]) ** 2
    weights = (1.0 + distance_sq / physics.s2_pattern_height_cm ** 2) ** -1.5
    weights *= detector.live_mask()[detector.TOP_CHANNELS]
    return weights / weights.sum(axis=1, keepdims=True)
