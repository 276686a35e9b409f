"""The S1 area per detected photon, factor by factor (docs/physics.md, "PMT response and digitiser"):
double PE × SPE mean × truncation to whole ADC counts × hit finding × ZLE thresholds.

S1-only events at one position, without afterpulses, photo-ionisation or lone hits, so every PE
is a photon's or its double PE's.
"""

import numpy as np
import pandas as pd
import pytest
from test_processing_validation import isolated_pe_area_fraction

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.processing.process import process
from faxflow.engines.builtin.simulation import pmt
from faxflow.engines.builtin.simulation.simulate import simulate

QUIET = {"lone_hit_rates_per_channel_hz": ()}


def s1_area_per_photon(physics: PhysicsParameters, n_events: int = 1500) -> float:
    table = pd.DataFrame({"instruction": np.arange(n_events), "recoil_type": "ER", "x": 0.0, "y": 0.0,
                          "depth": 50.0, "s1_photons": 200, "s2_electrons": 0, "t": 1000.0})
    truth, raw = simulate(table, physics, pmt_afterpulse=False, s2_afterpulse=False, rng=np.random.default_rng(1))
    peaks = process(raw, ProcessingParameters.for_physics(physics)).peaks
    return peaks["area"].sum() / truth.loc[truth["peak_type"] == "s1", "n_photons"].sum()


def test_spe_mean_and_double_pe():
    rng = np.random.default_rng(0)
    channels = rng.choice(np.flatnonzero(detector.live_mask()), 200_000)
    physics = PhysicsParameters()
    spe = pmt.pe_areas_electrons(channels, physics, rng) / detector.gains()[channels]
    assert spe.mean() == pytest.approx(1.0, abs=0.005)
    assert len(pmt.double_pe_copies(200_000, physics, rng)) / 200_000 == pytest.approx(0.15, abs=0.003)


def test_s1_area_per_photon_is_the_product_of_its_factors():
    truncation = isolated_pe_area_fraction()  # ~0.94: whole-ADC truncation of an isolated PE
    assert 0.92 < truncation < 0.96
    uniform = s1_area_per_photon(PhysicsParameters(zle_thresholds="uniform", **QUIET))
    hit_finding = uniform / (1.15 * truncation)
    # the hit finder keeps every stored PE; PEs overlapping in one channel lose a little less to truncation
    assert hit_finding == pytest.approx(1.0, abs=0.015)
    per_channel = s1_area_per_photon(PhysicsParameters(**QUIET))
    assert 0.975 < per_channel / uniform < 0.995  # pax's higher thresholds on 119 channels cut small pulses
