"""Physics steps of the builtin simulator, against the fax numbers (docs/physics.md)."""

import numpy as np
import pandas as pd
import pytest

from faxflow.engines.builtin import detector, radix
from faxflow.engines.builtin.detector import lightmaps
from faxflow.engines.builtin.parameters import PhysicsParameters
from faxflow.engines.builtin.simulation import drift, light_sharing, luminescence, photoionization, pmt, s1, simulate

PHYSICS = PhysicsParameters()
DEPTHS_CM = (10.0, 50.0, 90.0)


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def end_to_end_truth():
    """3 x 400 events at three depths, on the axis, no afterpulses (fast)."""
    n = 400
    depth = np.repeat(DEPTHS_CM, n)
    table = pd.DataFrame({"instruction": np.arange(3 * n), "recoil_type": "ER", "x": 0.0, "y": 0.0,
                          "depth": depth, "s1_photons": 400, "s2_electrons": 40, "t": 1000.0})
    truth, _ = simulate.simulate(table, PHYSICS, pmt_afterpulse=False, s2_afterpulse=False, rng=rng(1))
    truth["depth"] = depth[truth["event"].to_numpy()]
    return truth


@pytest.mark.parametrize("depth", DEPTHS_CM)
def test_mean_drift_time(end_to_end_truth, depth):
    s2 = end_to_end_truth.query("peak_type == 's2' and depth == @depth")
    expected = depth / 1.335e-4 + 1700.0 + 140.0  # + the mean trapping delay
    measured = (s2["t_mean_electrons"] - s2["t_interaction"]).mean()
    assert measured == pytest.approx(expected, abs=60)


@pytest.mark.parametrize("depth", DEPTHS_CM)
def test_electron_survival(end_to_end_truth, depth):
    s2 = end_to_end_truth.query("peak_type == 's2' and depth == @depth")
    expected = 40 * np.exp(-(depth / 1.335e-4 + 1700.0) / 550e3)
    assert s2["n_electrons"].mean() == pytest.approx(expected, rel=0.03)
    assert drift.survival_probability(728e3, PHYSICS) == pytest.approx(0.27, abs=0.005)


@pytest.mark.parametrize("depth", DEPTHS_CM)
def test_diffusion_spread_of_arrival_times(depth):
    physics = PhysicsParameters(electron_trapping_time_ns=0.0)
    drift_time = np.full(200_000, drift.mean_drift_time_ns(depth, physics))
    delays = drift.electron_arrival_delays_ns(drift_time, physics, rng())
    expected_sigma = np.sqrt(2 * 29.35e-9 * drift_time[0]) / 1.335e-4
    assert delays.std() == pytest.approx(expected_sigma, rel=0.02)
    assert delays.mean() == pytest.approx(drift_time[0], abs=10)


def test_diffusion_reference_values():
    sigma = drift.diffusion_sigma_ns(drift.mean_drift_time_ns(np.array(DEPTHS_CM[:2]), PHYSICS), PHYSICS)
    np.testing.assert_allclose(sigma, [502, 1113], rtol=0.01)


def test_trapping_delay_is_exponential():
    delays = drift.electron_arrival_delays_ns(np.zeros(200_000), PhysicsParameters(diffusion_constant_cm2_per_s=0),
                                              rng())
    assert delays.mean() == pytest.approx(140, rel=0.02) and delays.std() == pytest.approx(140, rel=0.02)


def test_s1_detection_is_binomial():
    light_yield = 1.2
    detected = s1.detected_s1_photons(np.full(100_000, 80), np.full(100_000, light_yield), PHYSICS, rng())
    p = 0.12 * light_yield
    assert detected.mean() == pytest.approx(80 * p, rel=0.01)
    assert detected.var() == pytest.approx(80 * p * (1 - p), rel=0.03)


def test_s1_detection_end_to_end(end_to_end_truth):
    s1_rows = end_to_end_truth.query("peak_type == 's1' and depth == 50")
    p = 0.12 * lightmaps.s1_light_yield(0.0, 0.0, -50.0)
    assert s1_rows["n_photons"].mean() == pytest.approx(400 * p, rel=0.03)


