"""Digitiser and software ZLE (domain-reference §3.5.5-8): PE pulses -> ADC samples -> stored pulses.

Only the samples that can end up in a ZLE pulse are ever built: around every photoelectron (and
every noise-tail spike) a region of +-(zle_padding + 2) samples is digitised with noise taken from
a pre-generated Gaussian noise bank, the ZLE threshold is applied inside it, and the padded,
merged, even/odd-aligned windows are stored. The cost scales with the number of photoelectrons,
not with the event length.
"""

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from faxflow.engines.builtin import detector

SAMPLES_BEFORE_PULSE_CENTRE = 2
SAMPLES_AFTER_PULSE_CENTRE = 20
PULSE_SAMPLES = SAMPLES_BEFORE_PULSE_CENTRE + SAMPLES_AFTER_PULSE_CENTRE
MAX_ADC = 16383
NOISE_BANK_SIZE = 2 ** 20
_SPIKE = -1  # offset marker of a noise-tail spike (its "area" is in ADC counts)

# SPE template (1 ns steps, -12..196 ns, maximum at 0): Gaussian rise (sigma 3 ns), then
# 95.25 % exp(-t / 7 ns) + 4.75 % exp(-t / 117 ns). Mean 24.3 ns after the maximum, 26.6 % of the
# charge > 20 ns later, 17.2 % > 50 ns, 8.8 % > 100 ns; largest 10 ns sample 34-48 % of the charge.
_SPE_RISE_SIGMA_NS = 3.0
_SPE_FAST_DECAY_NS = 7.0
_SPE_SLOW_DECAY_NS = 117.0
_SPE_SLOW_FRACTION = 0.0475


def spe_pulse_shape() -> tuple[np.ndarray, np.ndarray]:
    """(times ns, relative amplitudes) of the 209-point single-PE template; peak 1 at t = 0."""
    times = np.arange(-12.0, 197.0)
    falling = ((1.0 - _SPE_SLOW_FRACTION) * np.exp(-times / _SPE_FAST_DECAY_NS)
               + _SPE_SLOW_FRACTION * np.exp(-times / _SPE_SLOW_DECAY_NS))
    rising = np.exp(-0.5 * (times / _SPE_RISE_SIGMA_NS) ** 2)
    return times, np.where(times < 0, rising, falling)


@lru_cache(maxsize=4)
def pulse_charge_fractions(sample_duration_ns: float) -> np.ndarray:
    """float64[offsets, 22]: fraction of a PE's charge in each sample of its 22-sample block.

    Row = the PE's whole-ns time modulo the sample duration. Block sample k covers template times
    [k - 2, k - 1] x dt - offset, as in fax; the block itself starts one sample before the PE's
    sample, so the pulse lands one sample later than the photon (fax's placement quirk).
    """
    times, amplitudes = spe_pulse_shape()
    cdf = np.cumsum(amplitudes) / amplitudes.sum()
    n_offsets = int(round(sample_duration_ns))
    offsets = np.arange(n_offsets)[:, None]
    k = np.arange(PULSE_SAMPLES)[None, :]
    lower = (k - SAMPLES_BEFORE_PULSE_CENTRE) * sample_duration_ns - offsets
    upper = lower + sample_duration_ns
    return np.interp(upper, times, cdf, left=0.0, right=1.0) - np.interp(lower, times, cdf, left=0.0, right=1.0)


@lru_cache(maxsize=4)
def _noise_rms_table(median_rms_adc: float) -> np.ndarray:
    rms = median_rms_adc * np.random.default_rng(5037).lognormal(0.0, 0.17, size=detector.N_TPC_CHANNELS)
    rms[~detector.live_mask()] = 0.0
    rms.setflags(write=False)
    return rms


def noise_rms_adc(physics) -> np.ndarray:
    """float64[248]: per-channel noise RMS in ADC (median noise_rms_adc, 10-90 % spread ~ +-20 %)."""
    return _noise_rms_table(float(physics.noise_rms_adc))


def make_noise_bank(rng: np.random.Generator, size: int = NOISE_BANK_SIZE) -> np.ndarray:
    """float32[size] of unit Gaussian noise; regions take random contiguous chunks of it."""
    return rng.standard_normal(size, dtype=np.float32)


@dataclass(frozen=True)
class Deposits:
    """What the digitiser places in the waveforms of a batch, sorted by (event, channel, start).

    ``offset`` is the PE's ns offset within its sample (row of the charge-fraction table) or -1 for
    a noise spike; ``amount`` is the PE charge in electrons or the spike's signal in ADC counts;
    ``start`` is the first sample of the PE's 22-sample block (or the spike's sample).
    """

    event: np.ndarray
    channel: np.ndarray
    start: np.ndarray
    offset: np.ndarray
    amount: np.ndarray


