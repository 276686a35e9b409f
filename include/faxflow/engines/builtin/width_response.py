"""How the engine's delayed light changes an S2's rise time (docs/physics.md "Diffusion fit with delayed light").

PMT afterpulses and photo-ionisation electrons arrive 0.3–5 µs after their parent photons, on the
time scale of the diffusion width itself, so they lengthen the rise time (t50 − t10 of the area)
of an S2 by an amount that depends on its width. :func:`rise_time_response` measures that relation:
it draws S2s whose prompt light is Gaussian in time with a given σ, passes them through the same
double-PE, single-PE area, afterpulse and photo-ionisation draws the simulation uses (so it follows
the configured settings and any change of those models), and takes the area quantiles of prompt and
delayed light together. Inverting it turns a measured rise time into the σ of the prompt light.
"""

from __future__ import annotations

import numpy as np

from faxflow.engines.builtin import BuiltinEngine, detector
from faxflow.engines.builtin.simulation import pmt
from faxflow.engines.builtin.simulation.photoionization import photoionization_electrons

#: Area fractions whose times define the rise time.
RISE_QUANTILES = (0.1, 0.5)
#: S2s drawn per width; their mean rise time is the response.
DRAWS_PER_WIDTH = 40
#: Photo-ionisation electrons later than this after the S2 are separate peaks, never part of it.
MAX_MERGED_DELAY_NS = 20_000.0


def rise_time_response(settings: dict, n_photons: int, single_electron_pe: float, sigmas_ns: np.ndarray,
                       seed: int = 0) -> np.ndarray:
    """Mean rise time [ns] of S2s of ``n_photons`` detected photons with Gaussian prompt light of each σ.

    :param settings: a variant's resolved settings (its physics and delayed-light switches)
    :param single_electron_pe: area of one photo-ionisation electron's S2 [PE]
    """
    engine = BuiltinEngine.from_settings(settings)
    rng = np.random.default_rng(seed)
    live = detector.live_mask()
    top = detector.TOP_CHANNELS[live[detector.TOP_CHANNELS]]
    bottom = detector.BOTTOM_CHANNELS[live[detector.BOTTOM_CHANNELS]]
    response = []
    for sigma in np.asarray(sigmas_ns, dtype=float):
        rises = []
        for _ in range(DRAWS_PER_WIDTH):
            on_top = rng.random(n_photons) < engine.physics.s2_mean_area_fraction_top
            channels = np.where(on_top, rng.choice(top, n_photons), rng.choice(bottom, n_photons))
            times, areas = _photoelectrons(engine, channels, rng.normal(0.0, sigma, n_photons), single_electron_pe,
                                           rng)
            rises.append(np.subtract(*_area_quantiles(times, areas, RISE_QUANTILES)[::-1]))
        response.append(np.mean(rises))
    return np.asarray(response)


def _photoelectrons(engine: BuiltinEngine, channels: np.ndarray, times: np.ndarray, single_electron_pe: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(time ns, area PE) of every photoelectron, afterpulse and photo-ionisation electron of one S2."""
    physics = engine.physics
    copies = pmt.double_pe_copies(len(times), physics, rng)
    pe_channels, pe_times = np.concatenate([channels, channels[copies]]), np.concatenate([times, times[copies]])
    charge = pmt.pe_areas_electrons(pe_channels, physics, rng)
    gains = detector.gains(physics.period)[pe_channels]
    if not engine.pmt_afterpulse:
        return _with_photoionization(engine, times, [pe_times], [charge / gains], single_electron_pe, rng)
    parent, delay, ap_charge = pmt.afterpulses(pe_channels, physics, rng)
    if physics.pmt_afterpulse_areas == "fax":  # re-pairs the charges in place, before they become PE
        pmt.fax_pulse_order(np.zeros(len(times), dtype=np.int64), channels, times, copies, charge, parent, delay,
                            ap_charge)
    return _with_photoionization(engine, times, [pe_times, pe_times[parent] + delay],
                                 [charge / gains, ap_charge / gains[parent]], single_electron_pe, rng)


def _with_photoionization(engine: BuiltinEngine, photon_times: np.ndarray, times: list, areas: list,
                          single_electron_pe: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if engine.s2_afterpulse:
        electrons = photoionization_electrons([len(photon_times)], photon_times, engine.physics, rng)
        merged = electrons.time_ns[electrons.time_ns < MAX_MERGED_DELAY_NS]
        times, areas = [*times, merged], [*areas, np.full(len(merged), single_electron_pe)]
    return np.concatenate(times), np.concatenate(areas)


def _area_quantiles(times: np.ndarray, areas: np.ndarray, fractions) -> np.ndarray:
    order = np.argsort(times)
    cumulative = np.cumsum(areas[order])
    return np.interp(np.asarray(fractions) * cumulative[-1], cumulative, times[order])
