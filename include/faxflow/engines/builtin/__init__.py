"""The builtin engine: a fast re-implementation of fax (simulation) and of the pax/hax steps
that turn its raw data into minitrees.

Simulation modules (one per physical step) are driven by :mod:`.simulate`; reconstruction
modules by :mod:`.process`; :mod:`.minitrees` writes the hax-style tables.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faxflow import __version__
from faxflow.engines import StepCounts
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.errors import StorageError

if TYPE_CHECKING:  # rawio imports pyarrow, which DAG parsing does not need
    from faxflow.engines.builtin.rawio import RawData
    from faxflow.engines.builtin.simulation.simulate import SimulationBatches

#: Events simulated (and, in a fused chain, processed) at a time. It bounds a worker's memory
#: (about 100 MB per batch at the 2017 settings) and is part of the random stream, so it enters
#: the engine version that done records check: outputs of another batch size are never reused.
BATCH_EVENTS = 200


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
        physics = PhysicsParameters.for_period(period, **physics)
        return cls(
            physics=physics,
            processing=ProcessingParameters.for_physics(physics, **processing),
            pmt_afterpulse=settings.get("pmt_afterpulse", True),
            s2_afterpulse=settings.get("s2_afterpulse", True),
        )

    can_drop_raw = True  # raw data are regenerated from instructions + seed, see simulation_batches

    def version(self) -> str:
        return f"builtin-{__version__}-b{BATCH_EVENTS}"

    def prepare(self, output_root: Path, echo: Callable[[str], None]) -> Path:
        """Choose the kernel cache (``<output_root>/.cache/kernels`` unless ``FAXFLOW_KERNEL_CACHE``
        is set) and compile the kernels there now if it is not warm, saying so through ``echo``."""
        from faxflow.engines.builtin import kernel_cache

        directory = kernel_cache.use(Path(output_root) / ".cache" / "kernels")
        kernel_cache.ensure_warm(directory, echo)
        return directory

    def simulate(self, instructions: Path, truth_out: Path, raw_out: Path, seed: int) -> StepCounts:
        from faxflow.engines.builtin.simulation.simulate import simulate_file

        return simulate_file(instructions, truth_out, raw_out, self.physics,
                             pmt_afterpulse=self.pmt_afterpulse, s2_afterpulse=self.s2_afterpulse, seed=seed)

    def simulate_to_memory(self, instructions: Path, truth_out: Path, *, seed: int) -> tuple[StepCounts, "RawData"]:
        """Like :meth:`simulate` (same truth bytes, same raw content) with the raw data kept in memory."""
        from faxflow.engines.builtin.simulation.simulate import simulate_file_to_memory

        return simulate_file_to_memory(instructions, truth_out, self.physics, pmt_afterpulse=self.pmt_afterpulse,
                                       s2_afterpulse=self.s2_afterpulse, seed=seed)

    def simulation_batches(self, instructions: Path, truth_out: Path, *, seed: int,
                           raw_out: Path | None = None) -> "SimulationBatches":
        """The simulation of :meth:`simulate` as a stream of raw-data batches (truth and raw file written
        at its end), for a chain that processes each batch as it is made."""
        from faxflow.engines.builtin.simulation.simulate import SimulationBatches

        return SimulationBatches(instructions, truth_out, self.physics, pmt_afterpulse=self.pmt_afterpulse,
                                 s2_afterpulse=self.s2_afterpulse, seed=seed, raw_out=raw_out)

    def process_batches(self, batches: Iterable["RawData"], processed_out: Path) -> StepCounts:
        """Process raw data arriving batch by batch into one processed file (the file :meth:`process` writes)."""
        from faxflow.engines.builtin.processing.process import process_batches

        return process_batches(batches, processed_out, self.processing)

    def write_raw(self, raw: "RawData", out: Path) -> None:
        """Write in-memory raw data in the kept (compressed) format of :mod:`.rawio`."""
        from faxflow.engines.builtin import rawio

        try:
            rawio.write_raw(Path(out), raw)
        except OSError as error:
            raise StorageError(f"cannot write raw data {out}: {error}") from error

    def process(self, raw: "Path | RawData", processed_out: Path) -> StepCounts:
        from faxflow.engines.builtin.processing.process import process_file

        return process_file(raw, processed_out, self.processing)

    def minitrees(self, processed: Path, minitrees_out: Path) -> StepCounts:
        from faxflow.engines.builtin.minitrees import build_minitrees_file

        return build_minitrees_file(processed, minitrees_out, self.processing)