def pe_deposits(event, channel, time_ns, area_electrons, event_length_samples, physics) -> Deposits:
    """Place photoelectrons at event-window times ``time_ns`` (ns since the event start).

    PEs whose block would start before the first or end after the last sample are dropped, like fax.
    """
    dt = physics.sample_duration_ns
    centre_ns = np.floor(time_ns).astype(np.int64)
    start = centre_ns // int(round(dt)) - 1
    offset = centre_ns % int(round(dt))
    inside = (start >= 0) & (start + PULSE_SAMPLES <= np.asarray(event_length_samples)[event])
    return Deposits(event[inside], channel[inside], start[inside], offset[inside], area_electrons[inside])


def noise_spike_deposits(event_length_samples, physics, rng: np.random.Generator) -> Deposits:
    """Noise-tail threshold crossings: Poisson(rate x event length) per live channel, uniform in time.

    The spike sample's signal is threshold + 2 + floor(Exp(2)) ADC (it replaces that sample's
    Gaussian noise, which has no such tails), so every spike makes one noise-only ZLE pulse
    unless it falls inside another pulse.
    """
    lengths = np.asarray(event_length_samples, dtype=np.int64)
    live_channels = np.flatnonzero(detector.live_mask())
    expected = physics.noise_pulse_rate_per_channel_hz * lengths * physics.sample_duration_ns * 1e-9
    n_spikes = rng.poisson(expected * len(live_channels))
    event = np.repeat(np.arange(len(lengths)), n_spikes)
    channel = live_channels[rng.integers(0, len(live_channels), len(event))]
    start = (rng.random(len(event)) * lengths[event]).astype(np.int64)
    height = detector.zle_thresholds_adc(physics)[channel] + 2.0 + np.floor(rng.exponential(2.0, len(event)))
    return Deposits(event, channel, start, np.full(len(event), _SPIKE, dtype=np.int64), height)


def sort_deposits(parts: list[Deposits]) -> Deposits:
    """Concatenate and sort deposits by (event, channel, start)."""
    merged = {name: np.concatenate([getattr(p, name) for p in parts])
              for name in ("event", "channel", "start", "offset", "amount")}
    # One int64 key (event, channel, start) sorts faster than a lexsort; starts are < 2^32 samples.
    key = ((merged["event"] * detector.N_TPC_CHANNELS + merged["channel"]) << 32) | merged["start"]
    order = np.argsort(key, kind="stable")
    return Deposits(**{name: values[order] for name, values in merged.items()})


@numba.njit(cache=True)
def _group_ends(event, channel):
    """Index one past the last deposit of each (event, channel) run."""
    n = len(event)
    ends = np.empty(n, dtype=np.int64)
    n_groups = 0
    for i in range(n):
        if i == n - 1 or event[i + 1] != event[i] or channel[i + 1] != channel[i]:
            ends[n_groups] = i + 1
            n_groups += 1
    return ends[:n_groups]


@numba.njit(cache=True)
def _regions(event, start, offset, group_ends, event_length, margin, pulse_samples):
    """Merged sample ranges [left, right) to digitise around every deposit, and their deposit ranges."""
    n = len(event)
    left = np.empty(n, dtype=np.int64)
    right = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    last = np.empty(n, dtype=np.int64)
    n_regions = 0
    group_start = 0
    for g in range(len(group_ends)):
        for i in range(group_start, group_ends[g]):
            length = pulse_samples if offset[i] >= 0 else 1
            lo = max(start[i] - margin, 0)
            hi = min(start[i] + length + margin, event_length[event[i]])
            if i > group_start and lo <= right[n_regions - 1]:
                right[n_regions - 1] = max(right[n_regions - 1], hi)
                last[n_regions - 1] = i + 1
            else:
                left[n_regions] = lo
                right[n_regions] = hi
                first[n_regions] = i
                last[n_regions] = i + 1
                n_regions += 1
        group_start = group_ends[g]
    return left[:n_regions], right[:n_regions], first[:n_regions], last[:n_regions]


