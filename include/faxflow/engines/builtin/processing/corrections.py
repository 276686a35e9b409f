"""Interaction corrections (pax ``BasicInteractionProperties`` + hax ``Corrections``,
docs/physics.md "Corrections").

- Field-distortion correction: the true radius r solves r + distortion_dr(r, z) = r_observed (fixed
  point iteration on the simulator's own distortion map; φ is kept). fax looks the S1 and S2
  light-yield maps up at the true position, so the corrections do too.
- ``s1_xyz_correction`` = 1 / s1_light_yield(x, y, z);  cs1 = s1 × it.
- ``s2_lifetime_correction`` = exp(drift_time / τ_e);  ``s2_xy_correction_tot`` = 1 / s2_light_yield(x, y);
  cs2 = s2 × both. cs2_top / cs2_bottom split s2 by its area fraction top and use the same (total)
  map, as the parametric S2 light yield has no separate top/bottom maps.
"""

import numpy as np

from faxflow.engines.builtin.detector import lightmaps
from faxflow.engines.builtin.processing.calibration import Calibration

FDC_ITERATIONS = 20


def true_radius_cm(r_observed_cm, z_cm) -> np.ndarray:
    """Invert the S2 field distortion: the true r whose distorted position is ``r_observed_cm``."""
    r_observed = np.asarray(r_observed_cm, dtype=float)
    r = r_observed.copy()
    for _ in range(FDC_ITERATIONS):
        r = r_observed - lightmaps.distortion_dr(r, z_cm)
    return r


def corrections(s1_pe, s2_pe, s2_area_fraction_top, x_observed_cm, y_observed_cm, z_cm, drift_time_ns,
                calibration: Calibration) -> dict[str, np.ndarray]:
    """Corrected areas and correction factors for arrays of interactions (NaN in → NaN out)."""
    x_obs = np.asarray(x_observed_cm, dtype=float)
    y_obs = np.asarray(y_observed_cm, dtype=float)
    z = np.asarray(z_cm, dtype=float)
    r_obs = np.hypot(x_obs, y_obs)
    r_true = true_radius_cm(r_obs, z) if calibration.field_distortion else r_obs
    scale = np.divide(r_true, r_obs, out=np.ones_like(r_obs), where=r_obs > 0)
    x_true, y_true = x_obs * scale, y_obs * scale

    lifetime = np.exp(np.asarray(drift_time_ns, dtype=float) / (calibration.electron_lifetime_us * 1e3))
    s1_xyz = 1.0 / lightmaps.s1_light_yield(x_true, y_true, z)
    s2_xy = 1.0 / lightmaps.s2_light_yield(x_true, y_true)
    s2 = np.asarray(s2_pe, dtype=float)
    aft = np.asarray(s2_area_fraction_top, dtype=float)
    return {
        "x_observed": x_obs, "y_observed": y_obs, "r_observed": r_obs,
        "r_correction": r_true - r_obs, "x": x_true, "y": y_true, "r": r_true,
        "s1_xyz_correction": s1_xyz, "cs1": np.asarray(s1_pe, dtype=float) * s1_xyz,
        "s2_lifetime_correction": lifetime, "s2_xy_correction_tot": s2_xy,
        "cs2": s2 * lifetime * s2_xy,
        "cs2_top": s2 * aft * lifetime * s2_xy,
        "cs2_bottom": s2 * (1 - aft) * lifetime * s2_xy,
    }
