"""The engines that run the simulate / process / minitrees steps of a production.

An engine is an object with three methods. Each reads its inputs, writes its outputs to the
exact paths it is given (the pipeline hands it staging paths and renames them after success)
and returns a :class:`StepCounts`. Engines raise :class:`faxflow.errors.BadInputError` for
unusable inputs and :class:`faxflow.errors.EngineError` for their own failures.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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

    def version(self) -> str: ...

    def simulate(self, instructions: Path, truth_out: Path, raw_out: Path, seed: int) -> StepCounts: ...

    def process(self, raw: Path, processed_out: Path) -> StepCounts: ...

    def minitrees(self, processed: Path, minitrees_out: Path) -> StepCounts: ...


def get_engine(name: str, settings: dict) -> Engine:
    """Build the engine called ``name`` from a variant's resolved settings dict."""
    if name == "builtin":
        from faxflow.engines.builtin import BuiltinEngine

        return BuiltinEngine.from_settings(settings)
    if name == "pax":
        from faxflow.engines.pax import PaxEngine

        return PaxEngine.from_settings(settings)
    raise ValueError(f"unknown engine {name!r}; allowed: builtin, pax")
