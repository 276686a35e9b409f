"""Clustering, splitting, peak properties and classification on synthetic events."""

import numpy as np
import pytest
from test_processing_synthetic import make_raw

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.processing import peaks
from faxflow.engines.builtin.processing.classification import LONE_HIT, S1, S2, UNKNOWN, classify
from faxflow.engines.builtin.processing.process import process
from faxflow.engines.builtin.processing.sumwaveform import area_quantile_times

PHYSICS = PhysicsParameters()
PROCESSING = ProcessingParameters.for_period("SR1")
LIVE = np.flatnonzero(detector.live_mask())
LIVE_TOP = LIVE[LIVE < 127]


def s1_photons(rng, t_ns, n):
    return [(c, t_ns + rng.exponential(45), 1) for c in rng.choice(LIVE, n, replace=False)]


def s2_photons(rng, t_ns, n, sigma_ns=300):
    return [(c, t_ns + rng.normal(0, sigma_ns) + rng.uniform(0, 360), 1) for c in rng.choice(LIVE, n)]


def run(events, **kwargs):
    return process(make_raw(events, **kwargs), PROCESSING)


def test_area_quantiles_of_a_flat_waveform():
    out = np.empty(21)
    area_quantile_times(np.ones(10), 10, 100, 10.0, out)
    assert out[0] == pytest.approx(1000) and out[20] == pytest.approx(1100)
    assert out[15] - out[5] == pytest.approx(50)  # 50 % width


def test_s1_and_s2_become_one_peak_each_with_correct_properties():
    rng = np.random.default_rng(1)
    result = run([s1_photons(rng, 3000, 12) + s2_photons(rng, 15000, 600)], length_samples=2500)
    peaks = result.peaks.set_index("type")
    assert sorted(result.peaks["type"]) == ["s1", "s2"]
    assert peaks.loc["s1", "area"] == pytest.approx(12, rel=0.15)
    assert peaks.loc["s1", "n_contributing_channels"] == 12
    assert peaks.loc["s1", "tight_coincidence"] >= 6
    assert peaks.loc["s2", "area"] == pytest.approx(600, rel=0.05)
    assert -peaks.loc["s1", "area_decile_from_midpoint_1"] < 70
    assert 300 < peaks.loc["s2", "range_area_decile_5"] < 600  # Gaussian 300 ns ⊗ flat 360 ns
    assert peaks.loc["s2", "index_of_maximum"] == pytest.approx(1518, abs=30)
    event = result.events.iloc[0]
    assert (event.main_s1, event.main_s2) == (0, 1)
    assert event.drift_time == pytest.approx(12000, abs=300)


def test_area_fraction_top_and_hit_time_spread():
    rng = np.random.default_rng(2)
    top = [(c, 5000 + rng.normal(0, 200), 1) for c in rng.choice(LIVE_TOP, 300)]
    bottom = [(c, 5000 + rng.normal(0, 200), 1) for c in rng.choice(LIVE[LIVE >= 127], 100)]
    peak = run([top + bottom], length_samples=1200).peaks.iloc[0]
    assert peak.area_fraction_top == pytest.approx(0.75, abs=0.03)
    assert peak.hit_time_std == pytest.approx(200, rel=0.2)
    assert peak.hit_time_mean == pytest.approx(5000 + 30, abs=40)


def test_sum_waveform_variances_add_so_diffusion_adds_its_own():
    rng = np.random.default_rng(5)
    narrow, wide = (run([s2_photons(rng, 15000, 8000, sigma)], length_samples=3000).peaks.iloc[0].time_std
                    for sigma in (300, 600))
    assert wide ** 2 - narrow ** 2 == pytest.approx(600 ** 2 - 300 ** 2, rel=0.06)


def test_s1s_are_kept_apart_by_the_350ns_gap_and_lone_hits_are_counted():
    rng = np.random.default_rng(3)
    photons = s1_photons(rng, 2000, 10) + s1_photons(rng, 4000, 10) + [(LIVE[5], 9000, 1)]
    result = run([photons], length_samples=1500)
    assert list(result.peaks["type"]) == ["s1", "s1"]
    assert result.events.n_lone_hits[0] == 1


def test_natural_breaks_splits_two_s2s_within_the_pass2_gap():
    rng = np.random.default_rng(4)
    events = [s2_photons(rng, 5000, 400, 100) + s2_photons(rng, 8000, 400, 100),  # 3 µs apart: one pass-2 cluster
              s2_photons(rng, 5000, 800, 500)]  # one wide S2: must stay whole
    peaks = run(events, length_samples=1500).peaks
    first, second = peaks[peaks.event_number == 0], peaks[peaks.event_number == 1]
    assert list(first["type"]) == ["s2", "s2"]
    assert first["area"].to_numpy() == pytest.approx([400, 400], rel=0.08)
    assert list(second["type"]) == ["s2"]


def peak_properties(**columns):
    defaults = {"area": 8.0, "area_fraction_top": 0.2, "range_area_decile_5": 60.0, "range_area_decile_9": 100.0,
                "area_decile_from_midpoint_1": -30.0, "tight_coincidence": 3, "n_contributing_channels": 5}
    n = max(len(np.atleast_1d(v)) for v in columns.values())
    return {name: np.broadcast_to(np.asarray(columns.get(name, value), dtype=float), n)
            for name, value in defaults.items()}


