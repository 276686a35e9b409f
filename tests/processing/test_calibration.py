"""Reconstruction follows the simulated detector unless told otherwise (docs/physics.md, "Calibration").

The sweeps go through the real configuration path: a campaign whose variants set only
``physics:`` keys, resolved by ``faxflow.config`` and run by the builtin engine built from the
variant's settings.
"""

import numpy as np
import pandas as pd
import pytest
from test_processing_validation import per_event

from faxflow.config import campaign_from_dict
from faxflow.engines.builtin import BuiltinEngine, detector
from faxflow.engines.builtin.parameters import CALIBRATION_KEYS, PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.processing.calibration import Calibration
from faxflow.engines.builtin.processing.process import process
from faxflow.engines.builtin.simulation.simulate import simulate

N_EVENTS = 600
DEPTH_BANDS_CM = [(9, 30), (30, 50), (50, 70), (70, 92.9)]


def campaign_variants(variants: list[dict]) -> dict[str, dict]:
    campaign = campaign_from_dict({"name": "calibration", "number_job": 1, "number_event_per_job": N_EVENTS,
                                   "photon_number": [300, 400], "electron_number": [300, 400],
                                   "variants": variants})
    return {variant.name: variant.settings for variant in campaign.variants}


def instructions(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    radius, angle = 30 * np.sqrt(rng.random(N_EVENTS)), rng.uniform(-np.pi, np.pi, N_EVENTS)
    return pd.DataFrame({"instruction": np.arange(N_EVENTS), "recoil_type": "ER", "x": radius * np.cos(angle),
                         "y": radius * np.sin(angle), "depth": rng.uniform(9, 92.9, N_EVENTS),
                         "s1_photons": rng.integers(300, 400, N_EVENTS),
                         "s2_electrons": rng.integers(300, 400, N_EVENTS), "t": 1000.0})


def reconstructed(settings: dict, seed: int = 5) -> pd.DataFrame:
    """Events of one variant whose main S1 and S2 are the true ones."""
    engine = BuiltinEngine.from_settings(settings)
    table = instructions(seed)
    truth, raw = simulate(table, engine.physics, pmt_afterpulse=True, s2_afterpulse=True,
                          rng=np.random.default_rng(seed))
    events = per_event(process(raw, engine.processing), engine.processing, truth, table["s2_electrons"].to_numpy())
    return events[events["s1_ok"] & events["s2_ok"]]


def depth_profile(events: pd.DataFrame, values: pd.Series) -> np.ndarray:
    depth = -events["truth_s2_z"]
    return np.array([values[(depth >= lo) & (depth < hi)].mean() for lo, hi in DEPTH_BANDS_CM])


@pytest.fixture(scope="module")
def lifetime_sweep():
    return campaign_variants([{"name": "tau_300", "physics": {"electron_lifetime_us": 300.0}},
                              {"name": "tau_1000", "physics": {"electron_lifetime_us": 1000.0}},
                              {"name": "tau_300_miscalibrated", "physics": {"electron_lifetime_us": 300.0},
                               "processing": {"electron_lifetime_us": 550.0}}])


def test_resolved_processing_follows_physics_unless_overridden(lifetime_sweep):
    assert lifetime_sweep["tau_300"]["processing"]["electron_lifetime_us"] == 300.0
    assert lifetime_sweep["tau_1000"]["processing"]["electron_lifetime_us"] == 1000.0
    assert lifetime_sweep["tau_300_miscalibrated"]["processing"]["electron_lifetime_us"] == 550.0
    assert lifetime_sweep["tau_300_miscalibrated"]["physics"]["electron_lifetime_us"] == 300.0
    sr0 = ProcessingParameters.for_physics(PhysicsParameters.for_period("SR0"))
    assert (sr0.gain_period, sr0.drift_velocity_um_per_ns, sr0.electron_lifetime_us) == ("SR0", 1.44, 450.0)
    physics = PhysicsParameters(s2_pattern_height_cm=6.0, adc_per_electron_per_ns=6e-4, field_distortion=False)
    calibration = Calibration.of(ProcessingParameters.for_physics(physics))
    assert all(getattr(calibration, key) == getattr(physics, key) for key in CALIBRATION_KEYS)


def test_unresolved_calibration_is_refused():
    with pytest.raises(ValueError, match="electron_lifetime_us"):
        Calibration.of(ProcessingParameters())


def test_adc_to_pe_inverts_one_pe_area():
    physics = PhysicsParameters()
    conversion = Calibration.of(ProcessingParameters.for_physics(physics)).adc_to_pe(physics.sample_duration_ns)
    live = detector.live_mask()
    assert (conversion[~live] == 0).all()
    np.testing.assert_allclose(conversion[live] * detector.gains()[live], 17143.8, rtol=1e-4)
    sr0 = Calibration.of(ProcessingParameters.for_period("SR1", gain_period="SR0")).adc_to_pe(10.0)
    live_sr0 = detector.live_mask("SR0")
    assert (sr0[~live_sr0] == 0).all()
    np.testing.assert_allclose(sr0[live_sr0] * detector.gains("SR0")[live_sr0], 17143.8, rtol=1e-4)


def test_lifetime_sweep_set_under_physics_gives_flat_cs2(lifetime_sweep):
    for name in ("tau_300", "tau_1000"):
        events = reconstructed(lifetime_sweep[name])
        profile = depth_profile(events, events["cs2"] / events["produced_electrons"])
        assert np.all(np.abs(profile / profile.mean() - 1) < 0.03), (name, profile / profile.mean())
    events = reconstructed(lifetime_sweep["tau_300_miscalibrated"])
    profile = depth_profile(events, events["cs2"] / events["produced_electrons"])
    assert profile[-1] / profile[0] < 0.6  # exp(-t (1/300 - 1/550)) at the bottom: the override is used


def test_drift_velocity_sweep_set_under_physics_gives_unbiased_z():
    variants = campaign_variants([{"name": "vd_1.2", "physics": {"drift_velocity_um_per_ns": 1.2}},
                                  {"name": "vd_1.44", "physics": {"drift_velocity_um_per_ns": 1.44}},
                                  {"name": "vd_1.44_miscalibrated", "physics": {"drift_velocity_um_per_ns": 1.44},
                                   "processing": {"drift_velocity_um_per_ns": 1.335}}])
    for name in ("vd_1.2", "vd_1.44"):
        events = reconstructed(variants[name])
        bias = depth_profile(events, events["z"] - events["truth_s2_z"])
        assert np.all(np.abs(bias) < 0.5), (name, bias)
    events = reconstructed(variants["vd_1.44_miscalibrated"])
    bias = depth_profile(events, events["z"] - events["truth_s2_z"])
    assert bias[-1] > 4.0  # z compressed by 1.335 / 1.44: ~6 cm at the bottom
