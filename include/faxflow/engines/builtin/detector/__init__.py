"""XENON1T TPC channel map: PMT positions, dead channels, gains, ZLE thresholds, afterpulse tables.

Everything here is deterministic (fixed seeds where a public number is only known statistically),
so simulation and processing always agree on the same detector. References are to
``docs/domain-reference.md``.

Choices (see the module functions for details):

* Bottom-array numbering: lattice rows of constant second lattice coordinate (along the 22.5°
  lattice vector), rows from lowest to highest, within a row by increasing first coordinate.
  This ordering is point-symmetric, so the centre PMT is channel 187 as in pax.
* Gains: the SR1 placeholder list is not public; the table is built from quantiles of a skewed
  distribution matching its statistics (live mean 3.08e6, median 2.82e6, range 1.02e6-4.91e6
  electrons/PE) and assigned to live channels with a fixed-seed permutation.
* ZLE thresholds: the same value for every channel (``physics.zle_threshold_adc``); pax's ~100
  per-channel special thresholds are not known channel by channel.
* Afterpulses: the 16 non-empty types of ``sr1_run16347`` with per-channel probabilities that
  scatter (fixed seed) around the table's channel means, which they reproduce exactly over the
  live channels. Their sum is 3.47 % per PE over live channels (2.97 % over all 248 channels,
  dead ones counting 0, which is the "3.0 %" quoted for the table).
"""

from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

N_TPC_CHANNELS = 248
TOP_CHANNELS = np.arange(127)
BOTTOM_CHANNELS = np.arange(127, 248)
DEAD_CHANNELS = np.array([1, 2, 12, 26, 27, 34, 62, 65, 73, 79, 86, 88, 91, 102, 118, 130, 134, 135, 137,
                          139, 148, 150, 152, 162, 167, 178, 183, 190, 198, 203, 206, 213, 214, 234, 239,
                          244])

TOP_RING_PITCH_CM = 7.95
TOP_RING_FIRST_ANGLE_DEG = 105.0
BOTTOM_LATTICE_PITCH_CM = 8.0
BOTTOM_LATTICE_ANGLES_DEG = (22.5, 82.5)
BOTTOM_ARRAY_MAX_RADIUS_CM = 44.6

def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def is_top(channels) -> np.ndarray:
    """True for top-array channels (0-126)."""
    return np.asarray(channels) < len(TOP_CHANNELS)


@lru_cache(maxsize=1)
def live_mask() -> np.ndarray:
    """bool[248]: True for channels with a non-zero gain (212 live)."""
    mask = np.ones(N_TPC_CHANNELS, dtype=bool)
    mask[DEAD_CHANNELS] = False
    return _read_only(mask)


@lru_cache(maxsize=1)
def pmt_positions() -> np.ndarray:
    """float64[248, 2]: (x, y) of every TPC PMT in cm.

    Top: rings k = 6..0 at r = 7.95 k cm with 6k PMTs (1 in the centre), outer ring first,
    first PMT of each ring at 105 deg, then clockwise. Bottom: hexagonal lattice points with
    r <= 44.6 cm (121 points), numbered row-wise (see module docstring).
    """
    positions = np.zeros((N_TPC_CHANNELS, 2))
    channel = 0
    for ring in range(6, -1, -1):
        n_in_ring = max(6 * ring, 1)
        angles = np.radians(TOP_RING_FIRST_ANGLE_DEG - np.arange(n_in_ring) * 360.0 / n_in_ring)
        radius = TOP_RING_PITCH_CM * ring
        positions[channel:channel + n_in_ring, 0] = radius * np.cos(angles)
        positions[channel:channel + n_in_ring, 1] = radius * np.sin(angles)
        channel += n_in_ring

    a1, a2 = (BOTTOM_LATTICE_PITCH_CM * np.array([np.cos(np.radians(a)), np.sin(np.radians(a))])
              for a in BOTTOM_LATTICE_ANGLES_DEG)
    steps = np.arange(-7, 8)
    i, j = np.meshgrid(steps, steps, indexing="xy")  # row-major: j (row) outer, i inner
    points = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2
    inside = np.hypot(points[:, 0], points[:, 1]) <= BOTTOM_ARRAY_MAX_RADIUS_CM
    positions[channel:] = points[inside]
    assert inside.sum() == len(BOTTOM_CHANNELS)
    return _read_only(positions)


def _gain_quantiles(n: int) -> np.ndarray:
    """n sorted gains (electrons/PE) with the SR1 placeholder statistics."""
    low, median, high, mean = 1.02e6, 2.82e6, 4.91e6, 3.08e6
    u = (np.arange(n) + 0.5) / n
    log_width = 0.42  # a log-normal with this width has mean/median = 1.092 = 3.08/2.82
    values = np.array([median * np.exp(log_width * NormalDist().inv_cdf(q)) for q in u])
    values = np.clip(values, low, high)
    upper = values > median
    # Clipping at 4.91e6 lowers the mean; stretch the upper half (s -> 1 - (1 - s)^q, q >= 1,
    # which keeps values near the median in place) to restore it.
    scaled = (values[upper] - median) / (high - median)
    lo_q, hi_q = 1.0, 10.0
    for _ in range(60):
        power = 0.5 * (lo_q + hi_q)
        trial = values.copy()
        trial[upper] = median + (high - median) * (1.0 - (1.0 - scaled) ** power)
        lo_q, hi_q = (lo_q, power) if trial.mean() > mean else (power, hi_q)
    values = trial
    values[0], values[-1] = low, high
    return values