def test_s1_timing_models():
    n = 200_000
    er = s1.s1_emission_delays_ns(np.zeros(n, int), PHYSICS, rng())
    assert er.mean() == pytest.approx(44.77, rel=0.01)
    led = s1.s1_emission_delays_ns(np.full(n, s1.RECOIL_CODES["led"]), PHYSICS, rng())
    assert led.min() >= 0 and led.max() <= 100 and led.mean() == pytest.approx(50, rel=0.01)
    alpha = s1.s1_emission_delays_ns(np.full(n, s1.RECOIL_CODES["alpha"]), PHYSICS, rng())
    assert alpha.mean() == pytest.approx(0.737 * 3.1 + 0.263 * 24, rel=0.02)


def test_s2_photons_per_electron(end_to_end_truth):
    s2 = end_to_end_truth.query("peak_type == 's2'")
    per_electron = s2["n_photons"].sum() / s2["n_electrons"].sum()
    assert per_electron == pytest.approx(21.3 * lightmaps.s2_light_yield(0.0, 0.0), rel=0.01)


def test_s2_top_fraction(end_to_end_truth):
    s2 = end_to_end_truth.query("peak_type == 's2'")
    top = (s2["top_fraction"] * s2["n_photons"]).sum() / s2["n_photons"].sum()
    assert top == pytest.approx(0.627, abs=0.005)


def test_s1_top_fraction_follows_the_aft_map(end_to_end_truth):
    for depth in (10.0, 90.0):
        rows = end_to_end_truth.query("peak_type == 's1' and depth == @depth")
        top = (rows["top_fraction"] * rows["n_photons"]).sum() / rows["n_photons"].sum()
        assert top == pytest.approx(lightmaps.s1_top_fraction(0.0, 0.0, -depth), abs=0.02)


def test_luminescence_timing():
    quantiles = luminescence.emission_time_quantiles_ns(PHYSICS)
    assert quantiles[-1] == pytest.approx(359, abs=3)  # full gas-gap transit
    assert luminescence.emission_time_quantiles_ns(PhysicsParameters(gas_gap_cm=0.361))[-1] == pytest.approx(551, abs=5)
    delays = luminescence.s2_photon_delays_ns(200_000, PhysicsParameters(singlet_fraction_gas=0.0), rng())
    emission_mean = np.interp(np.linspace(0, 1, 100_001), np.linspace(0, 1, len(quantiles)), quantiles).mean()
    assert delays.mean() == pytest.approx(emission_mean + 119.5, rel=0.01)


def test_luminescence_delays_are_the_quantile_interpolation_plus_the_excimer_decay_draw_for_draw():
    """Same draws, same values as the documented formula: a seed's S2 timing stays the same bytes."""
    draws = rng(4)
    emission_u, singlet_u, decay = draws.random(5000), draws.random(5000), draws.standard_exponential(5000)
    quantiles = luminescence.emission_time_quantiles_ns(PHYSICS)
    position = emission_u * (len(quantiles) - 1)
    index = np.minimum(position.astype(np.int64), len(quantiles) - 2)
    emission = quantiles[index] * (1.0 - (position - index)) + quantiles[index + 1] * (position - index)
    lifetime = np.where(singlet_u < PHYSICS.singlet_fraction_gas, PHYSICS.singlet_lifetime_gas_ns,
                        PHYSICS.triplet_lifetime_gas_ns)
    assert np.array_equal(luminescence.s2_photon_delays_ns(5000, PHYSICS, rng(4)), emission + decay * lifetime)


def test_light_never_reaches_dead_pmts():
    channels = light_sharing.s1_photon_channels(np.full(50_000, 0.5), "SR1", rng())
    assert not np.isin(channels, detector.DEAD_CHANNELS).any()
    source_x = np.array([0.0, 30.0, -40.0])
    channels = light_sharing.s2_photon_channels(np.arange(60_000) % 3, source_x, np.zeros(3), PHYSICS, rng())
    assert not np.isin(channels, detector.DEAD_CHANNELS).any()
    assert detector.is_top(channels).mean() == pytest.approx(0.627, abs=0.01)


