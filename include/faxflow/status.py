"""``faxflow status``: a campaign's progress per variant, from its catalog, locally or on the cluster.

For a remote campaign one command fetches every done record and group summary at once
(:func:`records_command`, parsed by :func:`parse_records`) over the caller's SSH connection; the
catalog is then built from that snapshot exactly as from local files.

CPU-hours used are the catalog's sum. Remaining CPU-hours divide the events still to do by the
measured events per CPU-second of the finished productions (the plan's estimate before any
finished). The ETA divides them by the measured wall-clock throughput since the first step started.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Optional

import pandas as pd

from faxflow.catalog import STATES, build_catalog
from faxflow.plan import EVENTS_PER_CPU_SECOND, Plan, format_duration
from faxflow.slurm import commands

#: Header ``tail -v`` prints before each file.
_HEADER_START, _HEADER_END = "==> ", " <=="


def records_command(plan: Plan, root: str) -> str:
    """One shell command printing every done record and group summary of ``plan`` under ``root``."""
    relative = dict.fromkeys(d for variant in plan.variants for d in (variant.sim_dir, variant.output_dir))
    directories = [commands.check_path(f"{root.rstrip('/')}/{directory}") for directory in relative]
    quoted = " ".join(shlex.quote(directory) for directory in directories)
    return (f"find {quoted} -type f -name '*.json' \\( -path '*/done/*' -o -path '*/groups/*' \\) "
            f"-exec tail -v -n +1 {{}} + 2>/dev/null; true")


def parse_records(output: str) -> dict[str, dict]:
    """``tail -v`` output → path → parsed JSON (files that do not parse are left out, as if absent)."""
    records, path, lines = {}, None, []

    def flush():
        if path is not None:
            try:
                records[path] = json.loads("\n".join(lines))
            except ValueError:
                pass

    for line in output.splitlines():
        if line.startswith(_HEADER_START) and line.endswith(_HEADER_END):
            flush()
            path, lines = line[len(_HEADER_START):-len(_HEADER_END)], []
        elif path is not None:
            lines.append(line)
    flush()
    return records


class SnapshotRecords:
    """Records from one remote listing (a path absent from it is a record not written yet)."""

    def __init__(self, records: dict[str, dict]):
        self.records = records

    def json(self, path: Path) -> Optional[dict]:
        return self.records.get(str(path))


def remote_catalog(plan: Plan, client, root: Optional[str] = None) -> pd.DataFrame:
    """The catalog of a campaign on the cluster, with one remote command on ``client``."""
    root = root or plan.output_root
    result = client.run(records_command(plan, root))
    return build_catalog(plan, Path(root), SnapshotRecords(parse_records(result.stdout)))


def summarise(plan: Plan, catalog: pd.DataFrame, now: Optional[float] = None) -> list[dict]:
    """One row per variant plus a ``total`` row: states, events, CPU-hours used/remaining, ETA."""
    now = time.time() if now is None else now
    rows = []
    for name, frame in [*((v.name, catalog[catalog["variant"] == v.name]) for v in plan.variants), ("total", catalog)]:
        done = frame[frame["status"] == "done"]
        events_done = int(done["events_out"].fillna(0).sum())
        events_left = int(frame.loc[frame["status"] != "done", "events_planned"].sum())
        cpu_done = float(done["cpu_seconds"].sum())
        if events_done and cpu_done > 0:
            per_cpu_second, measured = events_done / cpu_done, True
        else:
            engines = {plan.variant(v).settings["engine"] for v in frame["variant"].unique()}
            per_cpu_second, measured = min(EVENTS_PER_CPU_SECOND[e] for e in engines or {"builtin"}), False
        started = frame["started_at"].dropna()
        elapsed = now - float(started.min()) if len(started) else 0.0
        wall_rate = events_done / elapsed if events_done and elapsed > 0 else None
        rows.append({"variant": name, **{state: int((frame["status"] == state).sum()) for state in STATES},
                     "events_done": events_done, "events_planned": int(frame["events_planned"].sum()),
                     "cpu_hours_used": float(frame["cpu_seconds"].sum()) / 3600,
                     "cpu_hours_left": events_left / per_cpu_second / 3600, "throughput_measured": measured,
                     "events_per_s": wall_rate,
                     "eta_s": (events_left / wall_rate if wall_rate else None) if events_left else 0.0})
    return rows


def format_status(rows: list[dict]) -> str:
    header = ["variant", *STATES, "events", "CPU used", "CPU left", "ETA"]
    table = [header]
    for row in rows:
        eta = row["eta_s"]
        table.append([row["variant"], *(str(row[s]) for s in STATES), f"{row['events_done']}/{row['events_planned']}",
                      format_duration(row["cpu_hours_used"] * 3600),
                      format_duration(row["cpu_hours_left"] * 3600) + ("" if row["throughput_measured"] else " (est.)"),
                      "-" if eta is None else format_duration(eta)])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
             for line in table]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(-1, lines[1])
    return "\n".join(lines)
