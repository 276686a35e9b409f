"""The builtin chain's physics figures on 5000 events of the 2017 test settings (docs/physics.md,
"Validation"); ``physics_validation.py`` prints them.

pax's own chain on the same settings: 0.65 'unknown' peaks and 0.038 SE-like S1s per event,
1.159 PE of S2 area per truth photon; faxflow's top pattern gives 1.185-1.187 over seeds 2017, 1, 2,
3, 4, checked within 2.5 % (the remaining +2.3 % is open, docs/physics.md "S2 area per truth
photon"). The pairing bound is the 99.5 % aimed for (seed 2017 here: pairing 0.999,
main S1 0.999, main S2 0.993; over the five seeds pairing 0.998-1.000, main S1 0.997-0.999, main S2
0.992-0.994), and the 'unknown' peaks sit just below twice pax's (1.17-1.21).
"""

import pytest
from physics_validation import figures, run

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
