"""The plan: a campaign expanded into variants → productions → groups.

Outputs are keyed per step (``docs/reliability.md``, output layout): a variant's simulation
outputs live under ``<campaign>/sim-<sim_key>/``, where ``sim_key`` hashes the settings that shape
instructions and simulation, the engine and software versions, the campaign seed and (for
``seed_policy: per_run``) the run id. Its processing outputs live under
``<campaign>/<variant>-<key>/``, where ``key`` hashes ``sim_key`` plus the processing settings.
Variants that differ only in ``processing:`` therefore share their simulations, and no two seeds
ever share a directory. Each production's seed derives from (campaign, sim_key, index, seed).
The plan is frozen into a verified manifest by :mod:`faxflow.manifest`.
"""

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, Optional

from pydantic import BaseModel

from faxflow import __version__, backends
from faxflow.config import Campaign, ResolvedVariant
from faxflow.errors import BadInputError
from faxflow.names import SAFE_NAME, SAFE_NAME_HELP

MANIFEST_VERSION = 2
#: Settings that change where and how productions run, not what they contain.
NOT_IN_KEY = ("number_job", "production_id_format", "cluster")
#: Settings that shape processing only; every other setting shapes the simulation.
PROCESSING_ONLY = ("processing",)
#: Settings that change what is kept, not what is computed.
NOT_IN_SIM_KEY = ("raw",)
#: Full-chain throughput used for CPU-time estimates (events per CPU-second). builtin: the largest
#: production of bench/results/chain.json (``make bench``, raw dropped); pax: about 2 s per event.
EVENTS_PER_CPU_SECOND = {"builtin": 1687.0, "pax": 0.5}


class Production(NamedTuple):
    """One production; a tuple, because a plan holds up to a million of them."""

    id: str
    index: int
    seed: int
    n_events: int

    def to_dict(self) -> dict:
        return {"id": self.id, "index": self.index, "seed": self.seed, "n_events": self.n_events}

    @property
    def sim_name(self) -> str:
        """The file stem of this production's simulation outputs (shared by variants with one sim_key)."""
        return f"p{self.index:07d}"


class Productions(Sequence):
    """A variant's productions, made when read: a plan holds ids for all of them (checked when
    planning) but seeds and :class:`Production` tuples only for what a caller reads (a slice, a group)."""

    _CHUNK = 4096

    def __init__(self, campaign: str, simulation_key: str, base_seed: int, ids: list[str], indices: range,
                 n_events: int):
        self._seed_of = (campaign, simulation_key, base_seed)
        self.ids, self._indices, self._n_events = ids, indices, n_events

    def __len__(self) -> int:
        return len(self.ids)

    def _make(self, positions: range) -> list[Production]:
        indices = self._indices[positions.start:positions.stop]
        campaign, key, base_seed = self._seed_of
        seeds = production_seeds(campaign, key, indices, base_seed)
        return list(map(Production._make, zip(self.ids[positions.start:positions.stop], indices, seeds,
                                              [self._n_events] * len(indices))))

    def __getitem__(self, key):
        if isinstance(key, slice):
            positions = range(len(self))[key]
            if positions.step != 1:
                return [self[i] for i in positions]
            return self._make(positions)
        position = range(len(self))[key]
        return self._make(range(position, position + 1))[0]

    def __iter__(self) -> Iterator[Production]:
        for start in range(0, len(self), self._CHUNK):
            yield from self._make(range(start, min(start + self._CHUNK, len(self))))

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    @property
    def events(self) -> int:
        return self._n_events * len(self)


class Group(BaseModel):
    """One Slurm job (or one local worker task): productions run one after another."""

    index: int
    variant: str
    number: int
    production_ids: list[str]
    job_name: str


class PlannedVariant(BaseModel):
    name: str
    key: str
    sim_key: str
    settings: dict
    output_dir: str
    sim_dir: str
    productions: Productions
    model_config = {"arbitrary_types_allowed": True}
    group_indices: list[int]