@numba.njit(cache=True)
def _digitize_regions(channel, start, offset, amount, region_left, region_right, region_first,
                      region_last, region_event_length, noise_starts, noise_bank, noise_rms,
                      current_per_electron, adc_per_current, baseline, threshold, padding):
    """Build each region's waveform, apply the ZLE and return the stored pulses.

    Returns (region index, left, length) per pulse and the concatenated int16 samples.
    """
    total = 0
    for r in range(len(region_left)):
        total += region_right[r] - region_left[r]
    samples = np.empty(total, dtype=np.int16)
    max_pulses = total // (2 * padding) + 2 * len(region_left) + 1
    pulse_region = np.empty(max_pulses, dtype=np.int64)
    pulse_left = np.empty(max_pulses, dtype=np.int64)
    pulse_length = np.empty(max_pulses, dtype=np.int64)
    current = np.zeros(0)
    raw = np.zeros(0, dtype=np.int64)
    n_pulses = 0
    n_samples = 0
    bank_size = len(noise_bank)
    n_pulse_samples = current_per_electron.shape[1]
    for r in range(len(region_left)):
        left = region_left[r]
        width = region_right[r] - left
        if len(current) < width:
            current = np.zeros(2 * width)
            raw = np.zeros(2 * width, dtype=np.int64)
        current[:width] = 0.0
        ch = channel[region_first[r]]
        for i in range(region_first[r], region_last[r]):
            if offset[i] >= 0:
                position = start[i] - left
                for k in range(n_pulse_samples):
                    current[position + k] += amount[i] * current_per_electron[offset[i], k]
        rms = noise_rms[ch]
        thr = threshold[ch]
        window_start = -1
        window_stop = -1  # inclusive
        bank_index = noise_starts[r]
        for s in range(width):
            noise = np.int64(np.rint(noise_bank[bank_index] * rms))
            bank_index += 1
            if bank_index == bank_size:
                bank_index = 0
            value = baseline - np.int64(current[s] * adc_per_current) + noise
            raw[s] = min(max(value, 0), MAX_ADC)
        for i in range(region_first[r], region_last[r]):
            if offset[i] < 0:  # a noise-tail sample replaces the Gaussian noise sample
                position = start[i] - left
                raw[position] = max(min(raw[position], baseline - np.int64(amount[i])), 0)
        event_stop = region_event_length[r] - 1
        for s in range(width):
            if baseline - raw[s] > thr + 1:
                lo = max(left + s - padding, 0)
                hi = min(left + s + padding, event_stop)
                if window_start >= 0 and lo <= window_stop:
                    window_stop = max(window_stop, hi)
                else:
                    if window_start >= 0:
                        n_pulses, n_samples = _store(window_start, window_stop, left, r, raw, samples,
                                                     n_samples, pulse_region, pulse_left, pulse_length,
                                                     n_pulses)
                    window_start = lo
                    window_stop = hi
        if window_start >= 0:
            n_pulses, n_samples = _store(window_start, window_stop, left, r, raw, samples, n_samples,
                                         pulse_region, pulse_left, pulse_length, n_pulses)
    return (pulse_region[:n_pulses], pulse_left[:n_pulses], pulse_length[:n_pulses],
            samples[:n_samples])


@numba.njit(cache=True)
def _store(window_start, window_stop, region_left, region, raw, samples, n_samples, pulse_region,
           pulse_left, pulse_length, n_pulses):
    """Append one ZLE window, start rounded up to even and (inclusive) stop down to odd."""
    first = window_start + window_start % 2
    last = window_stop - (1 - window_stop % 2)
    if last < first:
        return n_pulses, n_samples
    length = last - first + 1
    for s in range(length):
        samples[n_samples + s] = raw[first - region_left + s]
    pulse_region[n_pulses] = region
    pulse_left[n_pulses] = first
    pulse_length[n_pulses] = length
    return n_pulses + 1, n_samples + length


@dataclass(frozen=True)
class ZlePulses:
    """Stored pulses of a batch, sorted by (event, channel, left); samples concatenated in that order."""

    event: np.ndarray
    channel: np.ndarray
    left: np.ndarray
    length: np.ndarray
    samples: np.ndarray


def digitize(deposits: Deposits, event_length_samples, physics, noise_bank,
             rng: np.random.Generator) -> ZlePulses:
    """Digitise sorted deposits and apply the software ZLE (threshold + 1, +-padding, even/odd)."""
    event_length = np.asarray(event_length_samples, dtype=np.int64)
    padding = int(physics.zle_padding_samples)
    group_ends = _group_ends(deposits.event, deposits.channel)
    left, right, first, last = _regions(deposits.event, deposits.start, deposits.offset, group_ends,
                                        event_length, padding + 2, PULSE_SAMPLES)
    noise_starts = rng.integers(0, len(noise_bank), size=len(left))
    current_per_electron = pulse_charge_fractions(physics.sample_duration_ns) / physics.sample_duration_ns
    region_event = deposits.event[first]
    pulse_region, pulse_left, pulse_length, samples = _digitize_regions(
        deposits.channel, deposits.start, deposits.offset, deposits.amount.astype(np.float64),
        left, right, first, last, event_length[region_event], noise_starts, noise_bank,
        noise_rms_adc(physics), current_per_electron, float(physics.adc_per_electron_per_ns),
        int(physics.digitizer_baseline_adc), detector.zle_thresholds_adc(physics), padding)
    first_of_pulse = first[pulse_region]
    return ZlePulses(region_event[pulse_region], deposits.channel[first_of_pulse], pulse_left,
                     pulse_length, samples)
