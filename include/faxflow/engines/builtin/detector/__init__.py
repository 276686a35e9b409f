"""XENON1T TPC channel map: PMT positions, dead channels, gains, ZLE thresholds, afterpulse tables.

Everything here is deterministic, so simulation and processing always agree on the same detector
(docs/physics.md, "Detector tables"). The per-channel tables are pax's public ones, extracted into
``pax_tables.json`` by ``tests/simulation/extract_pax_tables.py``:

* Bottom-array numbering: lattice rows of constant second lattice coordinate (along the 22.5°
  lattice vector), rows from highest to lowest, within a row by increasing first coordinate: pax's
  ``XENON1T.ini`` ``pmts`` positions (channel 127 at (-30.69, 32.28) cm, the centre PMT 187).
* Gains: pax's SR1 or SR0 per-channel gains (``SR1_parameters.ini``/``SR0_parameters.ini``); a
  channel is dead in a period where its gain is 0 (SR1: ``DEAD_CHANNELS``; SR0: channel 51 dead,
  2 and 190 live).
* ZLE thresholds: pax's per-channel ``[ZLE] special_thresholds`` (``physics.zle_thresholds``
  ``"pax_per_channel"``), or ``physics.zle_threshold_adc`` on every channel (``"uniform"``).
* Afterpulses: the 16 types of ``pmt_afterpulses/sr1_run16347.ini`` with pax's per-PMT
  probabilities, delays and amplitudes (``physics.pmt_afterpulse_table`` ``"per_pmt"``), or every
  live PMT with the live-channel mean of each column (``"type_means"``). The probabilities sum
  to 3.47 % per PE over live channels (2.97 % over all 248 channels, dead ones counting 0).
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

N_TPC_CHANNELS = 248
TOP_CHANNELS = np.arange(127)
BOTTOM_CHANNELS = np.arange(127, 248)
# SR1's dead channels (SR0's: ~live_mask("SR0"))
DEAD_CHANNELS = np.array([1, 2, 12, 26, 27, 34, 62, 65, 73, 79, 86, 88, 91, 102, 118, 130, 134, 135, 137,
                          139, 148, 150, 152, 162, 167, 178, 183, 190, 198, 203, 206, 213, 214, 234, 239,
                          244])

TOP_RING_PITCH_CM = 7.95
TOP_RING_FIRST_ANGLE_DEG = 105.0
BOTTOM_LATTICE_PITCH_CM = 8.0
BOTTOM_LATTICE_ANGLES_DEG = (22.5, 82.5)
BOTTOM_ARRAY_MAX_RADIUS_CM = 44.6
PAX_TABLES_FILE = "pax_tables.json"


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def is_top(channels) -> np.ndarray:
    """True for top-array channels (0-126)."""
    return np.asarray(channels) < len(TOP_CHANNELS)


@lru_cache(maxsize=2)
def live_mask(period: str = "SR1") -> np.ndarray:
    """bool[248]: True for channels with a non-zero gain in the period (212 live in SR1, 213 in SR0)."""
    return _read_only(np.asarray(pax_tables()["gains_electrons_per_pe"][period], dtype=float) > 0)


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
    i, j = np.meshgrid(steps, steps[::-1], indexing="xy")  # row-major: j (row, descending) outer, i inner
    points = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2
    inside = np.hypot(points[:, 0], points[:, 1]) <= BOTTOM_ARRAY_MAX_RADIUS_CM
    positions[channel:] = points[inside]
    assert inside.sum() == len(BOTTOM_CHANNELS)
    return _read_only(positions)


@lru_cache(maxsize=1)
def pax_tables() -> dict:
    """pax's per-channel tables (gains per period, ZLE thresholds, afterpulses) as shipped."""
    return json.loads(resources.files(__name__).joinpath(PAX_TABLES_FILE).read_text())


@lru_cache(maxsize=2)
def gains(period: str = "SR1") -> np.ndarray:
    """float64[248]: PMT gain in electrons per PE for the period; 0 for dead channels."""
    return _read_only(np.asarray(pax_tables()["gains_electrons_per_pe"][period], dtype=float))


def electrons_per_adc_sample(physics) -> float:
    """Electrons of PMT charge per ADC-count-sample of pulse area (~17143 for XENON1T).

    A charge Q spread over samples of duration dt gives sum(ADC) = Q x adc_per_electron_per_ns / dt.
    """
    return physics.sample_duration_ns / physics.adc_per_electron_per_ns


def zle_thresholds_adc(physics) -> np.ndarray:
    """int64[248]: ZLE threshold in ADC counts above the reference baseline, per channel."""
    if physics.zle_thresholds == "uniform":
        return np.full(N_TPC_CHANNELS, int(physics.zle_threshold_adc), dtype=np.int64)
    special = pax_tables()["zle_special_thresholds_adc"]
    return np.array([special.get(str(channel), physics.zle_threshold_adc) for channel in range(N_TPC_CHANNELS)],
                    dtype=np.int64)


@dataclass(frozen=True)
class AfterpulseType:
    """One PMT afterpulse species of pax's table.

    ``delay_kind`` is "uniform" (delay ~ U(delay_a, delay_b)) or "normal" (delay ~ N(delay_a,
    delay_b)); the area is gain x a Gaussian factor N(amplitude_mean, amplitude_rms) truncated at 0.
    """

    name: str
    delay_kind: str


AFTERPULSE_TYPES = tuple(AfterpulseType(f"Uniform{i}", "uniform") for i in range(9)) + tuple(
    AfterpulseType(name, "normal") for name in ("He", "CH4", "Ne", "N2", "Ar", "Xe2+", "Xe"))


@dataclass(frozen=True)
class AfterpulseTable:
    """float64[248, 16] per channel and type: probability per PE, delay parameters (ns), amplitude."""

    probability: np.ndarray
    delay_a_ns: np.ndarray
    delay_b_ns: np.ndarray
    amplitude_mean: np.ndarray
    amplitude_rms: np.ndarray


@lru_cache(maxsize=4)
def _afterpulse_table(model: str, period: str) -> AfterpulseTable:
    table = pax_tables()["afterpulses"]
    assert table["types"] == [t.name for t in AFTERPULSE_TYPES]
    live = live_mask(period)
    columns = {}
    for key in ("probability", "delay_a_ns", "delay_b_ns", "amplitude_mean", "amplitude_rms"):
        values = np.asarray(table[key], dtype=float)
        if model == "type_means":
            values = np.broadcast_to(values[live].mean(axis=0), values.shape).copy()
        values[~live] = 0.0
        columns[key] = _read_only(values)
    return AfterpulseTable(**columns)


def afterpulse_table(physics) -> AfterpulseTable:
    """The afterpulse table selected by ``physics.pmt_afterpulse_table``, probabilities unscaled."""
    return _afterpulse_table(physics.pmt_afterpulse_table, physics.period)


def afterpulse_probabilities(physics) -> np.ndarray:
    """float64[248, 16]: per-PE probability of each afterpulse type, x ``pmt_afterpulse_scale``.

    Probabilities are capped at 1; dead channels are 0.
    """
    return np.minimum(afterpulse_table(physics).probability * physics.pmt_afterpulse_scale, 1.0)
