"""PMT response (docs/physics.md "PMT response and digitiser"): transit time, double-PE, single-PE
areas and per-PMT afterpulses. Areas are in electrons (PMT charge), times in ns.
"""

import math
from functools import lru_cache

import numba
import numpy as np

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.radix import stable_argsort_values

_INSERTION_SORT_MAX = 32  # pulses of an (event, channel) sorted by insertion, more by a merge sort


def transit_times_ns(n: int, physics, rng: np.random.Generator) -> np.ndarray:
    """PMT transit time of each photon: N(pmt_transit_time_mean, pmt_transit_time_spread) in ns."""
    return rng.normal(physics.pmt_transit_time_mean_ns, physics.pmt_transit_time_spread_ns, size=n)


def double_pe_copies(n: int, physics, rng: np.random.Generator) -> np.ndarray:
    """Indices of the photons that emit a second photoelectron (each with p = double_pe_probability)."""
    return np.flatnonzero(rng.random(n) < physics.double_pe_probability)


def lone_hits(event_length_samples, physics, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Single photoelectrons at random times: (event, channel, time ns since the event origin).

    Per listed live channel Poisson(rate x event window) of them, uniform over the whole window
    [-event_padding, window - event_padding), as pax's lone hits (docs/physics.md, "Noise").
    """
    live = detector.live_mask(physics.period)
    pairs = [(c, r) for c, r in physics.lone_hit_rates_per_channel_hz if live[c] and r > 0]
    lengths_ns = np.asarray(event_length_samples, dtype=float) * physics.sample_duration_ns
    if not pairs or not len(lengths_ns):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    channel_list, rates_hz = (np.array(v) for v in zip(*pairs))
    counts = rng.poisson(lengths_ns[:, None] * rates_hz[None, :] * 1e-9)  # [events, channels]
    event = np.repeat(np.repeat(np.arange(len(lengths_ns)), len(channel_list)), counts.ravel())
    channel = np.repeat(np.tile(channel_list.astype(np.int64), len(lengths_ns)), counts.ravel())
    time_ns = rng.random(len(event)) * lengths_ns[event] - physics.event_padding_ns
    return event, channel, time_ns


def _truncated_unit_normal_moments(width: float) -> tuple[float, float]:
    """(mean, std) of N(1, width) truncated at 0."""
    if width == 0:
        return 1.0, 0.0
    a = -1.0 / width
    tail = 0.5 * math.erfc(a / math.sqrt(2.0))
    ratio = math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi) / tail
    return 1.0 + width * ratio, width * math.sqrt(1.0 + a * ratio - ratio * ratio)


@lru_cache(maxsize=8)
def _spe_factor_shape(relative_width: float) -> tuple[float, float]:
    """(Gaussian width before truncation, mean after truncation) giving std/mean = relative_width."""
    low, high = 0.0, 4.0 * relative_width + 1e-9
    for _ in range(80):
        width = 0.5 * (low + high)
        mean, std = _truncated_unit_normal_moments(width)
        low, high = (width, high) if std / mean < relative_width else (low, width)
    return width, _truncated_unit_normal_moments(width)[0]


def positive_normal(mean, rms, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of N(mean, rms) truncated at 0 (negative draws are redrawn)."""
    values = mean + rms * rng.standard_normal(n)  # no n-long copies of a scalar mean or rms
    negative = np.flatnonzero(values < 0)
    while len(negative):
        values[negative] = (np.broadcast_to(mean, n)[negative]
                            + np.broadcast_to(rms, n)[negative] * rng.standard_normal(len(negative)))
        negative = negative[values[negative] < 0]
    return values


def pe_areas_electrons(channels, physics, rng: np.random.Generator) -> np.ndarray:
    """Charge of each photoelectron: gain[channel] x an SPE factor (mean 1, sigma/mean spe_relative_width).

    The factor is a Gaussian truncated at 0, rescaled so its mean is exactly 1 (like fax's SPE
    spectra, which are normalised to mean 1) and its std/mean is exactly spe_relative_width.
    """
    channels = np.asarray(channels)
    width, truncated_mean = _spe_factor_shape(float(physics.spe_relative_width))
    factor = positive_normal(1.0, width, len(channels), rng) / truncated_mean
    return detector.gains(physics.period)[channels] * factor


def afterpulses(channels, physics, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PMT afterpulses of a set of photoelectrons (DPE included): (parent index, delay ns, area electrons).

    For every channel and afterpulse type the number of afterpulses is Binomial(N_pe, p[channel,
    type]); each picks a uniformly random parent PE of that channel (with replacement) and gets
    the channel's delay for that type. Its area is a single-PE area times the type's amplification
    (a truncated-Gaussian factor, or 1), as fax draws it. The afterpulse time is the parent's time
    plus the delay. Which pulse finally carries that area is ``physics.pmt_afterpulse_areas``'
    choice (``fax_pulse_order``).
    """
    channels = np.asarray(channels, dtype=np.int64)
    table = detector.afterpulse_table(physics)
    probabilities = detector.afterpulse_probabilities(physics)  # [248, n_types]
    pe_per_channel = np.bincount(channels, minlength=detector.N_TPC_CHANNELS)
    n_afterpulses = rng.binomial(pe_per_channel[:, None], probabilities)  # [248, n_types]
    total = int(n_afterpulses.sum())
    if total == 0:
        empty = np.zeros(0)
        return np.zeros(0, dtype=np.int64), empty, empty
    n_types = len(detector.AFTERPULSE_TYPES)
    channel_of = np.repeat(np.repeat(np.arange(detector.N_TPC_CHANNELS), n_types), n_afterpulses.ravel())
    type_of = np.repeat(np.tile(np.arange(n_types), detector.N_TPC_CHANNELS), n_afterpulses.ravel())

    first_pe = np.cumsum(pe_per_channel) - pe_per_channel
    pe_by_channel = _stable_order_by_channel(channels, first_pe)
    pick = (rng.random(total) * pe_per_channel[channel_of]).astype(np.int64)
    parent = pe_by_channel[first_pe[channel_of] + pick]

    delay_a, delay_b = table.delay_a_ns[channel_of, type_of], table.delay_b_ns[channel_of, type_of]
    uniform = np.array([kind.delay_kind == "uniform" for kind in detector.AFTERPULSE_TYPES])[type_of]
    delays = np.where(uniform, delay_a + (delay_b - delay_a) * rng.random(total),
                      delay_a + delay_b * rng.standard_normal(total))
    factor = positive_normal(table.amplitude_mean[channel_of, type_of], table.amplitude_rms[channel_of, type_of],
                             total, rng)
    return parent, delays, pe_areas_electrons(channel_of, physics, rng) * factor


@numba.njit(cache=True, boundscheck=False)
def _stable_order_by_channel(channels, first_of_channel):
    """``np.argsort(channels, kind="stable")`` by a counting sort; ``first_of_channel`` is where each
    channel's PEs start in that order."""
    cursor = first_of_channel.copy()
    order = np.empty(len(channels), dtype=np.int64)
    for i in range(len(channels)):
        order[cursor[channels[i]]] = i
        cursor[channels[i]] += 1
    return order


def fax_pulse_order(event, channel, time_ns, copies, pe_area, ap_parent, ap_delay_ns, ap_area) -> None:
    """Re-pair areas with pulses as fax does, in place (docs/physics.md, "PMT response and digitiser").

    fax lists a channel's areas in the order it draws them (photoelectrons, then afterpulses) and
    gives the i-th of them to the i-th pulse in time. As single-PE areas are interchangeable, the
    effect is that the afterpulse areas (up to ~13 PE for ion afterpulses) land on the latest
    pulses of each (event, channel), mostly late photo-ionisation light, instead of on the
    afterpulses. Arguments as ``digitizer.photoelectron_deposits``: photons, then double-PE copies
    (``copies`` are photon indices), then afterpulses whose parents index photons followed by copies.
    """
    _fax_pulse_order(np.asarray(event, dtype=np.int64), np.asarray(channel, dtype=np.int64),
                     np.asarray(time_ns, dtype=float), np.asarray(copies, dtype=np.int64), pe_area,
                     np.asarray(ap_parent, dtype=np.int64), np.asarray(ap_delay_ns, dtype=float), ap_area,
                     detector.N_TPC_CHANNELS)


@numba.njit(cache=True, boundscheck=False)
def _fax_pulse_order(event, channel, time_ns, copies, pe_area, ap_parent, ap_delay, ap_area, n_channels):
    n_photons, n_pe = len(event), len(event) + len(copies)
    total = n_pe + len(ap_parent)
    photon = np.empty(total, dtype=np.int64)  # the photon whose event, channel and time a pulse has
    for j in range(total):
        if j < n_photons:
            photon[j] = j
        elif j < n_pe:
            photon[j] = copies[j - n_photons]
        else:
            q = ap_parent[j - n_pe]
            photon[j] = q if q < n_photons else copies[q - n_photons]
    n_groups = (event.max() + 1) * n_channels if n_photons else 0
    first = np.zeros(n_groups + 1, dtype=np.int64)
    for j in range(total):
        p = photon[j]
        first[event[p] * n_channels + channel[p] + 1] += 1
    for g in range(n_groups):
        first[g + 1] += first[g]
    cursor = first[:-1].copy()
    by_group = np.empty(total, dtype=np.int64)  # generation order within each group (stable)
    for j in range(total):
        p = photon[j]
        g = event[p] * n_channels + channel[p]
        by_group[cursor[g]] = j
        cursor[g] += 1
    largest = 0
    for g in range(n_groups):
        largest = max(largest, first[g + 1] - first[g])
    times = np.empty(largest)
    areas = np.empty(largest)
    slots = np.empty(largest, dtype=np.int64)
    for g in range(n_groups):
        lo, hi = first[g], first[g + 1]
        n = hi - lo
        if n < 2 or by_group[hi - 1] < n_pe:  # no afterpulse: nothing moves
            continue
        for i in range(n):  # a stable sort by time: by insertion for the usual few pulses
            j = by_group[lo + i]
            t = time_ns[photon[j]] + (ap_delay[j - n_pe] if j >= n_pe else 0.0)
            areas[i] = pe_area[j] if j < n_pe else ap_area[j - n_pe]
            m = i - 1
            if n <= _INSERTION_SORT_MAX:
                while m >= 0 and times[m] > t:
                    times[m + 1] = times[m]
                    slots[m + 1] = slots[m]
                    m -= 1
            times[m + 1] = t
            slots[m + 1] = j
        if n > _INSERTION_SORT_MAX:
            within = stable_argsort_values(times[:n])
            for i in range(n):
                slots[i] = by_group[lo + within[i]]
        for i in range(n):  # the i-th area drawn goes to the i-th pulse in time
            j = slots[i]
            if j < n_pe:
                pe_area[j] = areas[i]
            else:
                ap_area[j - n_pe] = areas[i]