class Plan(BaseModel):
    campaign: str
    description: str
    run_id: str
    faxflow_version: str
    manifest_version: int
    campaign_path: str
    output_root: str
    seed: int
    seed_policy: str
    variants: list[PlannedVariant]
    groups: list[Group]

    def to_dict(self) -> dict:
        variants = [{**variant.model_dump(mode="json", exclude={"productions"}),
                     "productions": [p.to_dict() for p in variant.productions]} for variant in self.variants]
        return {**self.model_dump(mode="json", exclude={"variants"}), "variants": variants}

    def variant(self, name: str) -> PlannedVariant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise BadInputError(f"no variant {name!r} in the plan (variants: {', '.join(v.name for v in self.variants)})")

    def group(self, index: int) -> Group:
        for group in self.groups:
            if group.index == index:
                return group
        raise BadInputError(f"group {index} is not in this manifest (groups: "
                            f"{', '.join(str(g.index) for g in self.groups[:20])})")

    def totals(self) -> dict:
        productions = sum(len(v.productions) for v in self.variants)
        events = sum(v.productions.events for v in self.variants)
        cpu_seconds = sum(v.productions.events / EVENTS_PER_CPU_SECOND[v.settings["engine"]] for v in self.variants)
        return {"variants": len(self.variants), "productions": productions, "events": events,
                "groups": len(self.groups), "cpu_hours": cpu_seconds / 3600}


def _hash12(blob: dict) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


def _versions(settings: dict) -> dict:
    versions = {"faxflow": __version__, "engine": settings["engine"]}
    if settings["engine"] == "pax":
        versions["pax_env"] = settings["pax"]["conda_env"]
    return versions


def sim_key(settings: dict, base_seed: int, salt: str = "") -> str:
    """12 hex digits identifying a variant's instructions and simulation outputs."""
    excluded = (*NOT_IN_KEY, *PROCESSING_ONLY, *NOT_IN_SIM_KEY)
    shaped = {key: value for key, value in settings.items() if key not in excluded}
    return _hash12({"settings": shaped, "versions": _versions(settings), "seed": base_seed, "salt": salt})


def processing_key(settings: dict, simulation_key: str) -> str:
    """12 hex digits identifying a variant's processing outputs: its simulation plus processing settings."""
    shaped = {key: settings.get(key) for key in PROCESSING_ONLY}
    return _hash12({"sim_key": simulation_key, "settings": shaped, "versions": _versions(settings)})


def production_seed(campaign: str, key: str, index: int, base_seed: int) -> int:
    """A 63-bit seed, a pure function of campaign, simulation key, production index and base seed."""
    return production_seeds(campaign, key, [index], base_seed)[0]


def production_seeds(campaign: str, key: str, indices, base_seed: int) -> list[int]:
    """:func:`production_seed` of every index in ``indices`` (one loop: planning calls it a million times)."""
    sha256, prefix, suffix = hashlib.sha256, f"{campaign}|{key}|", f"|{base_seed}"
    return [int.from_bytes(sha256(f"{prefix}{index}{suffix}".encode()).digest()[:8], "big") >> 1
            for index in indices]