def test_split_threshold_interpolation_is_np_interp_bit_for_bit():
    table_x, table_y = peaks.NATURAL_BREAKS_LOG10_AREA, peaks.NATURAL_BREAKS_THRESHOLD
    xs = np.concatenate([table_x, np.nextafter(table_x, -1), np.nextafter(table_x, 9), [-1.0, 6.0, 1e300],
                         np.random.default_rng(4).uniform(-0.5, 6, 2000)])
    for x in xs:
        assert peaks._interpolate(x, table_x, table_y) == np.interp(x, table_x, table_y), x


def test_classification_rule():
    rise = np.array([30, 30, 200, 200, 30, 30])
    props = peak_properties(area_decile_from_midpoint_1=-rise, range_area_decile_9=[100, 100, 800, 800, 100, 100],
                            range_area_decile_5=[60, 60, 300, 300, 60, 60], tight_coincidence=[3, 1, 1, 1, 1, 1],
                            n_contributing_channels=[5, 2, 10, 3, 1, 3])
    assert list(classify(props, PROCESSING)) == [S1, UNKNOWN, S2, UNKNOWN, LONE_HIT, S1]
    limit = PROCESSING.s1_max_width_90p_ns
    wide = classify(peak_properties(range_area_decile_9=[limit - 1, limit + 1], range_area_decile_5=[200, 200]),
                    PROCESSING)
    assert list(wide) == [S1, S2]  # fast rise; the 90 % width decides


def test_single_electron_s2s_are_not_s1s():
    # a fast single-electron-like peak: ~20 PE, top-heavy (light made in the gas) -> S2
    single_electron = peak_properties(area=20.0, area_fraction_top=0.65, area_decile_from_midpoint_1=-60.0)
    assert list(classify(single_electron, PROCESSING)) == [S2]
    # the same peak with an S1's top fraction is an S1; a large one rising slowly is not
    assert list(classify(peak_properties(area=20.0, area_decile_from_midpoint_1=-60.0), PROCESSING)) == [S1]
    slow_rise = peak_properties(area=20.0, area_decile_from_midpoint_1=-(PROCESSING.s1_large_max_rise_time_ns + 5))
    assert list(classify(slow_rise, PROCESSING)) == [S2]


def test_small_s1_broadened_by_a_late_hit_stays_an_s1():
    # narrow core (50 % width) but a 90 % width and rise stretched by one late afterpulse
    broadened = peak_properties(area=6.0, range_area_decile_9=700.0, range_area_decile_5=90.0,
                                area_decile_from_midpoint_1=-150.0)
    assert list(classify(broadened, PROCESSING)) == [S1]
    top_heavy = peak_properties(area=6.0, area_fraction_top=0.8, range_area_decile_9=700.0,
                                range_area_decile_5=90.0, area_decile_from_midpoint_1=-150.0)
    assert list(classify(top_heavy, PROCESSING)) == [S2]


def test_small_peaks_before_the_first_large_s2_are_s1s():
    # per event: a top-heavy 6 PE S1, a broadened 8 PE one, a 2-channel one with its hits 150 ns apart,
    # the S2; event 0 has them before its S2, event 1 after
    props = peak_properties(area=[6.0, 8.0, 2.0, 900.0] * 2, area_fraction_top=[0.9, 0.2, 0.2, 0.63] * 2,
                            range_area_decile_5=[90, 220, 100, 900] * 2,
                            range_area_decile_9=[300, 600, 150, 2000] * 2,
                            area_decile_from_midpoint_1=[-40, -150, -20, -600] * 2,
                            tight_coincidence=[3, 3, 1, 50] * 2, n_contributing_channels=[5, 5, 2, 150] * 2)
    props["left"] = np.array([100, 200, 300, 5000, 9000, 9100, 9200, 100])
    event = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert list(classify(props, PROCESSING)) == [S2, S2, UNKNOWN, S2] * 2
    assert list(classify(props, PROCESSING, event)) == [S1, S1, S1, S2, S2, S2, UNKNOWN, S2]
    off = PROCESSING.model_copy(update={"s1_before_s2_max_width_50p_ns": 0.0})
    assert list(classify(props, off, event)) == [S2, S2, UNKNOWN, S2] * 2


def test_narrow_s1s_rising_slowly_before_the_first_s2_escape_the_large_area_veto():
    # before the S2: a 14 PE S1 whose rise a late hit stretched (narrow core, top fraction 0.41) and
    # a single electron as narrow but top-heavy (0.59, 1.8 sigma above 0.36)
    props = peak_properties(area=[14.0, 15.0, 900.0], area_fraction_top=[0.41, 0.59, 0.63],
                            range_area_decile_5=[120, 113, 900], range_area_decile_9=[690, 400, 2000],
                            area_decile_from_midpoint_1=[-207, -148, -600], tight_coincidence=[8, 5, 50],
                            n_contributing_channels=[11, 9, 150])
    props["left"] = np.array([100, 200, 5000])
    event = np.zeros(3, dtype=np.int64)
    assert list(classify(props, PROCESSING, event)) == [S1, S2, S2]
    strict = PROCESSING.model_copy(update={"s1_before_s2_top_sigma": -1e9})
    assert list(classify(props, strict, event)) == [S2, S2, S2]


def test_empty_and_noise_only_events_are_kept():
    result = run([[], [(LIVE[0], 100, 0)]], length_samples=800)
    assert list(result.events["event_number"]) == [0, 1]
    assert (result.events["main_s2"] == -1).all() and result.events["drift_time"].isna().all()
    assert len(result.peaks) == 0
