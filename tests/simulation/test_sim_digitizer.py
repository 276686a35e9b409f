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


def _reference_zle(deposits, lengths, physics, noise_bank, rng):
    """Plain-numpy digitiser + ZLE of the kernel's regions (same noise draws): (event, channel, left, samples)."""
    padding, baseline = physics.zle_padding_samples, physics.digitizer_baseline_adc
    left, right, first, last = digitizer._regions(deposits.event, deposits.channel, deposits.start, deposits.offset,
                                                  lengths, padding + 2, digitizer.PULSE_SAMPLES)
    noise_starts = rng.integers(0, len(noise_bank), size=len(left))
    current_per_electron = digitizer.pulse_charge_fractions(physics.sample_duration_ns) / physics.sample_duration_ns
    rms, thresholds = digitizer.noise_rms_adc(physics), detector.zle_thresholds_adc(physics)
    pulses = []
    for r in range(len(left)):
        width, channel = right[r] - left[r], deposits.channel[first[r]]
        current = np.zeros(width + digitizer.PULSE_SAMPLES)
        for i in range(first[r], last[r]):
            if deposits.offset[i] >= 0:
                begin = deposits.start[i] - left[r]
                current[begin:begin + digitizer.PULSE_SAMPLES] += deposits.amount[i] * current_per_electron[
                    deposits.offset[i]]
        noise = noise_bank[(noise_starts[r] + np.arange(width)) % len(noise_bank)]
        raw = (baseline - (current[:width] * physics.adc_per_electron_per_ns).astype(np.int64)
               + np.rint(noise * rms[channel]).astype(np.int64))
        raw = np.clip(raw, 0, digitizer.MAX_ADC)
        for i in range(first[r], last[r]):
            if deposits.offset[i] < 0:
                where = deposits.start[i] - left[r]
                raw[where] = max(min(raw[where], baseline - int(deposits.amount[i])), 0)
        windows = []
        for crossing in np.flatnonzero(raw < baseline - thresholds[channel] - 1):
            lo, hi = max(crossing - padding, 0), min(crossing + padding, width - 1)
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], hi)
            else:
                windows.append([lo, hi])
        for lo, hi in windows:
            lo, hi = lo + (left[r] + lo) % 2, hi - (1 - (left[r] + hi) % 2)
            if hi >= lo:
                pulses.append((deposits.event[first[r]], channel, left[r] + lo, raw[lo:hi + 1]))
    return pulses


def test_digitiser_kernel_equals_a_plain_numpy_digitiser_sample_for_sample():
    """Every stored sample of a noisy batch (PEs of all sizes, pile-up, spikes, the noise bank wrapping
    around, clipping) equals a direct numpy evaluation of the same model with the same draws."""
    physics = PhysicsParameters(noise_pulse_rate_per_channel_hz=2e3)
    rng = np.random.default_rng(11)
    lengths = np.array([30_000, 12_000, 50_000])
    n = 4000
    event = rng.integers(0, 3, n)
    channel = rng.choice(np.flatnonzero(detector.live_mask(physics.period)), n)
    time_ns = rng.random(n) * (lengths[event] * 10 - 5000)
    area = 2e6 * np.exp(rng.normal(0, 1.5, n))  # from below threshold to the ADC's floor
    parts = [digitizer.pe_deposits(event, channel, time_ns, area, lengths, physics),
             digitizer.noise_spike_deposits(lengths, physics, rng)]
    deposits = digitizer.sort_deposits(parts)
    noise_bank = digitizer.make_noise_bank(rng, 5000)  # small: regions wrap around its end
    state = rng.bit_generator.state
    pulses = digitizer.digitize(deposits, lengths, physics, noise_bank, rng)
    rng.bit_generator.state = state
    expected = _reference_zle(deposits, lengths, physics, noise_bank, rng)
    assert len(expected) == len(pulses.left) > 1000
    assert (pulses.samples == 0).any() and len(parts[1].event) > 50
    offsets = np.concatenate([[0], np.cumsum(pulses.length)])
    for k, (event_k, channel_k, left_k, samples_k) in enumerate(expected):
        assert (pulses.event[k], pulses.channel[k], pulses.left[k]) == (event_k, channel_k, left_k)
        assert np.array_equal(pulses.samples[offsets[k]:offsets[k + 1]], samples_k)
