"""The calibration reconstruction uses: the one place processing learns about the detector.

Built from resolved ``ProcessingParameters`` (whose calibration keys follow the simulated
detector unless overridden, docs/physics.md "Calibration"); processing never reads the
simulator's parameters.
"""

from dataclasses import dataclass, fields

import numpy as np

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.parameters import ProcessingParameters


@dataclass(frozen=True)
class Calibration:
    gain_period: str
    electron_lifetime_us: float
    drift_velocity_um_per_ns: float
    drift_time_gate_us: float
    adc_per_electron_per_ns: float
    s2_pattern_height_cm: float
    field_distortion: bool

    @classmethod
    def of(cls, processing: ProcessingParameters) -> "Calibration":
        values = {f.name: getattr(processing, f.name) for f in fields(cls)}
        unset = sorted(name for name, value in values.items() if value is None)
        if unset:
            raise ValueError(f"processing calibration not resolved ({', '.join(unset)} unset): build the "
                             "ProcessingParameters with ProcessingParameters.for_physics")
        return cls(**values)

    def adc_to_pe(self, sample_duration_ns: float) -> np.ndarray:
        """float64[248]: PE per ADC-count-sample of integrated pulse area; 0 for dead channels."""
        channel_gains = detector.gains(self.gain_period)
        electrons_per_adc_sample = sample_duration_ns / self.adc_per_electron_per_ns
        return np.divide(electrons_per_adc_sample, channel_gains, out=np.zeros_like(channel_gains),
                         where=channel_gains > 0)
