"""The plan: a campaign expanded into variants → productions → groups, frozen as a manifest.

The manifest is the only thing a job reads. Its name is the hash of its content, so editing the
campaign YAML after planning never changes a queued job. Each variant's outputs live under a
directory keyed by a hash of everything that shapes them (settings that reach the engine and
software versions), and each production's seed derives from (campaign, variant key, index).
"""

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Optional

from pydantic import BaseModel

from faxflow import __version__
from faxflow.config import Campaign, ResolvedVariant
from faxflow.errors import BadInputError

MANIFEST_VERSION = 1
#: Settings that change where and how productions run, not what they contain.
NOT_IN_KEY = ("number_job", "production_id_format", "cluster")
#: Full-chain throughput used for CPU-time estimates (events/s/core; see bench/).
EVENTS_PER_CPU_SECOND = {"builtin": 400.0, "pax": 0.5}


class Production(BaseModel):
    id: str
    index: int
    seed: int
    n_events: int


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
    settings: dict
    output_dir: str
    productions: list[Production]
    group_indices: list[int]


class Plan(BaseModel):
    campaign: str
    run_id: str
    faxflow_version: str
    manifest_version: int
    campaign_path: str
    output_root: str
    variants: list[PlannedVariant]
    groups: list[Group]

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        return cls.model_validate(data)

    def variant(self, name: str) -> PlannedVariant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"no variant {name!r} in the plan (variants: {', '.join(v.name for v in self.variants)})")

    def group_command(self, group: Group, manifest: str) -> list[str]:
        """The command a job runs for ``group`` (arguments, not a shell string)."""
        return ["faxflow", "job", "--manifest", manifest, "--group", str(group.index)]

    def totals(self) -> dict:
        productions = sum(len(v.productions) for v in self.variants)
        events = sum(p.n_events for v in self.variants for p in v.productions)
        cpu_seconds = sum(p.n_events / EVENTS_PER_CPU_SECOND[v.settings["engine"]]
                          for v in self.variants for p in v.productions)
        return {"variants": len(self.variants), "productions": productions, "events": events,
                "groups": len(self.groups), "cpu_hours": cpu_seconds / 3600}


