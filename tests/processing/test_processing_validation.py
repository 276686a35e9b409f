"""Processing + minitrees validated against the builtin simulator's truth (2017 SR1 settings).

One production of 1000 events: photons 50-100, electrons 10-100, uniform in r <= 36.94 cm and
9 <= depth <= 92.9 cm, t = 1000 ns, PMT afterpulses and photo-ionisation on.
"""

import numpy as np
import pandas as pd
import pytest

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.minitrees import build_minitrees
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.processing.process import process
from faxflow.engines.builtin.simulation import digitizer, pmt
from faxflow.engines.builtin.simulation.simulate import simulate

N_EVENTS = 1000
PHYSICS = PhysicsParameters.for_period("SR1")
# pax HEAD's S1 cuts, and the builtin defaults that are loose enough for this pulse model
# (see test_main_s1_is_found)
PROCESSING = ProcessingParameters.for_period("SR1", s1_max_rise_time_ns=70.0, s1_max_width_90p_ns=300.0)
RELAXED = ProcessingParameters.for_period("SR1")
DPE = 1 + PHYSICS.double_pe_probability


def instructions(n, seed):
    rng = np.random.default_rng(seed)
    radius = 36.94 * np.sqrt(rng.random(n))
    angle = rng.uniform(-np.pi, np.pi, n)
    return pd.DataFrame({"instruction": np.arange(n), "recoil_type": "ER", "x": radius * np.cos(angle),
                         "y": radius * np.sin(angle), "depth": rng.uniform(9, 92.9, n),
                         "s1_photons": rng.integers(50, 100, n), "s2_electrons": rng.integers(10, 100, n),
                         "t": 1000.0})


def per_event(processed, processing, truth, produced_electrons):
    """Minitree rows joined with the truth and with the main peaks' hit_time_mean."""
    table = build_minitrees(processed, processing).set_index("event_number")
    peaks = processed.peaks.set_index(["event_number", "peak_index"])["hit_time_mean"]
    events = processed.events.set_index("event_number")
    for which in ("main_s1", "main_s2"):
        keys = list(zip(events.index, events[which]))
        table[f"{which}_time"] = [peaks.get(key, np.nan) for key in keys]
    peaks_table = processed.peaks
    s2_peaks = peaks_table[(peaks_table["type"] == "s2") & (peaks_table["area"] >= processing.s2_pairing_threshold_pe)]
    table["largest_s2_time"] = s2_peaks.sort_values("area").groupby("event_number")["hit_time_mean"].last()
    for peak_type in ("s1", "s2"):
        rows = truth[truth["peak_type"] == peak_type].set_index("event")
        for column in ("n_photons", "t_mean_photons", "x", "y", "z", "n_electrons"):
            table[f"truth_{peak_type}_{column}"] = rows[column]
    table["truth_s1_n_photons"] = table["truth_s1_n_photons"].fillna(0)
    table["truth_s2_n_electrons"] = table["truth_s2_n_electrons"].fillna(0)
    table["produced_electrons"] = produced_electrons
    table["truth_drift_time"] = table["truth_s2_t_mean_photons"] - table["truth_s1_t_mean_photons"]
    table["s1_ok"] = (table["main_s1_time"] - table["truth_s1_t_mean_photons"]).abs() < 200
    table["s2_ok"] = (table["main_s2_time"] - table["truth_s2_t_mean_photons"]).abs() < 2000
    return table


@pytest.fixture(scope="module")
def production():
    table = instructions(N_EVENTS, seed=2017)
    truth, raw = simulate(table, PHYSICS, pmt_afterpulse=True, s2_afterpulse=True, rng=np.random.default_rng(11))
    electrons = table["s2_electrons"].to_numpy()
    return {name: per_event(process(raw, processing), processing, truth, electrons)
            for name, processing in (("head", PROCESSING), ("relaxed", RELAXED))}


@pytest.fixture(scope="module")
def events(production):
    """Relaxed-S1-cut processing, events whose main S1 and S2 are the true ones."""
    table = production["relaxed"]
    return table[table["s1_ok"] & table["s2_ok"]]


def test_main_s2_is_found(production):
    for table in production.values():
        enough = table[table["truth_s2_n_electrons"] >= 5]
        largest_ok = (enough["largest_s2_time"] - enough["truth_s2_t_mean_photons"]).abs() < 2000
        assert largest_ok.mean() >= 0.99  # the S2 the interaction builder tries first
        paired = enough[enough["s2"].notna()]
        assert paired["s2_ok"].mean() >= 0.99
    relaxed = production["relaxed"]
    both = relaxed[(relaxed["truth_s2_n_electrons"] >= 5) & (relaxed["truth_s1_n_photons"] >= 3)]
    assert both["s2_ok"].mean() >= 0.95  # a main S2 needs an S1 before it


