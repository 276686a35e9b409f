"""Hand-made raw data for the processing tests (SPE pulses on Gaussian noise, a simple ZLE), and its self-test."""

import numpy as np

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.processing.calibration import Calibration
from faxflow.engines.builtin.rawio import RawData

BASELINE = 16000
# fraction of one PE's integrated ADC area per sample, starting one sample before the maximum
SPE_SHAPE = np.array([0.08, 0.42, 0.2, 0.1, 0.07, 0.05, 0.04, 0.03, 0.01])


def make_raw(events, physics=None, length_samples=2000, noise_adc=2.0, seed=0, zle_threshold=15, padding=50):
    """``events``: list (one per event) of arrays of (channel, time_ns, n_pe) photon groups."""
    physics = physics or PhysicsParameters()
    rng = np.random.default_rng(seed)
    to_pe = Calibration.of(ProcessingParameters.for_physics(physics)).adc_to_pe(physics.sample_duration_ns)
    adc_area_per_pe = 1.0 / np.where(to_pe > 0, to_pe, np.inf)
    columns = {k: [] for k in ("event_first_pulse", "event_n_pulses", "pulse_channel", "pulse_left",
                               "pulse_length", "pulse_offset")}
    samples = []
    offset = 0
    for photons in events:
        photons = np.asarray(photons, dtype=float).reshape(-1, 3)
        columns["event_first_pulse"].append(len(columns["pulse_channel"]))
        n_pulses = 0
        for channel in np.unique(photons[:, 0]).astype(int):
            if adc_area_per_pe[channel] == 0:
                continue
            signal = np.zeros(length_samples)
            for _, t_ns, n_pe in photons[photons[:, 0] == channel]:
                start = int(t_ns // 10) - 1
                stop = min(start + len(SPE_SHAPE), length_samples)
                signal[start:stop] += n_pe * adc_area_per_pe[channel] * SPE_SHAPE[:stop - start]
            raw = np.round(BASELINE - signal + rng.normal(0, noise_adc, length_samples)).astype(np.int16)
            above = np.flatnonzero(BASELINE - raw > zle_threshold + 1)
            if not len(above):
                continue
            keep = np.zeros(length_samples, bool)
            for i in above:
                keep[max(i - padding, 0):i + padding + 1] = True
            edges = np.diff(np.concatenate([[0], keep.astype(int), [0]]))
            for left, right in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                columns["pulse_channel"].append(channel)
                columns["pulse_left"].append(left)
                columns["pulse_length"].append(right - left)
                columns["pulse_offset"].append(offset)
                samples.append(raw[left:right])
                offset += right - left
                n_pulses += 1
        columns["event_n_pulses"].append(n_pulses)
    n_events = len(events)
    return RawData(sample_duration_ns=10.0, baseline_adc=BASELINE,
                   event_number=np.arange(n_events, dtype=np.int64),
                   event_length_samples=np.full(n_events, length_samples, np.int64),
                   event_first_pulse=np.asarray(columns["event_first_pulse"], np.int64),
                   event_n_pulses=np.asarray(columns["event_n_pulses"], np.int64),
                   pulse_channel=np.asarray(columns["pulse_channel"], np.int16),
                   pulse_left=np.asarray(columns["pulse_left"], np.int64),
                   pulse_length=np.asarray(columns["pulse_length"], np.int32),
                   pulse_offset=np.asarray(columns["pulse_offset"], np.int64),
                   samples=np.concatenate(samples).astype(np.int16) if samples else np.zeros(0, np.int16))


def test_make_raw_writes_consistent_zle_pulses():
    raw = make_raw([[(int(np.flatnonzero(detector.live_mask())[0]), 5000, 3)], []], length_samples=1000)
    assert raw.problems() == []
    assert list(raw.event_n_pulses) == [1, 0]
    assert raw.pulse_left[0] <= 500 - 50 and raw.pulse_left[0] + raw.pulse_length[0] >= 500 + 50
