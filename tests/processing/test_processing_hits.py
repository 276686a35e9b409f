"""Hit finding on hand-made pulses."""

import numpy as np
import pytest

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.processing.calibration import Calibration
from faxflow.engines.builtin.processing.hits import _pulse_noise, _pulse_noise_wide, find_hits

PHYSICS = PhysicsParameters()
PROCESSING = ProcessingParameters.for_period("SR1")
TO_PE = Calibration.of(PROCESSING).adc_to_pe(PHYSICS.sample_duration_ns)
LIVE = int(np.flatnonzero(detector.live_mask())[0])
DEAD = int(detector.DEAD_CHANNELS[0])


def hits_of(pulses, channels=None):
    """Find hits in a list of w (= baseline − raw) arrays, one pulse each, all in event 0 at left 0."""
    channels = channels or [LIVE] * len(pulses)
    samples = np.concatenate([16000 - np.asarray(w) for w in pulses]).astype(np.int16)
    lengths = np.array([len(w) for w in pulses])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return find_hits(samples, np.zeros(len(pulses), np.int64), np.array(channels), np.zeros(len(pulses), np.int64),
                     lengths, offsets, TO_PE, PROCESSING, 10.0)


def flat(n=100):
    return np.zeros(n, int)


def test_threshold_is_strict_and_at_least_15_adc():
    just_below = flat()
    just_below[60] = 15
    just_above = flat()
    just_above[60] = 16
    assert len(hits_of([just_below])) == 0
    hits = hits_of([just_above])
    assert len(hits) == 1 and hits.index_of_maximum[0] == 60


def test_threshold_follows_noise_sigma():
    rng = np.random.default_rng(3)
    noise = np.round(rng.normal(0, 5, 400)).astype(int)  # 6 sigma ~ 30 ADC
    noise = np.clip(noise, -14, 14)
    pulse = noise.copy()
    pulse[200] = 25
    assert len(hits_of([pulse])) == 0
    pulse[200] = 60
    assert len(hits_of([pulse])) == 1


@pytest.mark.parametrize("n_base", [1, 47, 200])
def test_noise_sigma_is_the_same_on_the_fast_and_the_wide_path(n_base):
    rng = np.random.default_rng(n_base)
    pulse = 16000 + rng.integers(-20, 21, 2000)
    pulse[rng.integers(0, 2000, 20)] = rng.choice([-32768, 32767], 20)  # full-scale spikes both ways
    pulse = pulse.astype(np.int16)
    base_sum = int(pulse[:n_base].astype(np.int64).sum())
    sigma, lowest = _pulse_noise(pulse, n_base, base_sum)
    assert (sigma, lowest) == _pulse_noise_wide(pulse, n_base, base_sum)
    assert sigma > 0 and lowest == -32768


def test_area_center_height_and_extension():
    w = flat(200)
    w[100:104] = [20, 50, 30, 10]
    hits = hits_of([w])
    to_pe = TO_PE[LIVE]
    assert hits.left[0] == 97 and hits.right[0] == 122  # raw hit 100..102 (> 15) extended -3/+20
    assert hits.area_pe[0] == pytest.approx(110 * to_pe)
    assert hits.height_pe[0] == pytest.approx(50 * to_pe)
    assert hits.index_of_maximum[0] == 101
    assert hits.center_ns[0] == pytest.approx(10 * (100 * 20 + 101 * 50 + 102 * 30 + 103 * 10) / 110)


def test_extensions_do_not_overlap_neighbours():
    w = flat(200)
    w[50:52] = 40
    w[60:62] = 40
    hits = hits_of([w])
    assert len(hits) == 2
    assert hits.right[0] == 59  # stops before the next hit's first sample
    assert hits.left[1] == 60   # cannot extend into the previous hit
    assert hits.left[0] == 47 and hits.right[1] == 81


def test_dead_channels_are_skipped_and_baseline_is_from_first_samples():
    w = flat()
    w[70] = 100
    assert len(hits_of([w], channels=[DEAD])) == 0
    shifted = w + 3  # baseline 3 ADC lower in raw: still one hit, the baseline absorbs the offset
    hits = hits_of([shifted])
    assert len(hits) == 1
    assert hits.height_pe[0] == pytest.approx(100 * TO_PE[LIVE])


def test_hits_in_several_pulses_keep_their_event_and_channel():
    a = flat()
    a[55] = 80
    b = flat()
    b[80] = 80
    samples = np.concatenate([16000 - a, 16000 - b]).astype(np.int16)
    live = np.flatnonzero(detector.live_mask())[:2]
    hits = find_hits(samples, np.array([0, 1]), live, np.array([1000, 20]), np.array([100, 100]),
                     np.array([0, 100]), TO_PE, PROCESSING, 10.0)
    assert list(hits.event) == [0, 1]
    assert list(hits.channel) == list(live)
    assert list(hits.index_of_maximum) == [1055, 100]
    assert list(hits.sample_offset) == [52, 177]


def test_pulses_with_more_hits_than_the_first_guess_grow_the_columns():
    spikes = np.zeros(50 + 2 * 150, int)
    spikes[51::2] = 40  # 150 runs in one pulse: the columns start with room for 2 per pulse, plus 16
    hits = hits_of([flat(), spikes, flat()])
    assert len(hits) == 150
    np.testing.assert_array_equal(hits.index_of_maximum, np.arange(51, 350, 2))
    assert (hits.area_pe > 0).all() and (np.diff(hits.left) > 0).all()


def test_hit_bounds_match_a_numpy_reference_on_random_pulses():
    rng = np.random.default_rng(12)
    processing = PROCESSING.model_copy(update={"hit_extension_left_samples": 0, "hit_extension_right_samples": 0})
    pulses = []
    for length in rng.integers(1, 300, 60):
        w = np.round(rng.normal(0, rng.uniform(1, 8), length)).astype(int)
        spikes = rng.integers(0, length, rng.integers(0, 6))
        w[spikes] += rng.integers(5, 80, len(spikes))
        pulses.append(w)
    for length, runs in ((200, [(60, 70), (100, 199)]), (128, [(63, 64), (127, 127)]), (64, [(50, 63)]),
                         (257, [(0, 256)])):  # runs across, along and at the ends of 64-sample blocks
        w = np.zeros(length, int)
        for lo, hi in runs:
            w[lo:hi + 1] = 40
        w[length // 2] = 0 if length == 257 else w[length // 2]
        pulses.append(w)
    samples = np.concatenate([16000 - w for w in pulses]).astype(np.int16)
    lengths = np.array([len(w) for w in pulses])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    hits = find_hits(samples, np.arange(len(pulses)), np.full(len(pulses), LIVE), np.zeros(len(pulses), np.int64),
                     lengths, offsets, TO_PE, processing, 10.0)
    expected = []
    for p, w in enumerate(pulses):
        raw = (16000 - w).astype(np.float64)
        below = raw[:processing.baseline_samples].mean() - raw
        sigma = np.sqrt(np.mean(below[below < 0] ** 2)) if (below < 0).any() else 0.0
        above = below > int(max(processing.hit_threshold_sigma * sigma, processing.hit_threshold_min_adc))
        edges = np.diff(np.concatenate([[0], above.astype(int), [0]]))
        expected += [(p, lo, hi) for lo, hi in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1)]
    assert len(expected) > 20
    assert list(zip(hits.event, hits.left, hits.right)) == expected
