"""``faxflow run``: every group of a campaign on this machine, in parallel, with live progress.

Workers die with the run: each asks the kernel for SIGKILL when its parent dies (Linux
``PR_SET_PDEATHSIG``), and SIGTERM of the run stops them like Ctrl-C does. A second run of the same
campaign stops at once, naming the process that holds a group (``docs/reliability.md``).
"""

import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from faxflow.collect import collect_variant
from faxflow.errors import FaxflowError
from faxflow.locks import exclusive
from faxflow.manifest import load_slice, write_manifest
from faxflow.pipeline import PROGRESS_PREFIX, failed_summary, group_lock, run_group
from faxflow.plan import Plan
from faxflow.report import write_report

_events: "multiprocessing.Queue | None" = None


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _init_worker(events: "multiprocessing.Queue", parent: int) -> None:
    # Ctrl-C is handled by the parent, which terminates the workers; a step killed that way
    # leaves only its staging directory behind, never a done record.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    global _events
    _events = events


def _group_worker(manifest: str, digest: str, group_index: int, output_root: str, force: bool) -> dict:
    plan = load_slice(manifest, digest)
    try:
        return run_group(plan, group_index, Path(output_root), force=force,
                         echo=lambda line: _events.put(("line", line)),
                         on_production=lambda result: _events.put(("production", result.status,
                                                                   result.events or 0)))
    except FaxflowError as error:
        _events.put(("line", f"group {group_index}: {error.kind} error: {error}"))
        return failed_summary(plan, group_index, error)


def _refuse_if_running(plan: Plan, root: Path) -> None:
    """Raise naming the holder if another process runs any group of ``plan``."""
    for group in plan.groups:
        variant_dir = root / plan.variant(group.variant).output_dir
        with exclusive(group_lock(variant_dir, group.index), f"group {group.index} ({group.job_name})"):
            pass


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_local(plan: Plan, *, jobs: int, force: bool = False, console: Console | None = None) -> int:
    """Run ``plan`` with ``jobs`` worker processes; collect, report and return an exit code."""
    console = console or Console()
    root = Path(plan.output_root)
    _refuse_if_running(plan, root)
    manifest = write_manifest(plan, root / plan.campaign / "manifests")
    console.print(f"manifest [bold]{manifest.index_path}[/] (sha256 {manifest.index_digest})")
    total = sum(len(group.production_ids) for group in plan.groups)
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    failed, events_done = 0, 0
    started = time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("failed {task.fields[failed]}  {task.fields[rate]:.0f} events/s"), TimeRemainingColumn())
    # Workers inherit an ignored SIGINT across exec, so a Ctrl-C while they start up reaches the parent only.
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pool = context.Pool(min(jobs, len(plan.groups)) or 1, initializer=_init_worker,
                            initargs=(events, os.getpid()))
    finally:
        signal.signal(signal.SIGINT, previous_int)
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("productions", total=total, failed=0, rate=0.0)
            pending = [pool.apply_async(_group_worker, (str(manifest.slices[group.index][0]),
                                                        manifest.slices[group.index][1], group.index, str(root),
                                                        force))
                       for group in plan.groups]
            while True:
                finished = all(result.ready() for result in pending)
                try:
                    message = events.get(timeout=0.2)
                except queue.Empty:
                    if finished:
                        break
                    continue
                if message[0] == "line":
                    if not message[1].startswith(PROGRESS_PREFIX):
                        progress.console.print(message[1], highlight=False)
                    continue
                failed += message[1] != "ok"
                events_done += message[2]
                progress.update(task, advance=1, failed=failed,
                                rate=events_done / max(time.perf_counter() - started, 1e-9))
            summaries = [result.get() for result in pending]
    except KeyboardInterrupt:
        pool.terminate()
        console.print("[yellow]Interrupted.[/] Finished steps are kept; run the same command again to resume.")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        pool.terminate()
        pool.join()

    table = Table(title=f"campaign {plan.campaign} ({time.perf_counter() - started:.1f} s)")
    for column in ("variant", "productions ok", "events out / in"):
        table.add_column(column)
    merged = []
    for variant in plan.variants:
        summary = collect_variant(plan, variant.name, root, min_success_fraction=0.0)
        table.add_row(variant.name, f"{summary['productions_ok']} / {summary['productions']}",
                      f"{summary['events_out']} / {summary['events_in']}")
        merged.append(summary["merged"])
    console.print(table)
    for path in filter(None, merged):
        console.print(f"merged table: {path}", highlight=False, soft_wrap=True)
    console.print(f"report: {write_report(plan, root)}", highlight=False, soft_wrap=True)
    codes = [summary["exit_code"] for summary in summaries if summary["exit_code"]]
    if codes:
        console.print(f"[red]{failed} production(s) failed[/]; logs in <variant dir>/logs/, "
                      "summaries in <variant dir>/groups/. Re-run to retry only what failed.")
    return codes[0] if codes else 0