def run_tag(run_id: str) -> str:
    """8 characters naming a run inside Slurm job names."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:8]


def seed_salt(seed_policy: str, run_id: str) -> str:
    return run_id if seed_policy == "per_run" else ""


def expand_productions(campaign: str, variant: str, settings: dict, simulation_key: str, base_seed: int,
                       indices: range) -> Productions:
    """The productions ``indices`` of one variant; refuses ids that are unsafe or collide."""
    id_format = settings["production_id_format"]
    ids = [id_format.format(name=variant, index=index) for index in indices]
    if len(set(ids)) < len(ids):
        colliding = [pid for pid, count in Counter(ids).items() if count > 1]
        raise BadInputError(f"variant {variant}: production_id_format {id_format!r} gives the same id to several "
                            f"productions ({', '.join(colliding[:5])}{' …' if len(colliding) > 5 else ''}); "
                            "use {index} without truncation")
    joined = "\n".join(ids) + "\n"
    if not (_ALL_SAFE.fullmatch(joined) and joined.count("\n") == len(ids)):  # one pass; the loop names the culprit
        unsafe = next(pid for pid in ids if not SAFE_NAME.match(pid) or "\n" in pid)
        raise BadInputError(f"variant {variant}: production id {unsafe!r} is not a safe name ({SAFE_NAME_HELP})")
    return Productions(campaign, simulation_key, base_seed, ids, indices, settings["number_event_per_job"])


_ALL_SAFE = re.compile(f"(?:{SAFE_NAME.pattern.removeprefix('^').removesuffix('$')}\n)*")


def make_plan(campaign: Campaign, *, run_id: str = "manual", output_root: Optional[str] = None,
              variants: Optional[list[str]] = None, number_job: Optional[int] = None,
              events: Optional[int] = None) -> Plan:
    """Expand ``campaign`` into a plan. ``variants``, ``number_job`` and ``events`` override the file."""
    chosen = _choose(campaign.resolved_variants(), variants)
    campaign.check_size(number_job, events, [variant.name for variant in chosen])
    salt = seed_salt(campaign.seed_policy, run_id)
    if output_root and not output_root.startswith(("/", "$")):
        output_root = str(Path(output_root).resolve())  # a relative --output-root is this machine's directory
    root = output_root or backends.planned_output_root(campaign.cluster.model_dump(), campaign.output_root)
    planned, groups = [], []
    for variant in chosen:
        settings = dict(variant.settings)
        if number_job is not None:
            settings["number_job"] = number_job
        if events is not None:
            settings["number_event_per_job"] = events
        simulation_key = sim_key(settings, campaign.seed, salt)
        key = processing_key(settings, simulation_key)
        productions = expand_productions(campaign.name, variant.name, settings, simulation_key, campaign.seed,
                                         range(settings["number_job"]))
        per_job = settings["cluster"]["productions_per_job"]
        indices = []
        for number, start in enumerate(range(0, len(productions), per_job)):
            index = len(groups)
            groups.append(Group.model_construct(
                index=index, variant=variant.name, number=number,
                production_ids=productions.ids[start:start + per_job],
                job_name=job_name(campaign.name, run_id, variant.name, number)))
            indices.append(index)
        planned.append(PlannedVariant.model_construct(
            name=variant.name, key=key, sim_key=simulation_key, settings=settings,
            output_dir=f"{campaign.name}/{variant.name}-{key}", sim_dir=f"{campaign.name}/sim-{simulation_key}",
            productions=productions, group_indices=indices))
    return Plan(campaign=campaign.name, description=campaign.description, run_id=run_id, faxflow_version=__version__,
                manifest_version=MANIFEST_VERSION, campaign_path=str(Path(campaign.path).resolve()),
                output_root=str(root), seed=campaign.seed, seed_policy=campaign.seed_policy,
                variants=planned, groups=groups)


def job_name(campaign: str, run_id: str, variant: str, number: int) -> str:
    return f"ff_{campaign}_{run_tag(run_id)}_{variant}_g{number:04d}"


def _choose(variants: list[ResolvedVariant], names: Optional[list[str]]) -> list[ResolvedVariant]:
    if not names:
        return variants
    known = {v.name for v in variants}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BadInputError(f"unknown variant(s) {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
    return [v for v in variants if v.name in names]


def format_duration(seconds: float) -> str:
    """A duration readable at any scale: s, min or h with 3 significant figures (never "0.000")."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def format_dry_run(plan: Plan) -> str:
    """A table of what the plan would run, with the CPU time at the engines' measured throughput."""
    rows = [("variant", "key", "productions", "events", "groups", "est. CPU time")]
    for variant in plan.variants:
        events = variant.productions.events
        rate = EVENTS_PER_CPU_SECOND[variant.settings["engine"]]
        rows.append((variant.name, variant.key, str(len(variant.productions)), str(events),
                     str(len(variant.group_indices)), format_duration(events / rate)))
    totals = plan.totals()
    rows.append(("total", "", str(totals["productions"]), str(totals["events"]), str(totals["groups"]),
                 format_duration(totals["cpu_hours"] * 3600)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width)
                       in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.insert(-1, lines[1])
    engines = sorted({variant.settings["engine"] for variant in plan.variants})
    rates = ", ".join(f"{engine} {EVENTS_PER_CPU_SECOND[engine]:g}" for engine in engines)
    return "\n".join(lines) + f"\n\noutput root: {plan.output_root}\nrun id: {plan.run_id}  " \
                              f"(est. CPU time at {rates} events/s/core)"
