"""Peak classification: pax HEAD ``AdHocClassification1T`` (domain-reference §5.3).

- one contributing channel → ``lone_hit``;
- fast peaks (rise time t50 − t10 < ``s1_max_rise_time_ns`` and 90 % width < ``s1_max_width_90p_ns``)
  → ``s1`` if tight_coincidence ≥ ``s1_min_tight_coincidence``, else ``unknown``;
- slow peaks → ``s2`` if n_contributing_channels ≥ ``s2_min_channels``, else ``unknown``.

The HEAD rule is used rather than v6.8.0's area/AFT-dependent rise-time curve: it has no
hand-tuned curves, and its thresholds are all ProcessingParameters, so a campaign can vary them.
"""

import numpy as np

from faxflow.engines.builtin.parameters import ProcessingParameters

PEAK_TYPES = ("lone_hit", "s1", "s2", "unknown")
LONE_HIT, S1, S2, UNKNOWN = range(4)


def classify(rise_time_ns: np.ndarray, width_90p_ns: np.ndarray, tight_coincidence: np.ndarray,
             n_contributing_channels: np.ndarray, processing: ProcessingParameters) -> np.ndarray:
    """Type code per peak (index into PEAK_TYPES), int8."""
    fast = (rise_time_ns < processing.s1_max_rise_time_ns) & (width_90p_ns < processing.s1_max_width_90p_ns)
    fast_type = np.where(tight_coincidence >= processing.s1_min_tight_coincidence, S1, UNKNOWN)
    slow_type = np.where(n_contributing_channels >= processing.s2_min_channels, S2, UNKNOWN)
    kind = np.where(fast, fast_type, slow_type)
    return np.where(n_contributing_channels == 1, LONE_HIT, kind).astype(np.int8)