def test_s2_top_light_follows_the_pattern():
    source = np.zeros(100_000, dtype=int)
    channels = light_sharing.s2_photon_channels(source, np.array([15.0]), np.array([-10.0]), PHYSICS, rng())
    top = channels[detector.is_top(channels)]
    observed = np.bincount(top, minlength=127) / len(top)
    expected = lightmaps.s2_top_pattern(15.0, -10.0, PHYSICS.s2_pattern_height_cm, PHYSICS.period)[0]
    np.testing.assert_allclose(observed, expected, atol=0.004)


def test_double_pe_fraction():
    copies = pmt.double_pe_copies(200_000, PHYSICS, rng())
    assert len(copies) / 200_000 == pytest.approx(0.15, abs=0.003)


def test_spe_area_spread():
    channels = np.full(200_000, 0)
    areas = pmt.pe_areas_electrons(channels, PHYSICS, rng())
    gain = detector.gains()[0]
    assert areas.mean() == pytest.approx(gain, rel=0.005)
    assert areas.std() / areas.mean() == pytest.approx(0.41, rel=0.03)
    assert areas.min() >= 0


def test_pmt_afterpulse_rate_and_delays():
    live = np.flatnonzero(detector.live_mask())
    channels = np.repeat(live, 5000)
    parent, delays, areas = pmt.afterpulses(channels, PHYSICS, rng())
    expected = detector.afterpulse_probabilities(PHYSICS)[live].sum()
    assert len(parent) / len(channels) == pytest.approx(expected / len(live), rel=0.02)
    assert delays.min() >= -500 and np.mean((delays > 1000) & (delays < 5000)) > 0.5
    per_channel = np.bincount(channels[parent], minlength=248) / 5000
    expected_per_channel = detector.afterpulse_probabilities(PHYSICS).sum(axis=1)
    assert (np.abs(per_channel - expected_per_channel) <= 4.5 * np.sqrt(expected_per_channel / 5000)).all()


def test_afterpulse_areas_are_single_pe_areas_times_the_amplification():
    channels = np.full(400_000, 3)
    parent, _, areas = pmt.afterpulses(channels, PHYSICS, rng())
    table = detector.afterpulse_table(PHYSICS)
    probability = detector.afterpulse_probabilities(PHYSICS)[3]
    expected_mean = (probability * table.amplitude_mean[3]).sum() / probability.sum()
    relative = areas / detector.gains()[3]
    assert relative.mean() == pytest.approx(expected_mean, rel=0.05)
    uniform_types = np.array([kind.delay_kind == "uniform" for kind in detector.AFTERPULSE_TYPES])
    uniform_share = probability[uniform_types].sum() / probability.sum()
    # uniform types: amplification 1, so single-PE areas (relative width 0.41), not exactly the gain
    single_pe_like = relative[relative < 1.8]
    assert len(single_pe_like) / len(relative) > uniform_share * 0.9
    assert single_pe_like.std() > 0.3


def test_fax_pulse_order_moves_afterpulse_areas_to_the_latest_pulses():
    # event 0, channel 5: photons at 0, 10, 20 ns, a double PE of the first, and an afterpulse of it
    # 5 ns later; event 0, channel 6 and event 1, channel 5: one photon each, no afterpulse
    event = np.array([0, 0, 0, 0, 1])
    channel = np.array([5, 5, 5, 6, 5])
    time_ns = np.array([0.0, 10.0, 20.0, 3.0, 1.0])
    copies = np.array([0])
    pe_area = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # photons, then the copy
    ap_area = np.array([70.0])
    pmt.fax_pulse_order(event, channel, time_ns, copies, pe_area, np.array([5]), np.array([5.0]), ap_area)
    # time order of the group: photon 0 and its copy (0 ns), the afterpulse (5), photons 1, 2
    # areas in draw order: 1, 2, 3, 6 (copy), 70 (afterpulse)
    assert pe_area.tolist() == [1.0, 6.0, 70.0, 4.0, 5.0, 2.0]
    assert ap_area.tolist() == [3.0]


