"""Detector tables: channel map, gains, ADC conversion, afterpulse tables, parametric maps."""

import math

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
    assert np.flatnonzero(~live).tolist() == detector.DEAD_CHANNELS.tolist()
    sr0 = detector.live_mask("SR0")  # SR0_parameters.ini's zeros: 51 dead, 2 and 190 live
    assert np.flatnonzero(sr0 & ~live).tolist() == [2, 190] and np.flatnonzero(live & ~sr0).tolist() == [51]
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


def test_gains_are_paxs_per_channel_tables():
    # values of pax/config/SR1_parameters.ini and SR0_parameters.ini [DEFAULT] gains
    sr1, sr0 = detector.gains("SR1"), detector.gains("SR0")
    live, live_sr0 = detector.live_mask(), detector.live_mask("SR0")
    assert (sr1[~live] == 0).all() and (sr1[live] > 0).all()
    assert (sr0[~live_sr0] == 0).all() and (sr0[live_sr0] > 0).all()
    assert sr1[[0, 3, 4, 6, 247]].tolist() == [2432700.0, 2118231.0, 3913679.2, 4783011.4, sr1[247]]
    assert sr0[0] == 2454700.0 and sr0[51] == 0 and sr0[2] > 0
    assert sr1[live].mean() == pytest.approx(3.084e6, rel=1e-3)
    both = live & live_sr0
    assert np.corrcoef(sr1[both], sr0[both])[0, 1] > 0.5
    assert (detector.gains() == sr1).all()


def test_electrons_per_adc_sample():
    assert detector.electrons_per_adc_sample(PHYSICS) == pytest.approx(17142.8, rel=1e-3)


def test_zle_thresholds_are_paxs_special_thresholds():
    thresholds = detector.zle_thresholds_adc(PHYSICS)  # pax/config/XENON1T.ini [ZLE] special_thresholds
    assert thresholds[[0, 3, 50, 51, 96, 231]].tolist() == [15, 15, 76, 103, 108, 37]
    live = detector.live_mask()
    assert (thresholds[live] > 15).sum() == 119 and thresholds[live].max() == 108 and thresholds.min() == 15
    uniform = detector.zle_thresholds_adc(PhysicsParameters(zle_thresholds="uniform", zle_threshold_adc=20))
    assert (uniform == 20).all()


def test_afterpulse_tables_are_paxs_per_pmt_table():
    table = detector.afterpulse_table(PHYSICS)  # pax/config/pmt_afterpulses/sr1_run16347.ini
    names = [t.name for t in detector.AFTERPULSE_TYPES]
    xe2, uniform0 = names.index("Xe2+"), names.index("Uniform0")
    assert table.probability[0, xe2] == pytest.approx(3.940556e-4, rel=1e-6)
    assert table.delay_a_ns[0, xe2] == pytest.approx(2159.163, rel=1e-6) and table.delay_b_ns[0, xe2] == 65.0
    assert (table.amplitude_mean[0, xe2], table.amplitude_rms[0, xe2]) == pytest.approx((6.104364, 3.784706))
    assert table.probability[0, uniform0] == pytest.approx(4.921341e-3, rel=1e-6)
    assert (table.delay_a_ns[:, uniform0][detector.live_mask()] == 0).all()
    assert (table.delay_b_ns[:, uniform0][detector.live_mask()] == 300).all()

    probabilities = detector.afterpulse_probabilities(PHYSICS)
    live = detector.live_mask()
    assert probabilities.shape == (248, 16) and (probabilities[~live] == 0).all()
    assert probabilities.sum(axis=1).mean() == pytest.approx(0.0297, abs=0.0005)  # over all 248 channels
    assert probabilities[live].sum(axis=1).mean() == pytest.approx(0.0347, abs=0.0005)
    means = detector.afterpulse_table(PhysicsParameters(pmt_afterpulse_table="type_means"))
    np.testing.assert_allclose(means.probability[live], np.broadcast_to(probabilities[live].mean(axis=0), (212, 16)))
    doubled = detector.afterpulse_probabilities(PhysicsParameters(pmt_afterpulse_scale=2.0))
    np.testing.assert_allclose(doubled, np.minimum(2 * probabilities, 1))


