"""Detector tables: channel map, gains, ADC conversion, afterpulse tables, parametric maps."""

import numpy as np
import pytest

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.detector import lightmaps
from faxflow.engines.builtin.parameters import PhysicsParameters

PHYSICS = PhysicsParameters()


def test_channel_sets():
    assert len(detector.TOP_CHANNELS) + len(detector.BOTTOM_CHANNELS) == detector.N_TPC_CHANNELS == 248
    assert len(detector.DEAD_CHANNELS) == 36
    live = detector.live_mask()
    assert live[detector.TOP_CHANNELS].sum() == 112 and live[detector.BOTTOM_CHANNELS].sum() == 100
    assert detector.is_top([0, 126]).all() and not detector.is_top([127, 247]).any()


def test_pmt_positions_follow_the_array_geometry():
    positions = detector.pmt_positions()
    radius = np.hypot(positions[:, 0], positions[:, 1])
    np.testing.assert_allclose(radius[:36], 6 * 7.95)
    np.testing.assert_allclose(radius[120:126], 7.95)
    assert radius[126] == pytest.approx(0) and radius[187] == pytest.approx(0)
    assert np.degrees(np.arctan2(positions[0, 1], positions[0, 0])) == pytest.approx(105)
    assert np.degrees(np.arctan2(positions[1, 1], positions[1, 0])) == pytest.approx(95)  # clockwise
    assert radius[127:].max() == pytest.approx(44.54, abs=0.01)
    bottom = positions[127:]
    spacing = np.hypot(*(bottom[:, None] - bottom[None]).transpose(2, 0, 1)) + np.eye(121) * 1e9
    np.testing.assert_allclose(spacing.min(axis=1), 8.0)


def test_gains_have_the_sr1_statistics():
    gains = detector.gains()
    live = detector.live_mask()
    assert (gains[~live] == 0).all()
    assert gains[live].mean() == pytest.approx(3.08e6, rel=0.01)
    assert np.median(gains[live]) == pytest.approx(2.82e6, rel=0.02)
    assert gains[live].min() == pytest.approx(1.02e6) and gains[live].max() == pytest.approx(4.91e6)


def test_adc_to_pe_inverts_one_pe_area():
    conversion = detector.adc_to_pe(PHYSICS)
    assert detector.electrons_per_adc_sample(PHYSICS) == pytest.approx(17142.8, rel=1e-3)
    live = detector.live_mask()
    assert (conversion[~live] == 0).all()
    np.testing.assert_allclose(conversion[live] * detector.gains()[live], 17143.8, rtol=1e-4)


def test_zle_thresholds():
    assert (detector.zle_thresholds_adc(PHYSICS) == 15).all()


def test_afterpulse_tables():
    probabilities = detector.afterpulse_probabilities(PHYSICS)
    live = detector.live_mask()
    assert probabilities.shape == (248, 16) and (probabilities[~live] == 0).all()
    means = np.array([t.mean_probability for t in detector.AFTERPULSE_TYPES])
    np.testing.assert_allclose(probabilities[live].mean(axis=0), means)
    assert probabilities.sum(axis=1).mean() == pytest.approx(0.030, abs=0.001)  # over all 248 channels
    assert probabilities[live].std(axis=0).min() > 0  # channels differ
    doubled = detector.afterpulse_probabilities(PhysicsParameters(pmt_afterpulse_scale=2.0))
    np.testing.assert_allclose(doubled, np.minimum(2 * probabilities, 1))


def test_field_distortion_matches_reference_values():
    depth = np.array([0.0, 10.8, 32, 54, 75, 86, 97])
    np.testing.assert_allclose(lightmaps.distortion_dr(np.full(7, 43.5), -depth),
                               [-0.25, -1.35, -2.9, -3.9, -5.5, -7.1, -7.8], atol=0.45)
    grid_r, grid_z = np.meshgrid(np.linspace(0, 47.9, 40), np.linspace(-96.9, 0, 40))
    assert (lightmaps.distortion_dr(grid_r, grid_z) <= 0).all()


def test_s2_top_pattern_is_normalised_peaked_and_avoids_dead_pmts():
    pattern = lightmaps.s2_top_pattern([0.0, 20.0], [0.0, -5.0], PHYSICS)
    np.testing.assert_allclose(pattern.sum(axis=1), 1)
    assert np.argmax(pattern[0]) == 126
    assert (pattern[:, detector.DEAD_CHANNELS[detector.DEAD_CHANNELS < 127]] == 0).all()