def test_afterpulse_area_choice_moves_light_but_keeps_it():
    table = pd.DataFrame({"instruction": np.arange(30), "recoil_type": "ER", "x": 0.0, "y": 0.0,
                          "depth": 30.0, "s1_photons": 0, "s2_electrons": 60, "t": 1000.0})
    signal = {}
    for choice in ("fax", "own"):
        physics = PhysicsParameters(pmt_afterpulse_areas=choice, lone_hit_rates_per_channel_hz=(), noise_rms_adc=0)
        _, raw = simulate.simulate(table, physics, pmt_afterpulse=True, s2_afterpulse=True, rng=rng(4))
        late = raw.pulse_left > np.repeat(np.full(raw.n_events, 50_000), raw.event_n_pulses)
        per_pulse = np.add.reduceat(raw.baseline_adc - raw.samples.astype(np.int64), raw.pulse_offset)
        signal[choice] = per_pulse.sum(), per_pulse[late].sum()
    # the same draws: the total charge stays (up to truncation), but fax puts the ion afterpulses'
    # large areas on the late photo-ionisation light (500 us after the event start: ~275 us after the S2)
    assert signal["fax"][0] == pytest.approx(signal["own"][0], rel=0.01)
    assert signal["fax"][1] > 1.05 * signal["own"][1]


def test_photoionization_rate_per_photon():
    n_photons = np.array([2_000_000])
    electrons = photoionization.photoionization_electrons(n_photons, np.zeros(2_000_000), PHYSICS, rng())
    tau, window = 550e3, 700e3
    expected = 0.013 * tau / window * (1 - np.exp(-window / tau)) + 0.0014 * np.exp(-1370 / tau)
    assert len(electrons.event) / n_photons[0] == pytest.approx(expected, rel=0.02)
    assert np.hypot(electrons.x_cm, electrons.y_cm).max() <= 47.9
    assert electrons.time_ns.max() <= 700e3


def test_afterpulse_switches(end_to_end_truth):
    table = pd.DataFrame({"instruction": np.arange(50), "recoil_type": "ER", "x": 0.0, "y": 0.0,
                          "depth": 30.0, "s1_photons": 100, "s2_electrons": 50, "t": 1000.0})
    _, with_pi = simulate.simulate(table, PHYSICS, pmt_afterpulse=False, s2_afterpulse=True, rng=rng(3))
    _, without = simulate.simulate(table, PHYSICS, pmt_afterpulse=False, s2_afterpulse=False, rng=rng(3))
    # photo-ionisation electrons arrive up to 700 us later and stretch the events
    assert np.median(with_pi.event_length_samples) > 30_000 > without.event_length_samples.max()


def test_s2_emission_times_follow_fax_weighting_by_default():
    from faxflow.engines.builtin.simulation import luminescence

    fax = luminescence.emission_time_quantiles_ns(PhysicsParameters())
    path = luminescence.emission_time_quantiles_ns(PhysicsParameters(s2_emission_weighting="path"))
    assert fax.mean() == pytest.approx(216.2, rel=0.01)  # pax 6.11.2's own luminescence times
    assert path.mean() == pytest.approx(196.5, rel=0.01)


@pytest.mark.parametrize("n_values, n_groups", [(0, 3), (1, 1), (1000, 50), (20000, 7)])
def test_truth_time_statistics_equal_numpy_to_the_last_bit(n_values, n_groups):
    group = rng(n_values).integers(0, n_groups, n_values)
    values = rng(n_values + 1).normal(1e4, 300.0, n_values)
    n_out = n_groups + 2  # the last two groups stay empty
    count = np.bincount(group, minlength=n_out)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(group, values, minlength=n_out) / count
        sigma = np.sqrt(np.bincount(group, (values - mean[group]) ** 2, minlength=n_out) / count)
    first, last = np.full(n_out, np.nan), np.full(n_out, np.nan)
    for g in np.unique(group):
        first[g], last[g] = values[group == g].min(), values[group == g].max()
    for got, expected in zip(simulate._time_statistics(group, values, n_out), (count, mean, first, last, sigma)):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n_sources", [0, 1, 500])
