"""The per-production pipeline and the group runner behind ``faxflow job``.

Per production, in order: instructions → simulation → processing → sort_truth → minitrees →
merge. Each step writes to a staging directory, renames its outputs into place on success and
then writes a done record (:mod:`faxflow.records`). A failing production does not stop its
group; the group's exit code names the failure class (:mod:`faxflow.errors`).
"""

import json
import logging
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from faxflow import __version__
from faxflow.engines import StepCounts, get_engine
from faxflow.errors import RETRYABLE_KINDS, EngineError, ValidationFailure, classify
from faxflow.plan import Plan, PlannedVariant, Production
from faxflow.records import file_hashes, publish, read_record, record_is_valid, write_json_atomic

STEPS = ("instructions", "simulation", "processing", "sort_truth", "minitrees", "merge")


@dataclass(frozen=True)
class ProductionFiles:
    """Every path of one production, under its variant's output directory."""

    variant_dir: Path
    production_id: str
    engine: str

    def _in(self, folder: str, suffix: str) -> Path:
        return self.variant_dir / folder / f"{self.production_id}{suffix}"

    @property
    def instructions(self) -> Path:
        return self._in("instructions", ".csv")

    @property
    def truth(self) -> Path:
        return self._in("truth_raw", ".csv")

    @property
    def raw(self) -> Path:
        return self._in("raw", ".npz" if self.engine == "builtin" else "")

    @property
    def processed(self) -> Path:
        return self._in("processed", ".parquet" if self.engine == "builtin" else ".root")

    @property
    def truth_sorted(self) -> Path:
        return self._in("truth_sorted", ".parquet")

    @property
    def minitrees(self) -> Path:
        return self._in("minitrees", ".parquet")

    @property
    def merged(self) -> Path:
        return self._in("merged", ".parquet")

    @property
    def log(self) -> Path:
        return self._in("logs", ".log")

    def done_record(self, step: str) -> Path:
        return self.variant_dir / "done" / self.production_id / f"{step}.json"

    def staging(self, step: str) -> Path:
        return self.variant_dir / ".staging" / self.production_id / step

    def fault_marker(self, step: str) -> Path:
        """Test hook: if this file exists, ``step`` fails with an engine error (fault injection)."""
        return self.variant_dir / "faults" / f"{self.production_id}.{step}"


@dataclass
class StepSpec:
    name: str
    inputs: Callable[[ProductionFiles], list[Path]]
    outputs: Callable[[ProductionFiles], list[Path]]