def test_field_distortion_matches_reference_values():
    depth = np.array([0.0, 10.8, 32, 54, 75, 86, 97])
    np.testing.assert_allclose(lightmaps.distortion_dr(np.full(7, 43.5), -depth),
                               [-0.25, -1.35, -2.9, -3.9, -5.5, -7.1, -7.8], atol=0.45)
    grid_r, grid_z = np.meshgrid(np.linspace(0, 47.9, 40), np.linspace(-96.9, 0, 40))
    assert (lightmaps.distortion_dr(grid_r, grid_z) <= 0).all()


def test_s2_top_pattern_is_normalised_peaked_and_avoids_dead_pmts():
    pattern = lightmaps.s2_top_pattern([0.0, 20.0], [0.0, -5.0], PHYSICS.s2_pattern_height_cm, "SR1")
    np.testing.assert_allclose(pattern.sum(axis=1), 1)
    assert np.argmax(pattern[0]) == 126
    assert (pattern[:, detector.DEAD_CHANNELS[detector.DEAD_CHANNELS < 127]] == 0).all()
    sr0 = lightmaps.s2_top_pattern([0.0], [0.0], PHYSICS.s2_pattern_height_cm, "SR0")[0]
    assert sr0[51] == 0 and sr0[2] > 0


@pytest.mark.parametrize("period, height_cm", [("SR0", 7.0), ("SR1", 7.0), ("SR1", 4.5)])
def test_s2_top_pattern_kernel_equals_the_closed_form_bit_for_bit(period, height_cm):
    """The kernel must give the closed form's exact values: simulated channels and fitted positions
    of a seed stay the same bytes. The power is libm's, element by element, as in the kernel: numpy's
    SIMD ``**`` (AVX-512 builds) differs in the last bit for a few per cent of the values."""
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-50, 50, 3000), rng.uniform(-50, 50, 3000)
    pmt_xy = detector.pmt_positions()[detector.TOP_CHANNELS]
    u = 1.0 + ((x[:, None] - pmt_xy[:, 0]) ** 2 + (y[:, None] - pmt_xy[:, 1]) ** 2) / height_cm ** 2
    weights = np.vectorize(lambda value: math.pow(value, -1.5))(u)
    weights *= detector.live_mask(period)[detector.TOP_CHANNELS]
    expected = weights / weights.sum(axis=1, keepdims=True)
    assert np.array_equal(lightmaps.s2_top_pattern(x, y, height_cm, period), expected)
    scalar_x = lightmaps.s2_top_pattern(x[7], y[:5], height_cm, period)  # positions broadcast
    assert np.array_equal(scalar_x, lightmaps.s2_top_pattern(np.full(5, x[7]), y[:5], height_cm, period))


@pytest.mark.parametrize("rates, message", [([[300, 5.0]], "channel must be 0-247"), ([[1, -5]], "rate >= 0 Hz"),
                                            ("often", "must be a list")])
def test_bad_lone_hit_rates_are_a_config_error_naming_the_key(rates, message):
    from faxflow.config import campaign_from_dict
    from faxflow.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"physics\.lone_hit_rates_per_channel_hz: .*{message}"):
        campaign_from_dict({"name": "c", "number_job": 1, "number_event_per_job": 5,
                            "physics": {"lone_hit_rates_per_channel_hz": rates}})


def test_pmt_positions_are_paxs():
    # pax/config/XENON1T.ini [DEFAULT] pmts: "position" of channels 0, 126, 127, 131, 132, 187, 200, 247
    positions = detector.pmt_positions()
    expected = {0: (-12.345668, 46.074662), 126: (0.0, 0.0), 127: (-30.689924, 32.282016),
                131: (-1.125779, 44.527886), 132: (-39.125170, 21.288990), 187: (0.0, 0.0),
                200: (13.737863, -1.808624), 247: (30.689924, -32.282016)}
    for channel, xy in expected.items():
        np.testing.assert_allclose(positions[channel], xy, atol=1e-5, err_msg=f"channel {channel}")
