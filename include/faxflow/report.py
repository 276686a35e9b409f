"""A short physics QA report for a campaign run: one table per variant and comparison plots."""

from pathlib import Path
from typing import Optional

from faxflow.plan import Plan, run_tag

#: (reconstructed column, truth column, label) pairs compared in the report.
COMPARISONS = (("s1", "truth_s1", "S1 [PE] vs truth photons"), ("s2", "truth_s2", "S2 [PE] vs truth photons"))


def write_report(plan: Plan, output_root: Optional[Path] = None) -> Path:
    """Write ``<root>/<campaign>/report-<run>.md`` (+ a PNG) from the collected variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    root = Path(output_root or plan.output_root)
    campaign_dir = root / plan.campaign
    campaign_dir.mkdir(parents=True, exist_ok=True)
    tag = run_tag(plan.run_id)
    lines = [f"# Campaign {plan.campaign}", "", f"run `{plan.run_id}`, faxflow {plan.faxflow_version}", "",
             "| variant | productions ok | events | with S1+S2 | mean s1 [PE] | mean s2 [PE] | s2/truth_s2 | "
             "median S2 50% width [ns] | merged table |",
             "|---|---|---|---|---|---|---|---|---|"]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for variant in plan.variants:
        merged = root / variant.output_dir / "merged.parquet"
        if not merged.exists():
            lines.append(f"| {variant.name} | 0 / {len(variant.productions)} | 0 | | | | | | not collected |")
            continue
        frame = pd.read_parquet(merged)
        has_interaction = frame["s2"].notna() & frame["s1"].notna()
        ratio = (frame["s2"] / frame["truth_s2"]).replace([np.inf, -np.inf], np.nan)
        lines.append(f"| {variant.name} | {frame['production'].nunique()} / {len(variant.productions)} | {len(frame)} "
                     f"| {has_interaction.mean():.3f} | {frame['s1'].mean():.1f} | {frame['s2'].mean():.1f} "
                     f"| {ratio.median():.3f} | {frame['s2_range_50p_area'].median():.0f} | `{merged}` |")
        axes[0].scatter(frame["drift_time"] / 1e3, frame["s2_range_50p_area"], s=3, label=variant.name)
        for axis, (column, truth, label) in zip(axes[1:], COMPARISONS):
            axis.scatter(frame[truth], frame[column], s=3, label=variant.name)
            axis.set(xlabel=truth, ylabel=column, title=label)
    axes[0].set(xlabel="drift time [µs]", ylabel="S2 50% width [ns]", title="S2 width vs drift time")
    for axis in axes:
        axis.legend(fontsize=7)
    figure.tight_layout()
    png = campaign_dir / f"report-{tag}.png"
    figure.savefig(png, dpi=80)
    plt.close(figure)
    lines += ["", f"![comparison plots]({png.name})", ""]
    report = campaign_dir / f"report-{tag}.md"
    report.write_text("\n".join(lines))
    return report
