"""S2 electroluminescence in the gas gap: photon yield per electron and emission times.

Emission-time model of fax (docs/physics.md, "S2"): uniform field E0 between the liquid surface
and r_A from the anode wire, wire-like E0 r_A / r closer in; electron speed alpha E / n_gas; light
per unit path proportional to max(E - 0.8 kV/cm x P/bar, 0). fax weights the light of each
(equal-length) path step by the electron's speed as well (``s2_emission_weighting: fax``, the
default); ``path`` uses the light per unit path alone. The inverse CDF of the emission time is
computed once per parameter set. The gas-gap warping map (a pickle) is not used: the gap is
``gas_gap_cm`` everywhere.
"""

from functools import lru_cache

import numba
import numpy as np

BOLTZMANN_J_PER_K = 1.380649e-23
PA_PER_BAR = 1e5
CM3_PER_M3 = 1e6
V_CM2_PER_TOWNSEND = 1e-17
CM_PER_NS_PER_MM_PER_US = 1e-4
LIGHT_THRESHOLD_KV_PER_CM_PER_BAR = 0.8
_RADIAL_STEPS = 1000
_QUANTILES = 2001


def photons_per_electron(n_electrons: int, mean_photons_per_electron, rng: np.random.Generator) -> np.ndarray:
    """Detected S2 photons made by each electron: Poisson(mean), mean = gain x relative S2 LY."""
    return rng.poisson(mean_photons_per_electron, size=n_electrons)


@lru_cache(maxsize=8)
def _emission_time_quantiles_ns(gas_gap_cm, gate_to_anode_cm, wire_radius_cm, field_domination_cm,
                                anode_voltage_kv, dielectric_constant, pressure_bar, temperature_k,
                                velocity_slope_mm_per_us_per_td, weighting) -> np.ndarray:
    liquid_layer_cm = gate_to_anode_cm - gas_gap_cm
    gas_voltage_kv = anode_voltage_kv / (1.0 + liquid_layer_cm / (gas_gap_cm * dielectric_constant))
    uniform_field_kv_per_cm = gas_voltage_kv / (
        gas_gap_cm - field_domination_cm + field_domination_cm * np.log(field_domination_cm / wire_radius_cm))
    gas_density_per_cm3 = pressure_bar * PA_PER_BAR / (BOLTZMANN_J_PER_K * temperature_k) / CM3_PER_M3

    edges_cm = np.linspace(gas_gap_cm, wire_radius_cm, _RADIAL_STEPS + 1)  # distance to the wire
    centres_cm = 0.5 * (edges_cm[1:] + edges_cm[:-1])
    field_kv_per_cm = np.where(centres_cm > field_domination_cm, uniform_field_kv_per_cm,
                               uniform_field_kv_per_cm * field_domination_cm / centres_cm)
    reduced_field_td = field_kv_per_cm * 1e3 / gas_density_per_cm3 / V_CM2_PER_TOWNSEND
    speed_cm_per_ns = velocity_slope_mm_per_us_per_td * reduced_field_td * CM_PER_NS_PER_MM_PER_US
    step_cm = np.abs(np.diff(edges_cm))
    time_ns = np.concatenate([[0.0], np.cumsum(step_cm / speed_cm_per_ns)])
    light = np.maximum(field_kv_per_cm - LIGHT_THRESHOLD_KV_PER_CM_PER_BAR * pressure_bar, 0.0) * step_cm
    if weighting == "fax":
        light = light * speed_cm_per_ns
    cdf = np.concatenate([[0.0], np.cumsum(light)]) / light.sum()
    keep = np.concatenate([[True], np.diff(cdf) > 0])  # np.interp needs increasing x
    return np.interp(np.linspace(0.0, 1.0, _QUANTILES), cdf[keep], time_ns[keep])


def emission_time_quantiles_ns(physics) -> np.ndarray:
    """Quantiles (2001 points, 0..1) of the emission time after the electron leaves the liquid, in ns."""
    return _emission_time_quantiles_ns(
        physics.gas_gap_cm, physics.gate_to_anode_cm, physics.anode_wire_radius_cm,
        physics.anode_field_domination_cm, physics.anode_voltage_kv, physics.lxe_dielectric_constant,
        physics.gas_pressure_bar, physics.gas_temperature_k, physics.gas_drift_velocity_slope_mm_per_us_per_td,
        physics.s2_emission_weighting)


def s2_photon_delays_ns(n_photons: int, physics, rng: np.random.Generator) -> np.ndarray:
    """Delay of each S2 photon after its electron reached the surface, in ns.

    Emission time from the gas-gap field model plus the gas excimer decay (singlet with
    probability singlet_fraction_gas, else triplet).
    """
    emission_uniform = rng.random(n_photons)
    singlet_uniform = rng.random(n_photons)
    decay = rng.standard_exponential(n_photons)
    return _delays_ns(emission_time_quantiles_ns(physics), emission_uniform, singlet_uniform, decay,
                      float(physics.singlet_fraction_gas), float(physics.singlet_lifetime_gas_ns),
                      float(physics.triplet_lifetime_gas_ns))


@numba.njit(cache=True, boundscheck=False)
def _delays_ns(quantiles, emission_uniform, singlet_uniform, decay, singlet_fraction, singlet_lifetime_ns,
               triplet_lifetime_ns):
    """Per photon: the emission-time quantile function at ``emission_uniform`` (linear between the
    tabulated quantiles) plus ``decay`` (a unit exponential) times the singlet or triplet lifetime."""
    steps = len(quantiles) - 1
    delays = np.empty(len(emission_uniform))
    for i in range(len(emission_uniform)):
        position = emission_uniform[i] * steps
        index = min(np.int64(position), steps - 1)
        fraction = position - index
        emission = quantiles[index] * (1.0 - fraction) + quantiles[index + 1] * fraction
        lifetime = singlet_lifetime_ns if singlet_uniform[i] < singlet_fraction else triplet_lifetime_ns
        delays[i] = emission + decay[i] * lifetime
    return delays