def test_shifted_cdf_rows_equal_numpy_to_the_last_bit(n_sources):
    radius, angle = 40.0 * np.sqrt(rng(n_sources).random(n_sources)), rng(1).uniform(-np.pi, np.pi, n_sources)
    pattern = lightmaps.s2_top_pattern(radius * np.cos(angle), radius * np.sin(angle), 2.0, PHYSICS.period)
    expected = np.cumsum(pattern, axis=1)
    expected /= expected[:, -1:]
    expected += np.arange(n_sources)[:, None]
    np.testing.assert_array_equal(light_sharing._shifted_cdf_rows(pattern.copy()), expected)


@pytest.mark.parametrize("n_pe", [0, 1, 5000])
def test_stable_order_by_channel_is_a_stable_argsort(n_pe):
    channels = rng(n_pe).integers(0, detector.N_TPC_CHANNELS, n_pe)
    counts = np.bincount(channels, minlength=detector.N_TPC_CHANNELS)
    order = pmt._stable_order_by_channel(channels, np.cumsum(counts) - counts)
    np.testing.assert_array_equal(order, np.argsort(channels, kind="stable"))


@pytest.mark.parametrize("kind", ["int ties", "float", "float ties and NaN", "negative int", "nearly sorted",
                                  "nearly sorted, ties and NaN", "sorted but for its last keys"])
@pytest.mark.parametrize("n", [0, 1, 24, 25, 1000])  # runs of 24 are sorted by insertion, then merged
def test_stable_argsort_values_is_numpys_stable_argsort(kind, n):
    generator = rng(n)
    # nearly sorted keys take one insertion sort; the last kind's moves pass the budget near the end
    nearly_sorted = np.arange(n) + generator.normal(0, 2, n)
    last_keys = np.concatenate([np.arange(n - n // 8), -np.arange(n // 8)]) * 1.0
    keys = {"int ties": generator.integers(0, 5, n), "float": generator.normal(size=n),
            "float ties and NaN": np.where(generator.random(n) < 0.2, np.nan, generator.integers(-3, 3, n) * 1.0),
            "negative int": -generator.integers(0, 1000, n), "nearly sorted": nearly_sorted,
            "nearly sorted, ties and NaN": np.where(generator.random(n) < 0.05, np.nan, np.round(nearly_sorted / 4)),
            "sorted but for its last keys": last_keys}[kind]
    np.testing.assert_array_equal(radix.stable_argsort_values(keys), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("n_channels", [3, 40])  # 3: groups of ~100 pulses (merge sort), 40: a few (insertion)
def test_fax_pulse_order_equals_a_per_group_stable_sort(n_channels):
    generator = rng(n_channels)
    n_photons = 400
    event, channel = generator.integers(0, 2, n_photons), generator.integers(0, n_channels, n_photons)
    time_ns = np.round(generator.uniform(0, 50, n_photons))  # ties: the order must be stable
    copies = np.flatnonzero(generator.random(n_photons) < 0.2)
    pe_area = generator.random(n_photons + len(copies))
    parent = generator.integers(0, n_photons + len(copies), 30)
    delay, ap_area = np.round(generator.uniform(0, 20, 30)), 10 + generator.random(30)
    photon = np.concatenate([np.arange(n_photons), copies])
    photon = np.concatenate([photon, photon[parent]])
    times = time_ns[photon] + np.concatenate([np.zeros(n_photons + len(copies)), delay])
    areas = np.concatenate([pe_area, ap_area])
    expected = areas.copy()
    group = event[photon] * n_channels + channel[photon]
    for key in np.unique(group[n_photons + len(copies):]):  # only groups with an afterpulse change
        members = np.flatnonzero(group == key)
        expected[members[np.argsort(times[members], kind="stable")]] = areas[members]
    pmt.fax_pulse_order(event, channel, time_ns, copies, pe_area, parent, delay, ap_area)
    np.testing.assert_array_equal(np.concatenate([pe_area, ap_area]), expected)