def test_main_s1_is_found(production):
    """pax HEAD's S1 rule (rise < 70 ns, 90 % width < 300 ns) loses ~10 % of 5-15 PE S1s here:
    with a 44.77 ns scintillation decay and the SPE template's 117 ns tail, t50 - t10 of a few-PE
    S1 exceeds 70 ns by chance that often even without noise. Looser cuts recover them."""
    for name, minimum in (("head", 0.80), ("relaxed", 0.95)):
        table = production[name]
        # a main S1 needs a main S2
        pairable = (table["truth_s1_n_photons"] >= 3) & (table["truth_s2_n_electrons"] >= 5)
        assert table.loc[pairable, "s1_ok"].mean() >= minimum, name


def test_drift_time_and_z(events):
    relative = (events["drift_time"] - events["truth_drift_time"]) / events["truth_drift_time"]
    assert abs(relative.mean()) < 0.01
    assert np.sqrt(((events["z"] - events["truth_s2_z"]) ** 2).mean()) <= 1.0


def test_xy_resolution_of_large_s2s(events):
    large = events[events["s2"] > 1000]
    assert len(large) > 100
    residual = np.hypot(large["x_pax"] - large["truth_s2_x"], large["y_pax"] - large["truth_s2_y"])
    assert np.sqrt((residual ** 2).mean()) <= 2.0


def isolated_pe_area_fraction():
    """Mean fraction of a lone PE's area that survives the digitiser's per-sample truncation."""
    rng = np.random.default_rng(0)
    channels = rng.choice(np.flatnonzero(detector.live_mask()), 20000)
    adc_area = pmt.pe_areas_electrons(channels, PHYSICS, rng) / detector.electrons_per_adc_sample(PHYSICS)
    fractions = digitizer.pulse_charge_fractions(PHYSICS.sample_duration_ns)[rng.integers(0, 10, len(channels))]
    return np.floor(adc_area[:, None] * fractions).sum() / adc_area.sum()


def test_areas_match_detected_photons(events):
    s2_ratio = (events["s2"] / (DPE * events["truth_s2_n_photons"])).mean()
    assert s2_ratio == pytest.approx(1.0, abs=0.05)
    s1_ratio = (events["s1"] / (DPE * events["truth_s1_n_photons"])).mean()
    # The simulator truncates each sample's signal to whole ADC counts (like fax): an isolated PE
    # loses ~6 % of its area, so the raw S1 ratio is ~0.94; corrected for that it is ~1.
    assert s1_ratio / isolated_pe_area_fraction() == pytest.approx(1.0, abs=0.03)
    assert s1_ratio == pytest.approx(1.0, abs=0.08)


def test_s2_width_follows_diffusion(events):
    """range_50p² = a + b t_d with b = 1.349² · 2 D / v_d² (median per drift-time bin, robust to
    afterpulses and photo-ionisation electrons merged into the S2)."""
    usable = events[events["s2"] > 300]
    bins = pd.qcut(usable["truth_drift_time"], 8)
    drift = usable.groupby(bins, observed=True)["truth_drift_time"].median()
    width_sq = usable.groupby(bins, observed=True)["s2_range_50p_area"].median() ** 2
    slope = np.polyfit(drift, width_sq, 1)[0]
    velocity_cm_per_ns = PHYSICS.drift_velocity_um_per_ns * 1e-4
    diffusion_cm2_per_s = slope / 1.349 ** 2 * velocity_cm_per_ns ** 2 / 2 * 1e9
    assert diffusion_cm2_per_s == pytest.approx(PHYSICS.diffusion_constant_cm2_per_s, rel=0.15)


def test_cs2_is_flat_in_drift_time(events):
    per_electron = events["cs2"] / events["produced_electrons"]
    bins = pd.qcut(events["drift_time"], 5)
    profile = per_electron.groupby(bins, observed=True).mean() / per_electron.mean()
    assert np.all(np.abs(profile - 1) < 0.05)
    uncorrected = (events["s2"] / events["produced_electrons"]).groupby(bins, observed=True).mean()
    assert uncorrected.iloc[0] / uncorrected.iloc[-1] > 1.5  # the lifetime correction matters
