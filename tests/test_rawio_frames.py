"""The compiled frame coder writes exactly the format-2 frames of the raw-data file's docstring, and
lazily decoded samples decode each frame once however a reader slices them."""

import numpy as np
import pyarrow as pa
import pytest

from faxflow.engines.builtin import rawio
from faxflow.engines.builtin.rawio import FRAME_SAMPLES, ZSTD_LEVEL

EXTREMES = np.array([-32768, 32767, 0, -1, 1, 16000, 15999, 16001], np.int16)
BASELINES = (16000, 0, -1, 32767, -32768)


def _reference_split(samples: np.ndarray, baseline_adc: int) -> bytes:
    """The uncompressed frame, spelled out with numpy: 16-bit ``baseline - sample``, zigzag, low bytes
    then high bytes."""
    below = np.int16(baseline_adc) - samples.astype(np.int16)
    zigzag = ((below << 1) ^ (below >> 15)).view(np.uint16)
    return (zigzag & 0xFF).astype(np.uint8).tobytes() + (zigzag >> 8).astype(np.uint8).tobytes()


def _frames(rng) -> list[np.ndarray]:
    """Empty, tiny, odd-sized and full frames of uniform int16 and of noise around a baseline, with the extremes."""
    uniform = rng.integers(-32768, 32768, FRAME_SAMPLES, dtype=np.int16)
    uniform[:len(EXTREMES)] = EXTREMES
    noise = (16000 + rng.normal(0, 4, 3 * 1000 + 1)).astype(np.int16)
    return [np.zeros(0, np.int16), EXTREMES, uniform, uniform[1:], noise, noise[::-1].copy()]


def test_hand_computed_frame():
    # baseline 100: samples 100, 99, 101, -200 are d = 0, 1, -1, 300 -> zigzag 0, 2, 1, 600 = 0x0258
    split = np.empty(8, np.uint8)
    rawio._split_zigzag(np.array([100, 99, 101, -200], np.int16), 100, split)
    assert split.tolist() == [0, 2, 1, 0x58, 0, 0, 0, 0x02]


@pytest.mark.parametrize("baseline_adc", BASELINES)
def test_compiled_frames_equal_the_reference_frame_for_frame(baseline_adc):
    scratch = np.full(2 * FRAME_SAMPLES, 0xAB, np.uint8)  # a dirty reused buffer must not leak into frames
    for samples in _frames(np.random.default_rng(baseline_adc & 0xFFFF)):
        reference = _reference_split(samples, baseline_adc)
        split = np.empty(2 * len(samples), np.uint8)
        rawio._split_zigzag(samples, baseline_adc, split)
        assert split.tobytes() == reference
        frame = rawio._encode_frame(samples, baseline_adc, scratch)
        assert frame == pa.Codec("zstd", ZSTD_LEVEL).compress(reference, asbytes=True)
        assert frame == rawio._encode_frame(samples, baseline_adc)  # with and without the scratch buffer
        back = np.full(len(samples), 7, np.int16)
        rawio._decode_frame(frame, len(samples), baseline_adc, back)
        np.testing.assert_array_equal(back, samples)


@pytest.mark.parametrize("n_samples", (len(EXTREMES) - 1, len(EXTREMES) + 1))
def test_a_frame_of_another_size_is_refused_not_read_past(n_samples):
    frame = rawio._encode_frame(EXTREMES, 16000)
    with pytest.raises((ValueError, OSError)):
        rawio._decode_frame(frame, n_samples, 16000, np.empty(n_samples, np.int16))


def test_consecutive_slices_decode_each_frame_once(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    n = 3 * FRAME_SAMPLES + 12345
    lengths = np.array([n // 2, n - n // 2], np.int32)
    raw = rawio.RawData(sample_duration_ns=10.0, baseline_adc=16000, event_number=np.arange(2),
                        event_length_samples=lengths.astype(np.int64), event_first_pulse=np.arange(2),
                        event_n_pulses=np.ones(2, np.int64), pulse_channel=np.zeros(2, np.int16),
                        pulse_left=np.zeros(2, np.int64), pulse_length=lengths,
                        pulse_offset=np.array([0, n // 2]), samples=rng.integers(-32768, 32768, n, dtype=np.int16))
    rawio.write_raw(tmp_path / "raw.npz", raw)
    lazy = rawio.read_raw(tmp_path / "raw.npz", lazy_samples=True).samples
    decoded = []
    real_decode = rawio._decode_frame

    def counted_decode(frame, *args):
        decoded.append(len(frame))
        real_decode(frame, *args)

    monkeypatch.setattr(rawio, "_decode_frame", counted_decode)
    cuts = [0, 1000, FRAME_SAMPLES - 1, FRAME_SAMPLES + 7, 2 * FRAME_SAMPLES + 3, 2 * FRAME_SAMPLES + 9, n]
    parts = [lazy[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_array_equal(np.concatenate(parts), raw.samples)
    assert len(decoded) == 4  # the 4 frames, each once, though every slice cuts one
