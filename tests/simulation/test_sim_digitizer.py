"""PE pulse shape, ADC conversion, noise and software ZLE of the builtin simulator."""

import numpy as np
import pandas as pd
import pytest

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.parameters import PhysicsParameters
from faxflow.engines.builtin.simulation import digitizer, simulate

QUIET = PhysicsParameters(noise_rms_adc=0.0, noise_pulse_rate_per_channel_hz=0.0)
EVENT_SAMPLES = 2000


def digitize_pes(times_ns, areas, channel=3, physics=QUIET, seed=0):
    n = len(times_ns)
    deposits = digitizer.pe_deposits(np.zeros(n, dtype=np.int64), np.full(n, channel), np.asarray(times_ns, float),
                                     np.asarray(areas, float), np.array([EVENT_SAMPLES]), physics)
    rng = np.random.default_rng(seed)
    return digitizer.digitize(digitizer.sort_deposits([deposits]), np.array([EVENT_SAMPLES]), physics,
                              digitizer.make_noise_bank(rng, 4096), rng)


def signal(pulses, baseline=16000):
    return baseline - pulses.samples.astype(np.int64)


def test_spe_template():
    times, amplitudes = digitizer.spe_pulse_shape()
    assert len(times) == 209 and times[np.argmax(amplitudes)] == 0
    weights = amplitudes / amplitudes.sum()
    assert (weights * times).sum() == pytest.approx(24.9, abs=1.0)
    assert weights[times > 20].sum() == pytest.approx(0.25, abs=0.02)
    fractions = digitizer.pulse_charge_fractions(10.0)
    assert fractions.shape == (10, 22)
    assert 0.33 <= fractions.max(axis=1).min() and fractions.max(axis=1).max() <= 0.49


def test_one_pe_area_is_gain_times_adc_conversion():
    gain = 2e6
    pulses = digitize_pes([5003.0], [gain])
    expected = gain * 5.833e-4 / 10  # 116.7 ADC x samples
    assert expected == pytest.approx(116.7, abs=0.05)
    area = signal(pulses).sum()
    assert expected - 22 <= area <= expected  # each of the 22 samples is truncated towards 0
    big = signal(digitize_pes([5003.0], [100 * gain])).sum()
    assert big == pytest.approx(100 * expected, rel=0.005)


def test_pulse_lands_one_sample_after_the_photon():
    pulses = digitize_pes([5000.0], [20e6])
    wave = np.zeros(EVENT_SAMPLES, dtype=np.int64)
    wave[pulses.left[0]:pulses.left[0] + pulses.length[0]] = signal(pulses)
    assert np.argmax(wave) == 501  # photon in sample 500, template maximum one sample later


def test_adc_is_clipped_to_the_digitizer_range():
    pulses = digitize_pes([5000.0], [1e12])
    assert pulses.samples.min() == 0


def test_zle_window_padding_and_alignment():
    pulses = digitize_pes([5000.0], [4e6])
    assert len(pulses.left) == 1
    crossing = np.flatnonzero(signal(pulses) > 16) + pulses.left[0]
    left, stop = pulses.left[0], pulses.left[0] + pulses.length[0] - 1
    assert left % 2 == 0 and stop % 2 == 1
    assert crossing[0] - 50 <= left <= crossing[0] - 49
    assert crossing[-1] + 49 <= stop <= crossing[-1] + 50


def test_zle_merges_overlapping_windows_and_splits_distant_ones():
    close = digitize_pes([5000.0, 5800.0], [4e6, 4e6])  # 80 samples apart: windows overlap
    assert len(close.left) == 1
    far = digitize_pes([5000.0, 8000.0], [4e6, 4e6])
    assert len(far.left) == 2 and far.left[1] > far.left[0] + far.length[0]


def test_below_threshold_is_not_stored():
    assert len(digitize_pes([5000.0], [0.2e6]).left) == 0


def test_noise_rms_and_noise_only_pulses():
    physics = PhysicsParameters(noise_pulse_rate_per_channel_hz=2e4)
    rng = np.random.default_rng(2)
    lengths = np.array([100_000])
    spikes = digitizer.noise_spike_deposits(lengths, physics, rng)
    assert len(spikes.event) == pytest.approx(2e4 * 1e-3 * 212, rel=0.1)
    assert not np.isin(spikes.channel, detector.DEAD_CHANNELS).any()
    pulses = digitizer.digitize(digitizer.sort_deposits([spikes]), lengths, physics,
                                digitizer.make_noise_bank(rng), rng)
    assert len(pulses.left) >= 0.9 * len(spikes.event)
    starts = np.concatenate([[0], np.cumsum(pulses.length)[:-1]])
    first_samples = np.concatenate([pulses.samples[s:s + 40] for s in starts]).astype(float)
    assert first_samples.mean() == pytest.approx(16000, abs=0.1)
    assert first_samples.std() == pytest.approx(np.median(digitizer.noise_rms_adc(physics)), rel=0.1)


def test_nothing_is_stored_for_dead_channels():
    n = 30
    table = pd.DataFrame({"instruction": np.arange(n), "recoil_type": "ER", "x": np.linspace(-40, 40, n),
                          "y": 5.0, "depth": 20.0, "s1_photons": 300, "s2_electrons": 100, "t": 1000.0})
    _, raw = simulate.simulate(table, PhysicsParameters(), pmt_afterpulse=True, s2_afterpulse=True,
                               rng=np.random.default_rng(5))
    assert len(raw.pulse_channel) > 1000
    assert not np.isin(raw.pulse_channel, detector.DEAD_CHANNELS).any()
    assert set(np.unique(raw.pulse_channel)) == set(np.flatnonzero(detector.live_mask()))
