"""The catalog of a campaign run: one row per production, built from done records and group summaries.

The catalog reads only what the pipeline wrote (done records, ``groups/g*.json``, merged tables
and instructions), through a record source: local files, or a snapshot fetched from the cluster
with one remote command (:mod:`faxflow.status`). Per production it holds the variant, the swept
parameters, seed and keys, engine and versions, paths and checksums, events in/out, status,
wall and CPU time per step, Slurm job id, node and exit state. Records written before a field
existed leave that column empty; CPU time falls back to wall time (``cpu_source`` says which).

For Slurm runs :func:`scheduler_exit_states` replaces the exit state (and adds the elapsed time) with
what the scheduler's accounting says, from one ``sacct`` for all the run's job ids; rows sacct does not
list keep the state from the records, and ``exit_state_source`` says which one a row carries.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Optional, Protocol

import pandas as pd

from faxflow.pipeline import STEPS, ProductionFiles
from faxflow.plan import Plan, PlannedVariant
from faxflow.records import read_record
from faxflow.slurm import commands
from faxflow.slurm.parsers import parse_sacct, statuses_for
from faxflow.slurm.query import CommandResult

#: Production states, in the order status tables show them.
STATES = ("done", "failed", "running", "pending")
#: Settings never shown as swept parameters (where and how a production runs).
NOT_SWEPT = ("cluster", "number_job", "production_id_format")
#: Where a row's ``exit_state`` came from: the scheduler's accounting, or done records and group summaries.
EXIT_STATE_SOURCES = ("sacct", "records")
#: Longest wait for the scheduler's accounting before the records are used instead.
SACCT_TIMEOUT_S = 60


class RecordSource(Protocol):
    def json(self, path: Path) -> Optional[dict]: ...


class LocalRecords:
    """Records read straight from the local filesystem."""

    def json(self, path: Path) -> Optional[dict]:
        return read_record(path)


def group_summary_path(variant_dir: Path, group_index: int) -> Path:
    return variant_dir / "groups" / f"g{group_index:04d}.json"


def flatten(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def swept_parameters(plan: Plan) -> list[str]:
    """Dotted settings whose values differ between the plan's variants (the campaign's question)."""
    flat = [flatten({k: v for k, v in variant.settings.items() if k not in NOT_SWEPT}) for variant in plan.variants]
    keys = sorted(set().union(*flat)) if flat else []
    return [key for key in keys if len({repr(f.get(key)) for f in flat}) > 1]


def _timestamp(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def _group_outcomes(variant: PlannedVariant, variant_dir: Path, source: RecordSource) -> dict:
    """production id → (group summary, that production's entry in it)."""
    outcomes = {}
    for index in variant.group_indices:
        summary = source.json(group_summary_path(variant_dir, index))
        if not summary:
            continue
        for entry in summary.get("productions", []):
            outcomes[entry.get("production_id")] = (summary, entry)
    return outcomes


def production_rows(plan: Plan, variant: PlannedVariant, root: Path, source: RecordSource,
                    swept: list[str]) -> list[dict]:
    variant_dir = Path(root) / variant.output_dir
    engine = variant.settings["engine"]
    flat = flatten(variant.settings)
    outcomes = _group_outcomes(variant, variant_dir, source)
    group_of = {pid: group for group in plan.groups if group.variant == variant.name for pid in group.production_ids}
    rows = []
    for production in variant.productions:
        files = ProductionFiles(variant_dir, Path(root) / variant.sim_dir, production.id, production.sim_name, engine)
        records = {step: source.json(files.done_record(step)) for step in STEPS}
        summary, entry = outcomes.get(production.id, (None, None))
        error = (entry or {}).get("error") or {}
        row = {"campaign": plan.campaign, "run_id": plan.run_id, "variant": variant.name,
               "variant_key": variant.key, "production": production.id, "index": production.index,
               "seed": production.seed, "group": group_of[production.id].index, "engine": engine,
               **{f"swept.{key}": flat.get(key) for key in swept},
               "events_planned": production.n_events, "variant_dir": str(variant_dir),
               "sim_dir": str(files.sim_dir),
               "merged_path": str(files.merged), "instructions_path": str(files.instructions)}
        merge = records["merge"]
        first = next((r for r in records.values() if r), {})
        row.update({"engine_version": first.get("engine_version"), "faxflow_version": first.get("faxflow_version"),
                    "sim_key": first.get("sim_key"), "proc_key": first.get("proc_key"),
                    "events_in": (records["instructions"] or {}).get("events_out"),
                    "events_out": (merge or {}).get("events_out"),
                    "merged_sha256": next(iter((merge or {}).get("outputs", {}).values()), None),
                    "host": (summary or {}).get("host") or first.get("host"),
                    "slurm_job_id": (summary or {}).get("slurm_job_id") or first.get("slurm_job_id"),
                    "failed_step": error.get("step"), "error_class": error.get("error_class"),
                    "exit_code": (summary or {}).get("exit_code")})
        starts, ends, cpu_measured = [], [], True
        for step, record in records.items():
            row[f"{step}_status"] = "done" if record else ("failed" if error.get("step") == step else "missing")
            row[f"{step}_wall_s"] = (record or {}).get("wall_seconds")
            row[f"{step}_cpu_s"] = (record or {}).get("cpu_seconds", (record or {}).get("wall_seconds"))
            cpu_measured &= record is None or "cpu_seconds" in record
            end = _timestamp((record or {}).get("finished_at"))
            if end is not None:
                ends.append(end)
                starts.append(end - (record.get("wall_seconds") or 0.0))
        row["wall_seconds"] = sum(row[f"{s}_wall_s"] or 0.0 for s in STEPS)
        row["cpu_seconds"] = sum(row[f"{s}_cpu_s"] or 0.0 for s in STEPS)
        row["cpu_source"] = "cpu" if cpu_measured else "wall"
        row["started_at"] = min(starts) if starts else None
        row["finished_at"] = max(ends) if ends else None
        if merge:
            row["status"] = "done"
        elif entry and entry.get("status") == "failed":
            row["status"] = "failed"
        else:
            row["status"] = "running" if any(records.values()) else "pending"
        row["exit_state"] = "ok" if merge else (error.get("error_class") or row["status"])
        row["exit_state_source"] = "records"
        row["slurm_elapsed"] = None
        rows.append(row)
    return rows


def build_catalog(plan: Plan, root: Optional[Path] = None, source: Optional[RecordSource] = None) -> pd.DataFrame:
    """The catalog of ``plan`` under ``root`` (default: the plan's output root)."""
    root = Path(root or plan.output_root)
    source = source or LocalRecords()
    swept = swept_parameters(plan)
    rows = [row for variant in plan.variants for row in production_rows(plan, variant, root, source, swept)]
    return pd.DataFrame(rows)


def run_local(command: str) -> CommandResult:
    """Run a command built by :mod:`faxflow.slurm.commands` on this machine (no shell); a missing
    program or a timeout is a failed result, never an exception."""
    try:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=SACCT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CommandResult(-1, stderr=str(exc))
    return CommandResult(done.returncode, done.stdout, done.stderr)


def scheduler_exit_states(catalog: pd.DataFrame, run: Callable[[str], CommandResult] = run_local) -> pd.DataFrame:
    """The catalog with ``exit_state`` and ``slurm_elapsed`` from the scheduler's accounting where it has them.

    One ``sacct`` asks for every job id of the run (split only beyond
    :data:`~faxflow.slurm.commands.MAX_IDS_PER_COMMAND` ids). Rows without a job id (local runs), and all
    rows when sacct fails or is missing, keep the state from the records (``exit_state_source``).
    """
    jobs = catalog["slurm_job_id"].dropna().astype(str) if "slurm_job_id" in catalog else []
    ids = sorted({job for job in jobs if _is_job_id(job)})
    rows = []
    for chunk in commands.chunks(ids):
        result = run(commands.sacct(chunk))
        if not result.ok:
            return catalog
        rows.extend(parse_sacct(result.stdout).rows)
    statuses = statuses_for(ids, rows)
    if not statuses:
        return catalog
    catalog = catalog.copy()
    for index, job in catalog["slurm_job_id"].items():
        status = statuses.get(str(job))
        if status is not None:
            catalog.loc[index, ["exit_state", "slurm_elapsed", "exit_state_source"]] = [
                status.state.value, status.elapsed or None, "sacct"]
    return catalog


def _is_job_id(text: str) -> bool:
    try:
        return bool(commands.check_job_id(text))
    except ValueError:
        return False


def write_catalog(catalog: pd.DataFrame, path: Path) -> Path:
    """Write the catalog as Parquet atomically (a reader never sees half a table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(catalog.astype({c: "string" for c in catalog.columns if c.startswith("swept.")}),
                                 preserve_index=False)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        pq.write_table(table, handle.name)
    os.replace(handle.name, path)
    return path


def event_table(catalog: pd.DataFrame, variant: str) -> pd.DataFrame:
    """A variant's events: merged table rows of its done productions with the produced quanta and depth.

    ``n_photons`` and ``n_electrons`` sum an event's instruction rows; ``depth`` is that of the row that
    produced the S2 (the first row if none did).
    """
    frames = []
    for row in catalog[(catalog["variant"] == variant) & (catalog["status"] == "done")].itertuples():
        merged = pd.read_parquet(row.merged_path)
        merged.insert(0, "production", row.production)
        frames.append(merged.merge(instruction_quanta(Path(row.instructions_path)), on="event_number", how="left"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def instruction_quanta(path: Path) -> pd.DataFrame:
    rows = pd.read_csv(path, usecols=["instruction", "depth", "s1_photons", "s2_electrons"])
    rows["event_number"] = rows["instruction"].ne(rows["instruction"].shift()).cumsum() - 1
    rows["s2_order"] = rows["s2_electrons"] <= 0
    grouped = rows.groupby("event_number")
    depth = rows.sort_values(["event_number", "s2_order"]).groupby("event_number")["depth"].first()
    return pd.DataFrame({"n_photons": grouped["s1_photons"].sum(), "n_electrons": grouped["s2_electrons"].sum(),
                         "depth": depth}).reset_index()
