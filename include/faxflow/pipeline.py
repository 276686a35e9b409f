"""The per-production pipeline and the group runner behind ``faxflow job``.

Per production, in order: instructions → simulation → sort_truth (the simulation side, written
under the shared ``sim-<sim_key>`` directory while holding that production's lock), then
processing → minitrees → merge (under the variant's own directory). Each step writes to a
staging directory, renames its outputs into place on success and then writes a done record
(:mod:`faxflow.records`). With an engine that can drop raw data the chain is fused: the simulation
step processes each batch of events as it is simulated (and appends it to the raw file only if raw
data is kept), so a worker holds one batch at a time, and the processing step publishes that
result (its processing CPU time is therefore in the simulation's record, and the processing
record says ``processed_in: simulation``). A processing step that
finds no result of this run and no kept raw file (a resumed job, another variant) simulates again,
batch by batch, with the recorded seed and checks that the truth comes out byte-identical
(``docs/reliability.md``).
A failing production does not stop its group; the group's exit code names the failure class
(:mod:`faxflow.errors`). Only one process writes a group at a time (:mod:`faxflow.locks`).
"""

import json
import logging
import os
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from faxflow import __version__
from faxflow.engines import StepCounts, get_engine
from faxflow.engines.pax import ENGINE_LOG
from faxflow.errors import RETRYABLE_KINDS, BadInputError, EngineError, ValidationFailure, classify
from faxflow.locks import exclusive
from faxflow.manifest import check_inside
from faxflow.plan import Plan, PlannedVariant, Production
from faxflow.records import file_hashes, publish, read_record, record_is_valid, sha256, write_json_atomic

