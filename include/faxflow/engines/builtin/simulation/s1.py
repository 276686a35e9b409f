"""S1: how many of the produced scintillation photons are detected, and when they are emitted.

fax's XENON1T configuration uses the 'simple' S1 model (docs/physics.md "S1"): ER and NR share one
exponential decay, alphas use a singlet/triplet mixture and LED pulses are flat.
"""

import numpy as np

RECOIL_CODES = {"er": 0, "nr": 1, "alpha": 2, "led": 3}


def detected_s1_photons(n_produced, light_yield, physics, rng: np.random.Generator) -> np.ndarray:
    """Detected photons per interaction: Binomial(n_produced, s1_detection_efficiency x light_yield).

    ``light_yield`` is the relative S1 light yield at the interaction (mean ~1).
    """
    probability = np.clip(physics.s1_detection_efficiency * np.asarray(light_yield), 0.0, 1.0)
    return rng.binomial(np.asarray(n_produced, dtype=np.int64), probability)


def s1_emission_delays_ns(recoil_codes, physics, rng: np.random.Generator) -> np.ndarray:
    """Emission delay of each detected S1 photon after the interaction time, in ns.

    ``recoil_codes`` holds one :data:`RECOIL_CODES` value per photon. ER/NR: Exp(s1_decay_time);
    alpha: singlet (prob. alpha_singlet_fraction) or triplet exponential; LED: U(0, led_pulse_length).
    """
    recoil_codes = np.asarray(recoil_codes)
    delays = rng.exponential(physics.s1_decay_time_ns, size=len(recoil_codes))
    alpha = np.flatnonzero(recoil_codes == RECOIL_CODES["alpha"])
    if len(alpha):
        singlet = rng.random(len(alpha)) < physics.alpha_singlet_fraction
        lifetimes = np.where(singlet, physics.singlet_lifetime_liquid_ns, physics.triplet_lifetime_liquid_ns)
        delays[alpha] = rng.exponential(1.0, size=len(alpha)) * lifetimes
    led = np.flatnonzero(recoil_codes == RECOIL_CODES["led"])
    if len(led):
        delays[led] = rng.uniform(0.0, physics.led_pulse_length_ns, size=len(led))
    return delays
