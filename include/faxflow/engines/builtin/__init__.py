"""The builtin engine: a fast re-implementation of fax (simulation) and of the pax/hax steps
that turn its raw data into minitrees.

Simulation modules (one per physical step) are driven by :mod:`.simulate`; reconstruction
modules by :mod:`.process`; :mod:`.minitrees` writes the hax-style tables.
"""

from dataclasses import dataclass
from pathlib import Path

from faxflow import __version__
from faxflow.engines import StepCounts
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters


@dataclass(frozen=True)
class BuiltinEngine:
    physics: PhysicsParameters
    processing: ProcessingParameters
    pmt_afterpulse: bool = True
    s2_afterpulse: bool = True
    name: str = "builtin"

    @classmethod
    def from_settings(cls, settings: dict) -> "BuiltinEngine":
        """Build from a variant's resolved settings (see :mod:`faxflow.config`)."""
        physics = dict(settings.get("physics") or {})
        period = physics.pop("period", "SR1")
        processing = dict(settings.get("processing") or {})
        return cls(
            physics=PhysicsParameters.for_period(period, **physics),
            processing=ProcessingParameters.for_period(period, **processing),
            pmt_afterpulse=settings.get("pmt_afterpulse", True),
            s2_afterpulse=settings.get("s2_afterpulse", True),
        )

    def version(self) -> str:
        return f"builtin-{__version__}"

    def simulate(self, instructions: Path, truth_out: Path, raw_out: Path, seed: int) -> StepCounts:
        from faxflow.engines.builtin.simulation.simulate import simulate_file

        return simulate_file(instructions, truth_out, raw_out, self.physics,
                             pmt_afterpulse=self.pmt_afterpulse, s2_afterpulse=self.s2_afterpulse, seed=seed)

    def process(self, raw: Path, processed_out: Path) -> StepCounts:
        from faxflow.engines.builtin.processing.process import process_file

        return process_file(raw, processed_out, self.physics, self.processing)

    def minitrees(self, processed: Path, minitrees_out: Path) -> StepCounts:
        from faxflow.engines.builtin.minitrees import build_minitrees_file

        return build_minitrees_file(processed, minitrees_out, self.physics, self.processing)