def variant_key(settings: dict, salt: str = "") -> str:
    """12 hex digits identifying the content of a variant's productions."""
    shaped = {key: value for key, value in settings.items() if key not in NOT_IN_KEY}
    versions = {"faxflow": __version__, "engine": settings["engine"]}
    if settings["engine"] == "pax":
        versions["pax_env"] = settings["pax"]["conda_env"]
    blob = json.dumps({"settings": shaped, "versions": versions, "salt": salt}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def production_seed(campaign: str, key: str, index: int, base_seed: int) -> int:
    """A 63-bit seed, a pure function of campaign, variant key, production index and base seed."""
    digest = hashlib.sha256(f"{campaign}|{key}|{index}|{base_seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def run_tag(run_id: str) -> str:
    """8 characters naming a run inside Slurm job names."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:8]


def make_plan(campaign: Campaign, *, run_id: str = "manual", output_root: Optional[str] = None,
              variants: Optional[list[str]] = None, number_job: Optional[int] = None,
              events: Optional[int] = None) -> Plan:
    """Expand ``campaign`` into a plan. ``variants``, ``number_job`` and ``events`` override the file."""
    chosen = _choose(campaign.resolved_variants(), variants)
    salt = run_id if campaign.seed_policy == "per_run" else ""
    root = output_root or _default_output_root(campaign)
    planned, groups = [], []
    for variant in chosen:
        settings = dict(variant.settings)
        if number_job is not None:
            settings["number_job"] = number_job
        if events is not None:
            settings["number_event_per_job"] = events
        key = variant_key(settings, salt)
        productions = [
            Production(id=settings["production_id_format"].format(name=variant.name, index=index), index=index,
                       seed=production_seed(campaign.name, key, index, campaign.seed),
                       n_events=settings["number_event_per_job"])
            for index in range(settings["number_job"])
        ]
        per_job = settings["cluster"]["productions_per_job"]
        indices = []
        for number, start in enumerate(range(0, len(productions), per_job)):
            index = len(groups)
            groups.append(Group(index=index, variant=variant.name, number=number,
                                production_ids=[p.id for p in productions[start:start + per_job]],
                                job_name=f"ff_{campaign.name}_{run_tag(run_id)}_{variant.name}_g{number:04d}"))
            indices.append(index)
        planned.append(PlannedVariant(name=variant.name, key=key, settings=settings,
                                      output_dir=f"{campaign.name}/{variant.name}-{key}",
                                      productions=productions, group_indices=indices))
    return Plan(campaign=campaign.name, run_id=run_id, faxflow_version=__version__,
                manifest_version=MANIFEST_VERSION, campaign_path=str(Path(campaign.path).resolve()),
                output_root=str(root), variants=planned, groups=groups)


def _choose(variants: list[ResolvedVariant], names: Optional[list[str]]) -> list[ResolvedVariant]:
    if not names:
        return variants
    known = {v.name for v in variants}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BadInputError(f"unknown variant(s) {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
    return [v for v in variants if v.name in names]


def _default_output_root(campaign: Campaign) -> str:
    if campaign.cluster.backend == "slurm":
        return f"{campaign.cluster.remote_root}/outputs"
    return str(Path(campaign.output_root).resolve())


def manifest_bytes(plan: Plan) -> bytes:
    return plan.model_dump_json().encode()


def write_manifest(plan: Plan, directory) -> Path:
    """Write the manifest under its content-addressed name (atomically); return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    content = manifest_bytes(plan)
    path = directory / f"manifest-{hashlib.sha256(content).hexdigest()[:12]}.json"
    if not path.exists():
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".manifest-", delete=False) as handle:
            handle.write(content)
        os.replace(handle.name, path)
    return path


def load_manifest(path) -> Plan:
    """Read a manifest; refuses one written by another faxflow or manifest format."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: cannot read manifest: {error}") from None
    check_compatible(data, path)
    return Plan.from_dict(data)


def check_compatible(data: dict, path) -> None:
    if data.get("manifest_version") != MANIFEST_VERSION:
        raise BadInputError(f"{path}: manifest format {data.get('manifest_version')!r} is not understood by this "
                            f"faxflow (format {MANIFEST_VERSION})")
    if data.get("faxflow_version") != __version__:
        raise BadInputError(f"{path}: planned with faxflow {data.get('faxflow_version')}, this is faxflow "
                            f"{__version__}; a campaign must run with the faxflow that planned it")
    if not re.match(r"^[A-Za-z0-9_.-]+$", str(data.get("campaign", ""))):
        raise BadInputError(f"{path}: bad campaign name in manifest")


def format_dry_run(plan: Plan) -> str:
    """A table of what the plan would run."""
    rows = [("variant", "key", "productions", "events", "groups", "est. CPU h")]
    for variant in plan.variants:
        events = sum(p.n_events for p in variant.productions)
        rate = EVENTS_PER_CPU_SECOND[variant.settings["engine"]]
        rows.append((variant.name, variant.key, str(len(variant.productions)), str(events),
                     str(len(variant.group_indices)), f"{events / rate / 3600:.3f}"))
    totals = plan.totals()
    rows.append(("total", "", str(totals["productions"]), str(totals["events"]), str(totals["groups"]),
                 f"{totals['cpu_hours']:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width)
                       in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.insert(-1, lines[1])
    return "\n".join(lines) + f"\n\noutput root: {plan.output_root}\nrun id: {plan.run_id}  " \
                              f"(est. CPU time at {math.floor(EVENTS_PER_CPU_SECOND['builtin'])} events/s/core builtin)"
