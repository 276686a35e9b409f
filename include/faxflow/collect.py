"""Collect a variant: verify every production's merged table and join them into one dataset."""

import os
import tempfile
from pathlib import Path
from typing import Optional

from faxflow.errors import ValidationFailure
from faxflow.manifest import check_inside
from faxflow.pipeline import ProductionFiles
from faxflow.plan import Plan
from faxflow.records import read_record, record_is_valid, write_json_atomic


def collect_variant(plan: Plan, variant_name: str, output_root: Optional[Path] = None,
                    min_success_fraction: float = 1.0) -> dict:
    """Merge ``variant_name``'s per-production tables into ``<variant dir>/merged.parquet``.

    Writes ``summary.json`` next to it and raises :class:`ValidationFailure` when fewer than
    ``min_success_fraction`` of the productions delivered all their events.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    variant = plan.variant(variant_name)
    root = Path(output_root or plan.output_root)
    for name in ("output_dir", "sim_dir"):
        check_inside(root, getattr(variant, name), f"variant {variant.name}", name)
    variant_dir, sim_dir = root / variant.output_dir, root / variant.sim_dir
    tables, productions = [], []
    for production in variant.productions:
        files = ProductionFiles(variant_dir, sim_dir, production.id, production.sim_name, variant.settings["engine"])
        record = read_record(files.done_record("merge"))
        complete = record is not None and record_is_valid(
            record, [files.minitrees, files.truth_sorted], [files.merged],
            {"production": production.id, "seed": production.seed, "proc_key": variant.key,
             "sim_key": variant.sim_key})
        events_out = 0
        if complete:
            table = pd.read_parquet(files.merged)
            events_out = len(table)
            table.insert(0, "production", production.id)
            tables.append(table)
        productions.append({"id": production.id, "events_in": production.n_events, "events_out": events_out,
                            "complete": complete and events_out == production.n_events})

    ok = [p for p in productions if p["complete"]]
    merged_path = variant_dir / "merged.parquet"
    if tables:
        frame = pd.concat(tables, ignore_index=True)
        with tempfile.NamedTemporaryFile(dir=variant_dir, prefix=".merged.", suffix=".parquet", delete=False) as tmp:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp.name)
        os.replace(tmp.name, merged_path)
    summary = {
        "campaign": plan.campaign, "run_id": plan.run_id, "variant": variant.name, "key": variant.key,
        "sim_key": variant.sim_key, "sim_dir": str(sim_dir),
        "productions": len(productions), "productions_ok": len(ok),
        "failed": [p["id"] for p in productions if not p["complete"]],
        "events_in": sum(p["events_in"] for p in productions),
        "events_out": sum(p["events_out"] for p in productions),
        "merged": str(merged_path) if tables else None,
        "per_production": productions,
    }
    write_json_atomic(variant_dir / "summary.json", summary)
    if len(ok) < min_success_fraction * len(productions):
        raise ValidationFailure(f"variant {variant.name}: {len(ok)} of {len(productions)} productions complete "
                                f"(required fraction {min_success_fraction}); missing: {', '.join(summary['failed'])}")
    return summary