SIM_STEPS = ("instructions", "simulation", "sort_truth")
PROCESSING_STEPS = ("processing", "minitrees", "merge")
STEPS = SIM_STEPS + PROCESSING_STEPS
#: How long a production waits for another variant's job simulating the same production.
SIM_LOCK_WAIT_SECONDS = 4 * 3600


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _where() -> dict:
    return {"host": socket.gethostname(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


@dataclass(frozen=True)
class ProductionFiles:
    """Every path of one production: simulation outputs under ``sim_dir``, the rest under ``variant_dir``."""

    variant_dir: Path
    sim_dir: Path
    production_id: str
    sim_name: str
    engine: str

    def _sim(self, folder: str, suffix: str) -> Path:
        return self.sim_dir / folder / f"{self.sim_name}{suffix}"

    def _in(self, folder: str, suffix: str) -> Path:
        return self.variant_dir / folder / f"{self.production_id}{suffix}"

    @property
    def instructions(self) -> Path:
        return self._sim("instructions", ".csv")

    @property
    def truth(self) -> Path:
        return self._sim("truth_raw", ".csv")

    @property
    def raw(self) -> Path:
        return self._sim("raw", ".npz" if self.engine == "builtin" else "")

    @property
    def truth_sorted(self) -> Path:
        return self._sim("truth_sorted", ".parquet")

    @property
    def processed(self) -> Path:
        return self._in("processed", ".parquet" if self.engine == "builtin" else ".root")

    @property
    def minitrees(self) -> Path:
        return self._in("minitrees", ".parquet")

    @property
    def merged(self) -> Path:
        return self._in("merged", ".parquet")

    @property
    def log(self) -> Path:
        return self._in("logs", ".log")

    def _base(self, step: str) -> tuple[Path, str]:
        return (self.sim_dir, self.sim_name) if step in SIM_STEPS else (self.variant_dir, self.production_id)

    def done_record(self, step: str) -> Path:
        base, name = self._base(step)
        return base / "done" / name / f"{step}.json"

    def staging(self, step: str) -> Path:
        base, name = self._base(step)
        return base / ".staging" / name / step

    def sim_lock(self) -> Path:
        return self.sim_dir / "locks" / f"{self.sim_name}.lock"

    def fault_marker(self, step: str) -> Path:
        """Test hook: if this file exists, ``step`` fails with an engine error (fault injection)."""
        return self.variant_dir / "faults" / f"{self.production_id}.{step}"

    def remove_leftovers(self, steps: tuple) -> None:
        """Staging directories and temporary records a killed writer left (the caller holds the lock)."""
        for step in steps:
            shutil.rmtree(self.staging(step).parent, ignore_errors=True)
            for leftover in self.done_record(step).parent.glob(".*.json.*"):
                leftover.unlink(missing_ok=True)


def step_seed(production_seed: int, step: str) -> int:
    """Independent, reproducible seed for one step of one production."""
    return int(np.random.SeedSequence([production_seed, STEPS.index(step)]).generate_state(1, np.uint64)[0])


@dataclass
class ProductionResult:
    production_id: str
    status: str = "ok"
    steps_run: list[str] = field(default_factory=list)
    steps_skipped: list[str] = field(default_factory=list)
    events: Optional[int] = None
    error: Optional[dict] = None


class ProductionRunner:
    """Runs the six steps of one production of one variant."""

    def __init__(self, plan: Plan, variant: PlannedVariant, output_root: Path, *, force: bool = False,
                 echo: Callable[[str], None] = print):
        self.plan = plan
        self.variant = variant
        self.variant_dir = Path(output_root) / variant.output_dir
        self.sim_dir = Path(output_root) / variant.sim_dir
        self.settings = variant.settings
        self.engine = get_engine(self.settings["engine"], self.settings)
        self.keep_raw = self.settings["raw"] == "keep" or not self.engine.can_drop_raw
        self.force = force
        self.echo = echo
        # the processed file (and its counts) of a simulation that processed its batches as it made
        # them, until the processing step of the same production publishes it
        self._processed_by_simulation: Optional[tuple[Path, StepCounts]] = None

    def files(self, production: Production) -> ProductionFiles:
        return ProductionFiles(self.variant_dir, self.sim_dir, production.id, production.sim_name,
                               self.settings["engine"])

    def run(self, production: Production) -> ProductionResult:
        files = self.files(production)
        result = ProductionResult(production.id)
        log = _production_logger(files.log)
        engine_log = logging.getLogger(ENGINE_LOG)  # what the engine's own commands print
        engine_log.setLevel(logging.INFO)
        engine_log.propagate = False
        for handler in log.handlers:
            engine_log.addHandler(handler)
        self._processed_by_simulation = None
        try:
            files.remove_leftovers(PROCESSING_STEPS)
            with exclusive(files.sim_lock(), f"simulation {files.sim_dir.name}/{files.sim_name}",
                           wait_seconds=SIM_LOCK_WAIT_SECONDS):
                files.remove_leftovers(SIM_STEPS)
                for step in SIM_STEPS:
                    self._run_step(step, production, files, result, log)
                files.remove_leftovers(SIM_STEPS)
            for step in PROCESSING_STEPS:
                self._run_step(step, production, files, result, log)
            files.remove_leftovers(PROCESSING_STEPS)
        except Exception as error:  # noqa: BLE001 - every failure is classified and recorded
            failure = classify(error)
            result.status = "failed"
            result.error = {"production": production.id, "step": result.steps_run[-1] if result.steps_run else None,
                            "error_class": failure.kind, "exit_code": failure.exit_code, "message": str(failure)}
            log.error("%s failed in %s: %s\n%s", production.id, result.error["step"], failure,
                      traceback.format_exc())
            self.echo(f"  {production.id}: FAILED in {result.error['step']} ({failure.kind}): {failure}")
        finally:
            self._processed_by_simulation = None
            for handler in list(log.handlers):
                engine_log.removeHandler(handler)
                handler.close()
                log.removeHandler(handler)
        return result

    def _identity(self, step: str, production: Production) -> dict:
        identity = {"step": step, "seed": production.seed, "sim_key": self.variant.sim_key,
                    "engine_version": self.engine.version()}
        if step in SIM_STEPS:
            return {**identity, "production": production.sim_name}
        return {**identity, "production": production.id, "proc_key": self.variant.key}

    def _io(self, step: str, files: ProductionFiles, record: Optional[dict]) -> tuple[list[Path], list[Path]]:
        """The files ``step`` reads and writes; a kept raw file counts wherever it exists or is wanted."""
        raw_kept = self.keep_raw or bool(record and record.get("raw_kept"))
        if step == "instructions":
            return [], [files.instructions]
        if step == "simulation":
            return [files.instructions], [files.truth] + ([files.raw] if raw_kept else [])
        if step == "sort_truth":
            return [files.instructions, files.truth], [files.truth_sorted]
        if step == "processing":  # the truth names the simulation; a kept raw file is checked by its record
            return [files.truth], [files.processed]
        if step == "minitrees":
            return [files.processed], [files.minitrees]
        return [files.minitrees, files.truth_sorted], [files.merged]

    def _run_step(self, step: str, production: Production, files: ProductionFiles, result: ProductionResult,
                  log: logging.Logger) -> None:
        identity = self._identity(step, production)
        record_path = files.done_record(step)
        record = read_record(record_path)
        if not self.force and self._is_done(step, production, files, record):
            result.steps_skipped.append(step)
            result.events = record.get("events_out", result.events)
            return
        truth_recorded = self._truth_without_raw(step, files, record, identity)
        process_too = not (truth_recorded and self._is_done("processing", production, files))
        inputs, outputs = self._io(step, files, None)
        result.steps_run.append(step)
        record_path.unlink(missing_ok=True)
        staging = files.staging(step)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        staged = [staging / path.name for path in outputs]
        log.info("%s: %s started (seed %d)", production.id, step, production.seed)
        started, cpu_started = time.perf_counter(), time.process_time()
        if files.fault_marker(step).exists():
            raise EngineError(f"injected failure ({files.fault_marker(step)} exists)")
        counts, extra = self._execute(step, production, files, staged, process_too)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if truth_recorded and sha256(staged[0]) != truth_recorded:
            raise ValidationFailure(f"{production.id}: simulating again to keep its raw data gave another truth than "
                                    f"{files.truth} (sha256 {truth_recorded}); re-run with --force")
        if counts.events_out != counts.events_in:
            raise ValidationFailure(f"{step}: {counts.events_in} events in, {counts.events_out} out")
        for staged_path, final in zip(staged, outputs):
            publish(staged_path, final)
        shutil.rmtree(staging, ignore_errors=True)
        write_json_atomic(record_path, {
            **identity, **extra, **_where(), "faxflow_version": __version__, "engine": self.engine.name,
            "inputs": file_hashes(inputs), "outputs": file_hashes(outputs),
            "events_in": counts.events_in, "events_out": counts.events_out,
            "wall_seconds": round(wall, 4), "cpu_seconds": round(cpu, 4), "finished_at": _now(),
        })
        result.events = counts.events_out
        log.info("%s: %s done, %d events, %.2f s", production.id, step, counts.events_out, wall)

    def _is_done(self, step: str, production: Production, files: ProductionFiles,
                 record: Optional[dict] = None) -> bool:
        record = record or read_record(files.done_record(step))
        inputs, outputs = self._io(step, files, record)
        return record_is_valid(record, inputs, outputs, self._identity(step, production))

    def _truth_without_raw(self, step: str, files: ProductionFiles, record: Optional[dict],
                           identity: dict) -> Optional[str]:
        """The truth sha256 of a valid simulation that dropped its raw data, if this variant keeps them:
        it simulates again only for the raw data, and the truth (which others' outputs depend on) must
        come out the same."""
        if step != "simulation" or not self.keep_raw or (record or {}).get("raw_kept"):
            return None
        if not record_is_valid(record, [files.instructions], [files.truth], identity):
            return None
        return record["outputs"][files.truth.name]

    def _execute(self, step: str, production: Production, files: ProductionFiles, staged: list[Path],
                 process_too: bool) -> tuple[StepCounts, dict]:
        """Run ``step`` into its ``staged`` outputs: (event counts, what its done record adds).

        A simulation that can drop raw data also processes its batches as it makes them, unless
        ``process_too`` is false (it runs again only to keep the raw data of a processed production)."""
        seed = step_seed(production.seed, step)
        if step == "instructions":
            from faxflow.instructions import make_instructions, write_instructions

            frame = make_instructions(self.settings, production.n_events, production.index,
                                      np.random.default_rng(seed), Path(self.plan.campaign_path).parent)
            write_instructions(frame, staged[0])
            rows_dropped = int(frame.attrs.get("rows_dropped", 0))
            if rows_dropped:
                self.echo(f"  {production.id}: {rows_dropped} table row(s) outside the volume dropped")
            events = int(frame["instruction"].nunique())
            return StepCounts(events_in=events, events_out=events), {"rows_dropped": rows_dropped}
        if step == "simulation":
            kept = {"raw_kept": self.keep_raw}
            if not self.engine.can_drop_raw:
                return self.engine.simulate(files.instructions, staged[0], staged[1], seed=seed), kept
            batches = self.engine.simulation_batches(files.instructions, staged[0], seed=seed,
                                                     raw_out=staged[1] if self.keep_raw else None)
            if not process_too:
                for _ in batches:
                    pass
                return batches.counts(), kept
            processed = files.staging("processing").parent / "from-simulation" / files.processed.name
            processed.parent.mkdir(parents=True, exist_ok=True)
            self._processed_by_simulation = processed, self.engine.process_batches(batches, processed)
            return batches.counts(), kept
        if step == "processing":
            fused, self._processed_by_simulation = self._processed_by_simulation, None
            # where its CPU time is recorded: a fused chain's processing ran inside the simulation
            if fused is not None:
                os.replace(fused[0], staged[0])
                return fused[1], {"processed_in": "simulation"}
            if self.keep_raw or self._raw_file_recorded(files):
                counts = self.engine.process(files.raw, staged[0])
            else:
                counts = self.process_regenerated(production, files, staged[0])
            return counts, {"processed_in": "processing"}
        if step == "sort_truth":
            from faxflow.truth import sort_truth_file

            return sort_truth_file(files.truth, _count_events(files.instructions), staged[0]), {}
        if step == "minitrees":
            return self.engine.minitrees(files.processed, staged[0]), {}
        from faxflow.truth import merge_truth_files

        return merge_truth_files(files.minitrees, files.truth_sorted, staged[0]), {}

    def _raw_file_recorded(self, files: ProductionFiles) -> bool:
        """True if a variant that keeps raw data left this production's raw file (checked when sim ran)."""
        record = read_record(files.done_record("simulation")) or {}
        return files.raw.name in record.get("outputs", {}) and sha256(files.raw) == record["outputs"][files.raw.name]

    def process_regenerated(self, production: Production, files: ProductionFiles, processed_out: Path) -> StepCounts:
        """Simulate ``production`` again, processing it batch by batch into ``processed_out``; refuse
        (before anything is published) if its truth differs from the recorded one."""
        record = read_record(files.done_record("simulation")) or {}
        expected = record.get("outputs", {}).get(files.truth.name)
        with tempfile.TemporaryDirectory(dir=files.staging("processing").parent) as scratch:
            truth = Path(scratch) / files.truth.name
            batches = self.engine.simulation_batches(files.instructions, truth,
                                                     seed=step_seed(production.seed, "simulation"))
            counts = self.engine.process_batches(batches, processed_out)
            if expected is None or sha256(truth) != expected:
                raise ValidationFailure(f"{production.id}: regenerated simulation does not reproduce the recorded "
                                        f"truth {files.truth} (sha256 {expected}); re-run with --force")
        return counts


def _count_events(instructions_csv: Path) -> int:
    import pandas as pd

    column = pd.read_csv(instructions_csv, usecols=["instruction"])["instruction"]
    return int(column.ne(column.shift()).sum())


def _production_logger(path: Path) -> logging.Logger:
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"faxflow.production.{path.stem}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def group_lock(variant_dir: Path, group_index: int) -> Path:
    return variant_dir / "locks" / f"g{group_index:06d}.lock"


def run_group(plan: Plan, group_index: int, output_root: Optional[Path] = None, *, force: bool = False,
              echo: Callable[[str], None] = print,
              on_production: Callable[[ProductionResult], None] = lambda result: None) -> dict:
    """Run one group's productions one after another; return (and store) its summary.

    Raises :class:`faxflow.locks.OutputLockedError` at once if another process runs this group.
    """
    group = plan.group(group_index)
    variant = plan.variant(group.variant)
    root = Path(output_root or plan.output_root)
    for name in ("output_dir", "sim_dir"):
        check_inside(root, getattr(variant, name), f"group {group.index}", name)
    runner = ProductionRunner(plan, variant, root, force=force, echo=echo)
    with exclusive(group_lock(runner.variant_dir, group.index), f"group {group.index} ({group.job_name})"):
        prepare = getattr(runner.engine, "prepare", None)  # picks and reports the kernel cache
        if prepare:
            prepare(root, echo)
        return _run_locked(plan, group, variant, runner, echo, on_production)


def _run_locked(plan, group, variant, runner, echo, on_production) -> dict:
    started_at, started = _now(), time.perf_counter()
    productions = {p.id: p for p in variant.productions}
    echo(f"group {group.index} ({group.job_name}): {len(group.production_ids)} production(s) of {variant.name}")
    results, events = [], 0
    for done, production_id in enumerate(group.production_ids, start=1):
        began = time.perf_counter()
        result = runner.run(productions[production_id])
        results.append(result)
        on_production(result)
        events += result.events or 0
        if result.status == "ok":
            echo(f"  {production_id}: ok, {result.events} events, {len(result.steps_run)} steps run, "
                 f"{len(result.steps_skipped)} reused, {time.perf_counter() - began:.2f} s")
        elapsed = time.perf_counter() - started
        echo(progress_line(group.index, done, len(group.production_ids), sum(r.status != "ok" for r in results),
                           events, elapsed))
    failures = [r.error for r in results if r.error]
    summary = {"group": group.index, "job_name": group.job_name, "variant": variant.name,
               "exit_code": _group_exit_code(failures), "failures": failures,
               "productions": [r.__dict__ for r in results], **_where(),
               "started_at": started_at, "finished_at": _now()}
    write_json_atomic(runner.variant_dir / "groups" / f"g{group.index:04d}.json", summary)
    return summary


PROGRESS_PREFIX = "FAXFLOW_PROGRESS "


def progress_line(group: int, done: int, total: int, failed: int, events: int, elapsed: float) -> str:
    rate = events / elapsed if elapsed > 0 else 0.0
    eta = elapsed / done * (total - done) if done else None
    return PROGRESS_PREFIX + json.dumps({"group": group, "done": done, "total": total, "failed": failed,
                                         "events": events, "events_per_s": round(rate, 2),
                                         "eta_s": None if eta is None else round(eta, 1)}, sort_keys=True)


def _group_exit_code(failures: list[dict]) -> int:
    """0 if all passed; a retryable class wins so that a retry reruns what can still succeed."""
    if not failures:
        return 0
    retryable = [f for f in failures if f["error_class"] in RETRYABLE_KINDS]
    return (retryable or failures)[0]["exit_code"]


def failed_summary(plan: Plan, group_index: int, error) -> dict:
    """The summary of a group that could not start (its lock is held, its outputs cannot be written…)."""
    failure = classify(error)
    return {"group": group_index, "job_name": plan.group(group_index).job_name,
            "variant": plan.group(group_index).variant, "exit_code": failure.exit_code,
            "failures": [{"production": None, "step": None, "error_class": failure.kind,
                          "exit_code": failure.exit_code, "message": str(failure)}]}


def summary_line(summary: dict) -> str:
    return "FAXFLOW_SUMMARY " + json.dumps({k: summary[k] for k in ("group", "job_name", "variant", "exit_code",
                                                                     "failures")}, sort_keys=True)


def regenerate_raw_file(plan: Plan, production_id: str, output: Optional[Path] = None,
                        output_root: Optional[Path] = None) -> Path:
    """Write the raw data of ``production_id`` again (same seed: byte-identical); return its path."""
    variant = next((v for v in plan.variants if any(p.id == production_id for p in v.productions)), None)
    if variant is None:
        raise BadInputError(f"no production {production_id!r} in this manifest (e.g. "
                            f"{', '.join(p.id for v in plan.variants for p in v.productions[:3])})")
    production = next(p for p in variant.productions if p.id == production_id)
    runner = ProductionRunner(plan, variant, Path(output_root or plan.output_root), echo=lambda line: None)
    files = runner.files(production)
    instructions = read_record(files.done_record("instructions"))
    if not record_is_valid(instructions, [], [files.instructions], runner._identity("instructions", production)):
        raise BadInputError(f"{production_id}: its instructions {files.instructions} are missing or do not match "
                            "their done record; run the production first")
    target = Path(output or Path.cwd() / files.raw.name)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as scratch:
        truth, raw = Path(scratch) / files.truth.name, Path(scratch) / target.name
        runner.engine.simulate(files.instructions, truth, raw, seed=step_seed(production.seed, "simulation"))
        expected = (read_record(files.done_record("simulation")) or {}).get("outputs", {}).get(files.truth.name)
        if expected is not None and sha256(truth) != expected:
            raise ValidationFailure(f"{production_id}: the regenerated truth differs from {files.truth} "
                                    f"(sha256 {expected}); the software or the settings changed")
        publish(raw, target)
    return target
