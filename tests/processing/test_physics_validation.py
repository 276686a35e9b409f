"""The builtin chain's physics figures on 5000 events of the 2017 test settings (docs/physics.md,
"Validation"); ``physics_validation.py`` prints them.

pax's own chain on the same settings: 0.65 'unknown' peaks and 0.038 SE-like S1s per event,
1.159 PE of S2 area per truth photon. pax's public repository lacks the per-PMT pattern files,
without which fax shares S2 light uniformly over all live PMTs, so the S2 area is compared like for
like with that light sharing, and within 2.5 % with faxflow's top pattern (1.185-1.187 over
seeds 2017, 1, 2, 3, 4). The pairing bound is the 99.5 % aimed for (seed 2017 here: pairing 0.999,
main S1 0.999, main S2 0.993; over the five seeds pairing 0.998-1.000, main S1 0.997-0.999, main S2
0.992-0.994), and the 'unknown' peaks sit just below twice pax's (1.17-1.21).
"""

import pytest
from physics_validation import figures, run

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.parameters import PhysicsParameters

PAX_UNKNOWN_PEAKS_PER_EVENT = 0.65
PAX_S2_AREA_PER_TRUTH_PHOTON = 1.159


@pytest.fixture(scope="module")
def measured():
    return figures(*run(5000))


@pytest.mark.slow
def test_single_electron_s2s_stay_out_of_the_s1s(measured):
    assert measured["se_like_s1_per_event"] <= 0.04


@pytest.mark.slow
def test_main_interactions_are_found(measured):
    assert measured["main_interaction_pairing"] >= 0.995
    assert measured["main_s1_found"] >= 0.994
    assert measured["main_s2_found"] >= 0.99


@pytest.mark.slow
def test_spurious_peaks_and_s2_area_scale_near_pax(measured):
    assert measured["unknown_peaks_per_event"] <= 2 * PAX_UNKNOWN_PEAKS_PER_EVENT
    assert measured["s2_area_per_truth_photon"] == pytest.approx(PAX_S2_AREA_PER_TRUTH_PHOTON, rel=0.025)


@pytest.mark.slow
def test_s2_area_per_truth_photon_as_pax_without_pattern_files():
    """fax without pattern files sends S2 photons uniformly to all live PMTs: a flat top pattern
    and the live top-channel share as top probability reproduce that."""
    live = detector.live_mask()
    uniform = PhysicsParameters.for_period("SR1", s2_pattern_height_cm=1e4, s2_mean_area_fraction_top=float(
        live[detector.TOP_CHANNELS].sum() / live.sum()))
    pax_like = figures(*run(1500, physics=uniform))
    assert pax_like["s2_area_per_truth_photon"] == pytest.approx(PAX_S2_AREA_PER_TRUTH_PHOTON, rel=0.01)