@lru_cache(maxsize=1)
def gains() -> np.ndarray:
    """float64[248]: PMT gain in electrons per PE; 0 for dead channels."""
    live = np.flatnonzero(live_mask())
    table = np.zeros(N_TPC_CHANNELS)
    table[live] = np.random.default_rng(20170101).permutation(_gain_quantiles(len(live)))
    return _read_only(table)


def electrons_per_adc_sample(physics) -> float:
    """Electrons of PMT charge per ADC-count-sample of pulse area (~17143 for XENON1T).

    A charge Q spread over samples of duration dt gives sum(ADC) = Q x adc_per_electron_per_ns / dt.
    """
    return physics.sample_duration_ns / physics.adc_per_electron_per_ns


def adc_to_pe(physics) -> np.ndarray:
    """float64[248]: PE per ADC-count-sample of integrated pulse area; 0 for dead channels."""
    channel_gains = gains()
    conversion = np.zeros(N_TPC_CHANNELS)
    live = channel_gains > 0
    conversion[live] = electrons_per_adc_sample(physics) / channel_gains[live]
    return conversion


def zle_thresholds_adc(physics) -> np.ndarray:
    """int64[248]: ZLE threshold in ADC counts above the reference baseline (same for all)."""
    return np.full(N_TPC_CHANNELS, int(physics.zle_threshold_adc), dtype=np.int64)


@dataclass(frozen=True)
class AfterpulseType:
    """One PMT afterpulse species: mean per-PE probability (over live channels), delay and amplitude.

    ``delay_kind`` is "uniform" (delay ~ U(delay_a_ns, delay_b_ns)) or "normal"
    (delay ~ N(delay_a_ns, delay_b_ns)). The area is gain x a Gaussian factor
    N(amplitude_mean, amplitude_rms) truncated at 0.
    """

    name: str
    mean_probability: float
    delay_kind: str
    delay_a_ns: float
    delay_b_ns: float
    amplitude_mean: float = 1.0
    amplitude_rms: float = 0.0


# sr1_run16347 channel means (domain-reference §3.5.4). The table gives no amplitude spread;
# 30 % of the mean is assumed for the ion types.
AFTERPULSE_TYPES = (
    AfterpulseType("Uniform0", 6.9e-3, "uniform", 0.0, 300.0),
    AfterpulseType("Uniform1", 1.6e-3, "uniform", 300.0, 400.0),
    AfterpulseType("Uniform2", 1.3e-3, "uniform", 400.0, 500.0),
    AfterpulseType("Uniform3", 1.05e-3, "uniform", 500.0, 600.0),
    AfterpulseType("Uniform4", 9e-4, "uniform", 600.0, 700.0),
    AfterpulseType("Uniform5", 7.6e-4, "uniform", 700.0, 800.0),
    AfterpulseType("Uniform6", 6.4e-4, "uniform", 800.0, 900.0),
    AfterpulseType("Uniform7", 5.6e-4, "uniform", 900.0, 1000.0),
    AfterpulseType("Uniform8", 1.54e-2, "uniform", 1000.0, 5000.0),
    AfterpulseType("He", 2.1e-4, "normal", 555.0, 40.0, 12.9, 3.9),
    AfterpulseType("CH4", 1.2e-4, "normal", 1061.0, 40.0, 7.5, 2.25),
    AfterpulseType("Ne", 1.2e-4, "normal", 1192.0, 45.0, 7.5, 2.25),
    AfterpulseType("N2", 3.1e-4, "normal", 1410.0, 50.0, 7.0, 2.1),
    AfterpulseType("Ar", 6.3e-4, "normal", 1697.0, 55.0, 6.6, 2.0),
    AfterpulseType("Xe2+", 8.4e-4, "normal", 2159.0, 65.0, 6.6, 2.0),
    AfterpulseType("Xe", 3.4e-3, "normal", 3069.0, 90.0, 7.4, 2.2),
)


@lru_cache(maxsize=1)
def _unscaled_afterpulse_probabilities() -> np.ndarray:
    live = live_mask()
    rng = np.random.default_rng(16347)
    # A per-channel overall factor (median/mean ~0.65, like the table's 2.1 %/3.0 %) times a
    # smaller per-type scatter; then each type is renormalised to the table's channel mean.
    channel_factor = rng.lognormal(0.0, 0.95, size=N_TPC_CHANNELS)
    type_scatter = rng.lognormal(0.0, 0.3, size=(N_TPC_CHANNELS, len(AFTERPULSE_TYPES)))
    probabilities = channel_factor[:, None] * type_scatter
    probabilities[~live] = 0.0
    means = np.array([t.mean_probability for t in AFTERPULSE_TYPES])
    probabilities *= means / probabilities[live].mean(axis=0)
    return _read_only(probabilities)


def afterpulse_probabilities(physics) -> np.ndarray:
    """float64[248, 16]: per-PE probability of each afterpulse type, x ``pmt_afterpulse_scale``.

    Probabilities are capped at 1; dead channels are 0.
    """
    return np.minimum(_unscaled_afterpulse_probabilities() * physics.pmt_afterpulse_scale, 1.0)
