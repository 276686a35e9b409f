"""Ceilings on what one campaign may ask for: the one home of every size and value bound.

Sizes (productions, events, variants) have a default ceiling that a campaign may lower or raise
in its ``limits:`` section, but never above the hard maximum here. Value bounds (quanta per
interaction, NEST energies, config file size) are fixed. Config models, the planner, the CLI and
the Airflow trigger form all take their numbers from this module (docs/reliability.md).
"""

from dataclasses import dataclass

#: Largest campaign file read (bytes); a bigger file is refused before parsing.
MAX_CONFIG_BYTES = 1 << 20
#: Deepest nesting of YAML collections accepted in a campaign file.
MAX_CONFIG_DEPTH = 32
#: Most variants one campaign may expand to (list × matrix), checked before expanding.
MAX_VARIANTS = 1000


@dataclass(frozen=True)
class SizeLimit:
    """A ceiling a campaign may set in ``limits:``: ``default`` unless set, never above ``hard``."""

    default: int
    hard: int
    description: str


SIZE_LIMITS = {
    "max_productions_per_variant": SizeLimit(10_000, 1_000_000, "largest number_job"),
    "max_events_per_production": SizeLimit(100_000, 10_000_000, "largest number_event_per_job"),
    "max_events_per_campaign": SizeLimit(100_000_000, 10_000_000_000, "largest sum of events over all variants"),
    # each production costs ~5 µs of planning and ~170 B of manifest slices (bench/bench_plan.py)
    "max_productions_per_campaign": SizeLimit(100_000, 1_000_000, "largest sum of number_job over all variants"),
}

#: S1 photons / S2 electrons one instruction row may carry (a 10 MeV deposit gives ~7e5 quanta).
MAX_PHOTONS_PER_INTERACTION = 10_000_000
MAX_ELECTRONS_PER_INTERACTION = 10_000_000

#: Energy range (keV) in which the NEST yield models are defined, per recoil type.
NEST_ENERGY_RANGE_KEV = {"ER": (0.1, 3000.0), "NR": (0.1, 330.0), "alpha": (100.0, 10000.0)}


def size_limit(name: str, campaign_limits: dict | None = None) -> int:
    """The ceiling ``name`` in force for a campaign whose ``limits:`` section is ``campaign_limits``."""
    value = (campaign_limits or {}).get(name)
    return SIZE_LIMITS[name].default if value is None else value


def trigger_maxima(campaign_limits: dict | None = None) -> dict[str, int]:
    """Maxima of the Airflow trigger parameters ``number_job`` and ``events`` for one campaign."""
    return {"number_job": size_limit("max_productions_per_variant", campaign_limits),
            "events": size_limit("max_events_per_production", campaign_limits)}