STEP_SPECS = {
    "instructions": StepSpec("instructions", lambda f: [], lambda f: [f.instructions]),
    "simulation": StepSpec("simulation", lambda f: [f.instructions], lambda f: [f.truth, f.raw]),
    "processing": StepSpec("processing", lambda f: [f.raw], lambda f: [f.processed]),
    "sort_truth": StepSpec("sort_truth", lambda f: [f.instructions, f.truth], lambda f: [f.truth_sorted]),
    "minitrees": StepSpec("minitrees", lambda f: [f.processed], lambda f: [f.minitrees]),
    "merge": StepSpec("merge", lambda f: [f.minitrees, f.truth_sorted], lambda f: [f.merged]),
}


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
        self.settings = variant.settings
        self.engine = get_engine(self.settings["engine"], self.settings)
        self.force = force
        self.echo = echo

    def run(self, production: Production) -> ProductionResult:
        files = ProductionFiles(self.variant_dir, production.id, self.settings["engine"])
        result = ProductionResult(production.id)
        log = _production_logger(files.log)
        try:
            for step in STEPS:
                self._run_step(step, production, files, result, log)
        except Exception as error:  # noqa: BLE001 - every failure is classified and recorded
            failure = classify(error)
            result.status = "failed"
            result.error = {"production": production.id, "step": result.steps_run[-1] if result.steps_run else None,
                            "error_class": failure.kind, "exit_code": failure.exit_code, "message": str(failure)}
            log.error("%s failed in %s: %s\n%s", production.id, result.error["step"], failure,
                      traceback.format_exc())
            self.echo(f"  {production.id}: FAILED in {result.error['step']} ({failure.kind}): {failure}")
        finally:
            for handler in list(log.handlers):
                handler.close()
                log.removeHandler(handler)
        return result

    def _run_step(self, step: str, production: Production, files: ProductionFiles, result: ProductionResult,
                  log: logging.Logger) -> None:
        spec = STEP_SPECS[step]
        inputs, outputs = spec.inputs(files), spec.outputs(files)
        identity = {"step": step, "production": production.id, "seed": production.seed,
                    "variant_key": self.variant.key, "engine_version": self.engine.version()}
        record_path = files.done_record(step)
        if not self.force and record_is_valid(read_record(record_path), inputs, outputs, identity):
            result.steps_skipped.append(step)
            result.events = read_record(record_path).get("events_out", result.events)
            return
        result.steps_run.append(step)
        record_path.unlink(missing_ok=True)
        staging = files.staging(step)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        staged = [staging / path.name for path in outputs]
        log.info("%s: %s started (seed %d)", production.id, step, production.seed)
        started = time.perf_counter()
        if files.fault_marker(step).exists():
            raise EngineError(f"injected failure ({files.fault_marker(step)} exists)")
        counts = self._execute(step, production, files, staged)
        wall = time.perf_counter() - started
        if counts.events_out != counts.events_in:
            raise ValidationFailure(f"{step}: {counts.events_in} events in, {counts.events_out} out")
        for staged_path, final in zip(staged, outputs):
            publish(staged_path, final)
        shutil.rmtree(staging, ignore_errors=True)
        write_json_atomic(record_path, {
            **identity, "faxflow_version": __version__, "engine": self.engine.name,
            "inputs": file_hashes(inputs), "outputs": file_hashes(outputs),
            "events_in": counts.events_in, "events_out": counts.events_out,
            "wall_seconds": round(wall, 4), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        result.events = counts.events_out
        log.info("%s: %s done, %d events, %.2f s", production.id, step, counts.events_out, wall)

    def _execute(self, step: str, production: Production, files: ProductionFiles, staged: list[Path]) -> StepCounts:
        seed = step_seed(production.seed, step)
        if step == "instructions":
            from faxflow.instructions import make_instructions, write_instructions

            frame = make_instructions(self.settings, production.n_events, production.index,
                                      np.random.default_rng(seed), Path(self.plan.campaign_path).parent)
            write_instructions(frame, staged[0])
            return StepCounts(events_in=int(frame["instruction"].nunique()), events_out=int(frame["instruction"].nunique()))
        if step == "simulation":
            return self.engine.simulate(files.instructions, staged[0], staged[1], seed=seed)
        if step == "processing":
            return self.engine.process(files.raw, staged[0])
        if step == "sort_truth":
            from faxflow.truth import sort_truth_file

            return sort_truth_file(files.truth, _count_events(files.instructions), staged[0])
        if step == "minitrees":
            return self.engine.minitrees(files.processed, staged[0])
        from faxflow.truth import merge_truth_files

        return merge_truth_files(files.minitrees, files.truth_sorted, staged[0])


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


def run_group(plan: Plan, group_index: int, output_root: Optional[Path] = None, *, force: bool = False,
              echo: Callable[[str], None] = print,
              on_production: Callable[[ProductionResult], None] = lambda result: None) -> dict:
    """Run one group's productions one after another; return (and store) its summary."""
    group = plan.group(group_index)
    variant = plan.variant(group.variant)
    root = Path(output_root or plan.output_root)
    runner = ProductionRunner(plan, variant, root, force=force, echo=echo)
    productions = {p.id: p for p in variant.productions}
    echo(f"group {group.index} ({group.job_name}): {len(group.production_ids)} production(s) of {variant.name}")
    results = []
    for production_id in group.production_ids:
        started = time.perf_counter()
        result = runner.run(productions[production_id])
        results.append(result)
        on_production(result)
        if result.status == "ok":
            echo(f"  {production_id}: ok, {result.events} events, {len(result.steps_run)} steps run, "
                 f"{len(result.steps_skipped)} reused, {time.perf_counter() - started:.2f} s")
    failures = [r.error for r in results if r.error]
    summary = {"group": group.index, "job_name": group.job_name, "variant": variant.name,
               "exit_code": _group_exit_code(failures), "failures": failures,
               "productions": [r.__dict__ for r in results]}
    write_json_atomic(root / variant.output_dir / "groups" / f"g{group.index:04d}.json", summary)
    return summary


def _group_exit_code(failures: list[dict]) -> int:
    """0 if all passed; a retryable class wins so that a retry reruns what can still succeed."""
    if not failures:
        return 0
    retryable = [f for f in failures if f["error_class"] in RETRYABLE_KINDS]
    return (retryable or failures)[0]["exit_code"]


def summary_line(summary: dict) -> str:
    return "FAXFLOW_SUMMARY " + json.dumps({k: summary[k] for k in ("group", "job_name", "variant", "exit_code",
                                                                     "failures")}, sort_keys=True)
