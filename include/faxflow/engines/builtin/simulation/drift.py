"""Electron drift from the interaction to the liquid surface (docs/physics.md "S2").

Depths are in cm below the gate (positive), times in ns.
"""

import numpy as np

from faxflow.engines.builtin.detector import lightmaps

CM_PER_UM = 1e-4
NS_PER_US = 1e3
S_PER_NS = 1e-9


def drift_velocity_cm_per_ns(physics) -> float:
    return physics.drift_velocity_um_per_ns * CM_PER_UM


def mean_drift_time_ns(depth_cm, physics) -> np.ndarray:
    """Mean drift time in ns: depth / v_d + drift_time_gate."""
    return np.asarray(depth_cm) / drift_velocity_cm_per_ns(physics) + physics.drift_time_gate_us * NS_PER_US


def survival_probability(drift_time_ns, physics) -> np.ndarray:
    """Probability that an electron reaches the surface and is extracted: y_extr x exp(-t_d / tau_e)."""
    lifetime_ns = physics.electron_lifetime_us * NS_PER_US
    return physics.electron_extraction_yield * np.exp(-np.asarray(drift_time_ns) / lifetime_ns)


def surviving_electrons(n_produced, drift_time_ns, physics, rng: np.random.Generator) -> np.ndarray:
    """Electrons per interaction that survive attachment: Binomial(n_produced, survival probability)."""
    return rng.binomial(np.asarray(n_produced, dtype=np.int64), survival_probability(drift_time_ns, physics))


def diffusion_sigma_ns(drift_time_ns, physics) -> np.ndarray:
    """Longitudinal-diffusion spread of the arrival time in ns: sqrt(2 D t_d) / v_d."""
    diffusion_cm2_per_ns = physics.diffusion_constant_cm2_per_s * S_PER_NS
    return np.sqrt(2.0 * diffusion_cm2_per_ns * np.asarray(drift_time_ns)) / drift_velocity_cm_per_ns(physics)


def electron_arrival_delays_ns(drift_time_ns, physics, rng: np.random.Generator) -> np.ndarray:
    """Per electron: time from the interaction to arrival at the liquid surface, in ns.

    ``drift_time_ns`` is the mean drift time of each electron's interaction. The arrival delay is
    N(t_d, sqrt(2 D t_d)/v_d) plus an Exp(electron_trapping_time) wait below the surface.
    """
    drift_time_ns = np.asarray(drift_time_ns, dtype=float)
    delays = drift_time_ns + rng.standard_normal(len(drift_time_ns)) * diffusion_sigma_ns(drift_time_ns, physics)
    if physics.electron_trapping_time_ns > 0:
        delays += rng.exponential(physics.electron_trapping_time_ns, size=len(drift_time_ns))
    return delays


def distorted_xy(x_cm, y_cm, z_cm, physics) -> tuple[np.ndarray, np.ndarray]:
    """Where the S2 light of an interaction at true (x, y, z) appears: r shifted inwards at fixed phi."""
    x_cm, y_cm = np.asarray(x_cm, dtype=float), np.asarray(y_cm, dtype=float)
    if not physics.field_distortion:
        return x_cm.copy(), y_cm.copy()
    radius = np.hypot(x_cm, y_cm)
    new_radius = radius + lightmaps.distortion_dr(radius, z_cm)
    scale = np.divide(new_radius, radius, out=np.ones_like(radius), where=radius > 0)
    return x_cm * scale, y_cm * scale
