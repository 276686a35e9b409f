"""Position reconstruction, interactions and corrections on hand-made inputs."""

import numpy as np
import pytest

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.detector import lightmaps
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.processing.calibration import Calibration
from faxflow.engines.builtin.processing.classification import S1, S2, UNKNOWN
from faxflow.engines.builtin.processing.corrections import corrections, true_radius_cm
from faxflow.engines.builtin.processing.interactions import depth_z_cm, find_interactions
from faxflow.engines.builtin.processing.posrec import _log_likelihood, pattern_fit

PHYSICS = PhysicsParameters()
PROCESSING = ProcessingParameters.for_period("SR1")
CALIBRATION = Calibration.of(PROCESSING)


def test_pattern_fit_recovers_positions_across_the_tpc():
    rng = np.random.default_rng(5)
    truth = np.array([[0.0, 0.0], [12.3, -7.7], [-30.0, 20.0], [0.0, 45.0], [-38.0, -5.0]])
    expected = lightmaps.s2_top_pattern(truth[:, 0], truth[:, 1], PHYSICS.s2_pattern_height_cm, "SR1") * 1500
    x, y, gof = pattern_fit(rng.poisson(expected).astype(float), PHYSICS.s2_pattern_height_cm, "SR1")
    assert np.hypot(x - truth[:, 0], y - truth[:, 1]).max() < 1.0
    assert np.all(gof > 0) and np.all(gof < 400)  # ~ chi2 with ~110 dof


def test_pattern_fit_without_top_light_is_nan():
    x, y, gof = pattern_fit(np.zeros((1, 127)), PHYSICS.s2_pattern_height_cm, "SR1")
    assert np.isnan(x[0]) and np.isnan(y[0]) and np.isnan(gof[0])


@pytest.mark.parametrize("period", ["SR0", "SR1"])
def test_fit_likelihood_is_that_of_the_simulators_top_pattern(period):
    """The fit's compiled likelihood must stay the Σ o ln p of lightmaps.s2_top_pattern (dead PMTs included)."""
    rng = np.random.default_rng(3)
    observed = rng.poisson(rng.random((40, 127)) * 4.0) * rng.random((40, 127))
    observed[:, ~detector.live_mask(period)[detector.TOP_CHANNELS]] = 0.0  # dead PMTs have no hits
    xy = rng.uniform(-48.0, 48.0, (40 * 9, 2))
    pattern = lightmaps.s2_top_pattern(xy[:, 0], xy[:, 1], PHYSICS.s2_pattern_height_cm, period).reshape(40, 9, 127)
    expected = np.einsum("nj,nkj->nk", observed, np.log(np.maximum(pattern, 1e-300))).ravel()
    got = _log_likelihood(observed, xy, PHYSICS.s2_pattern_height_cm, period)
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_interactions_rank_s1s_by_coincidence_and_need_s1_before_s2():
    # event 0: S2 at 1000; S1 A (tc 5, 10 PE) before it, S1 B (tc 2, 300 PE) before it, S1 C after it
    # event 1: only an S2 below the 70 PE pairing threshold
    kind = np.array([S1, S1, S2, S1, S2, S2, S1, UNKNOWN])
    area = np.array([10, 300, 5000, 40, 200, 60, 20, 1000.0])
    tight = np.array([5, 2, 50, 9, 30, 20, 4, 1])
    imax = np.array([100, 120, 1000, 1500, 2000, 500, 100, 10])
    bounds = np.array([0, 5, 8])
    pairs = find_interactions(bounds, kind, area, tight, imax, PROCESSING)
    assert (pairs["main_s1"][0], pairs["main_s2"][0]) == (0, 2)  # highest tight coincidence, before the S2
    assert pairs["alt_s1"][0] == 1
    assert pairs["alt_s2"][0] == 4
    assert pairs["main_s2"][1] == -1


def test_s1s_without_bottom_light_or_with_a_slow_rise_are_paired_last():
    from faxflow.engines.builtin.processing.classification import s1_pairing_rank

    # before one S2: a true S1 (tc 1, 7.7 PE, top fraction 0.1, rise 118 ns), two lone hits on the
    # top array (tc 2, 1.4 PE, all on top) and a single electron (tc 7, 20 PE, rise 198 ns)
    properties = {"area": np.array([7.7, 1.4, 20.0, 1500.0]),
                  "area_fraction_top": np.array([0.1, 1.0, 0.32, 0.63]),
                  "area_decile_from_midpoint_1": np.array([-118.0, -12.0, -198.0, -1000.0])}
    kind = np.array([S1, S1, S1, S2])
    tight = np.array([1, 2, 7, 40])
    imax = np.array([10, 20, 30, 400])
    bounds = np.array([0, 4])

    def main_s1(props, processing=PROCESSING):
        rank = s1_pairing_rank(props, processing)
        return find_interactions(bounds, kind, props["area"], tight, imax, processing, rank)["main_s1"][0]

    assert s1_pairing_rank(properties, PROCESSING).tolist()[:3] == [0, 2, 1]
    assert main_s1(properties) == 0
    fast_electron = dict(properties, area_decile_from_midpoint_1=np.array([-118.0, -12.0, -100.0, -1000.0]))
    assert main_s1(fast_electron) == 2  # equal rank: tight coincidence decides
    assert main_s1(properties, ProcessingParameters.for_period("SR1", s1_rank_by_shape=False)) == 2  # pax


def test_z_from_drift_time():
    assert depth_z_cm(1700.0, CALIBRATION) == pytest.approx(0.0)
    assert depth_z_cm(1700.0 + 100_000, CALIBRATION) == pytest.approx(-13.35)


def test_fdc_inverts_the_simulator_distortion():
    r_true, z = np.array([5.0, 25.0, 43.0]), np.array([-10.0, -50.0, -90.0])
    observed = r_true + lightmaps.distortion_dr(r_true, z)
    assert true_radius_cm(observed, z) == pytest.approx(r_true, abs=1e-3)


def test_corrections():
    out = corrections(np.array([10.0, np.nan]), np.array([1000.0, np.nan]), np.array([0.6, np.nan]),
                      np.array([3.0, np.nan]), np.array([4.0, np.nan]), np.array([-50.0, np.nan]),
                      np.array([550_000.0, np.nan]), CALIBRATION)
    r = out["r"][0]
    assert out["r_observed"][0] == pytest.approx(5.0) and r > 5.0
    assert out["s2_lifetime_correction"][0] == pytest.approx(np.e)
    x, y = 3.0 * r / 5.0, 4.0 * r / 5.0  # the distortion is radial
    assert out["cs2"][0] == pytest.approx(1000 * np.e / lightmaps.s2_light_yield(x, y))
    assert out["cs2_top"][0] + out["cs2_bottom"][0] == pytest.approx(out["cs2"][0])
    assert out["cs1"][0] == pytest.approx(10 / lightmaps.s1_light_yield(x, y, -50.0))
    assert all(np.isnan(values[1]) for values in out.values())
