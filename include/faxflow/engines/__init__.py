"""The engines that run the simulate / process / minitrees steps of a production.

An engine is an object with the methods of :class:`Engine`. Each reads its inputs, writes its
outputs to the exact paths it is given (the pipeline hands it staging paths and renames them after
success) and returns a :class:`StepCounts`. Engines raise :class:`faxflow.errors.BadInputError` for
unusable inputs and :class:`faxflow.errors.EngineError` for their own failures.

An engine with ``can_drop_raw`` also offers the fused chain: ``simulation_batches`` streams the
raw data of ``simulate`` (same seed, same content) batch by batch, writing the raw file only if
asked, and ``process_batches`` processes such a stream as it arrives; ``simulate_to_memory`` gives
the whole raw data in memory and ``process`` accepts them. Such a raw file can always be
regenerated from the production's instructions and seed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class StepCounts:
    """Events a step read and wrote; the pipeline checks them against each other."""

    events_in: int
    events_out: int


@dataclass(frozen=True)
class ProductionPaths:
    """Where one production's files live. Engines receive the subset they need."""

    instructions: Path  # pax instruction CSV
    truth: Path  # fax truth CSV
    raw: Path  # ZLE raw data (builtin: .npz; pax: directory)
    processed: Path  # processed events (builtin: .parquet; pax: .root)
    minitrees: Path  # merged minitree table (.parquet)


class Engine(Protocol):
    name: str
    can_drop_raw: bool

    def version(self) -> str: ...

    def prepare(self, output_root: Path, echo: Callable[[str], None]) -> object:
        """Once per job, before the first production (e.g. load or compile kernels, logging via echo)."""

    def simulate(self, instructions: Path, truth_out: Path, raw_out: Path, seed: int) -> StepCounts: ...

    def process(self, raw: Path, processed_out: Path) -> StepCounts: ...

    def minitrees(self, processed: Path, minitrees_out: Path) -> StepCounts: ...


class FusedEngine(Engine, Protocol):
    """An engine with ``can_drop_raw``: raw data can stay in memory between simulate and process."""

    def simulate_to_memory(self, instructions: Path, truth_out: Path, *, seed: int) -> tuple[StepCounts, Any]: ...

    def simulation_batches(self, instructions: Path, truth_out: Path, *, seed: int,
                           raw_out: Path | None = None) -> Any:
        """An iterable of raw-data batches with ``counts()``; truth (and raw file) written at its end."""

    def process_batches(self, batches: Any, processed_out: Path) -> StepCounts: ...

    def process(self, raw: Any, processed_out: Path) -> StepCounts: ...

    def write_raw(self, raw: Any, out: Path) -> None: ...


def get_engine(name: str, settings: dict) -> Engine:
    """Build the engine called ``name`` from a variant's resolved settings dict."""
    if name == "builtin":
        from faxflow.engines.builtin import BuiltinEngine

        return BuiltinEngine.from_settings(settings)
    if name == "pax":
        from faxflow.engines.pax import PaxEngine

        return PaxEngine.from_settings(settings)
    raise ValueError(f"unknown engine {name!r}; allowed: builtin, pax")
