"""The campaign report: one self-contained HTML page per run that answers the campaign's question.

``write_report`` builds the catalog (:mod:`faxflow.catalog`), fits every variant (:mod:`faxflow.fits`)
and writes, next to each other under ``<root>/<campaign>/``:

* ``report-<tag>.html``: question, fit table, sweep plots, throughput, CPU-hours, failures and the
  per-variant diagnostic plots, every image inline (base64 PNG), so it opens without a network;
* ``catalog-<tag>.parquet``: the catalog;
* ``report-<tag>.json``: the fit table and run totals (CPU-hours = the catalog's sum).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from faxflow.catalog import (
    EXIT_STATE_SOURCES,
    STATES,
    build_catalog,
    event_table,
    scheduler_exit_states,
    swept_parameters,
    write_catalog,
)
from faxflow.fits import (
    QUANTITIES,
    FitResult,
    drift_time_edges,
    efficiency_curve,
    fit_variant,
    missing_columns,
    position_columns,
    s2_sigma,
    s2_sigma_column,
)
from faxflow.plan import Plan, run_tag
from faxflow.records import write_json_atomic

#: The diagnostic plots of every variant, in page order.
DIAGNOSTICS = ("S1 truth vs reconstructed", "S2 truth vs reconstructed", "position residuals",
               "S2 width vs drift time", "cS2 and S2 vs drift time", "AFT vs depth", "drift-time distribution",
               "efficiency curves")
#: Figure size (inches) and resolution of every plot.
FIGURE_SIZE = (5.2, 3.6)
DPI = 90


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    catalog: Path
    summary: Path


def report_files(campaign_dir: Path, run_id: str) -> ReportFiles:
    tag = run_tag(run_id)
    return ReportFiles(campaign_dir / f"report-{tag}.html", campaign_dir / f"catalog-{tag}.parquet",
                       campaign_dir / f"report-{tag}.json")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    _pyplot().close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _figure(title: str, xlabel: str, ylabel: str):
    figure, axis = _pyplot().subplots(figsize=FIGURE_SIZE)
    axis.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axis.grid(alpha=0.3)
    return figure, axis


def _residual_plot(events: pd.DataFrame, reco: str, truth: str, label: str):
    """Reconstructed vs truth area (top) and relative residual (bottom)."""
    chosen = events[events[reco].notna() & (events[truth] > 0)]
    figure, (top, bottom) = _pyplot().subplots(2, 1, figsize=FIGURE_SIZE, sharex=True,
                                               gridspec_kw={"height_ratios": (2, 1)})
    top.scatter(chosen[truth], chosen[reco], s=4, alpha=0.6)
    limit = [0, max(chosen[truth].max(), 1) if len(chosen) else 1]
    top.plot(limit, limit, color="grey", lw=1, label="reco = truth")
    top.set(title=f"{label}: reconstructed vs truth", ylabel=f"reconstructed {label} [PE]")
    top.legend(fontsize=7)
    bottom.scatter(chosen[truth], (chosen[reco] - chosen[truth]) / chosen[truth], s=4, alpha=0.6)
    bottom.axhline(0, color="grey", lw=1)
    bottom.set(xlabel=f"truth {label} [detected photons]", ylabel="(reco − truth) / truth")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    return figure


def plot_columns(events: pd.DataFrame, settings: dict) -> dict[str, tuple[str, ...]]:
    """Diagnostic title (:data:`DIAGNOSTICS`) → the columns it cannot be drawn without."""
    return dict(zip(DIAGNOSTICS, (
        ("s1", "truth_s1"), ("s2", "truth_s2"), ("z", "depth"), ("drift_time", s2_sigma_column(events, settings)),
        ("drift_time", "s2"), ("depth", "s1_area_fraction_top", "s2_area_fraction_top"), ("drift_time",),
        ("s1", "truth_s1", "s2", "truth_s2")), strict=True))


def missing_plot_columns(events: pd.DataFrame, settings: dict) -> dict[str, list[str]]:
    """Diagnostic title → the columns it needs that the event table lacks (only plots that lack some)."""
    needed = plot_columns(events, settings).items()
    return {title: missing for title, columns in needed if (missing := [c for c in columns if c not in events])}


def diagnostic_plots(events: pd.DataFrame, fits: dict[str, FitResult], settings: dict) -> dict[str, str]:
    """Title (:data:`DIAGNOSTICS`) → base64 PNG of every per-variant diagnostic plot the columns allow."""
    skipped = missing_plot_columns(events, settings)
    draw = {title: function for title, function in zip(DIAGNOSTICS, (
        lambda: _residual_plot(events, "s1", "truth_s1", "S1"), lambda: _residual_plot(events, "s2", "truth_s2", "S2"),
        lambda: _position_plot(events), lambda: _width_plot(events, fits, settings), lambda: _s2_plot(events, fits),
        lambda: _aft_plot(events), lambda: _drift_time_plot(events), lambda: _efficiency_plot(events)), strict=True)
        if title not in skipped}
    return {title: _png(function()) for title, function in draw.items()}


def _position_plot(events: pd.DataFrame):
    figure, axis = _figure("position residuals", "reconstructed − truth [cm]", "events")
    bins = np.linspace(-5, 5, 41)
    for reco, truth in zip(position_columns(events), ("truth_x", "truth_y"), strict=True):
        if reco in events and truth in events:
            axis.hist((events[reco] - events[truth]).dropna(), bins=bins, histtype="step", label=reco)
    axis.hist((events["z"] + events["depth"]).dropna(), bins=bins, histtype="step", label="z")
    axis.legend(fontsize=7)
    return figure


def _width_plot(events: pd.DataFrame, fits: dict[str, FitResult], settings: dict):
    s2_yield = fits["s2_yield"].value if "s2_yield" in fits else None
    sigma, measured = s2_sigma(events, settings, s2_yield)
    figure, axis = _figure("S2 width vs drift time", "drift time [µs]", f"S2 σ [ns] ({measured})")
    axis.scatter(events["drift_time"] / 1e3, sigma, s=4, alpha=0.5, label="events")
    if "diffusion_constant" in fits and fits["diffusion_constant"].curve:
        intercept, slope = fits["diffusion_constant"].curve
        t = np.linspace(0, np.nanmax(events["drift_time"]), 100)
        fit = fits["diffusion_constant"]
        axis.plot(t / 1e3, np.sqrt(np.maximum(intercept + slope * t, 0)), color="C3",
                  label=f"fit: D = {fit.value:.1f} ± {fit.error:.1f} cm²/s")
    axis.legend(fontsize=7)
    return figure


def _s2_plot(events: pd.DataFrame, fits: dict[str, FitResult]):
    drift_us = events["drift_time"] / 1e3
    figure, axis = _figure("S2 vs drift time", "drift time [µs]", "S2 area [PE]")
    if "cs2" in events:
        axis.scatter(drift_us, events["cs2"], s=4, alpha=0.5, label="cS2 (corrected)")
    axis.scatter(drift_us, events["s2"], s=4, alpha=0.5, label="S2 (uncorrected)")
    if "electron_lifetime" in fits and fits["electron_lifetime"].curve:
        intercept, slope = fits["electron_lifetime"].curve
        t = np.linspace(0, np.nanmax(events["drift_time"]), 100)
        fit = fits["electron_lifetime"]
        axis.plot(t / 1e3, np.exp(intercept + slope * t) * events["n_electrons"].mean(), color="C3",
                  label=f"fit: τ = {fit.value:.0f} ± {fit.error:.0f} µs (mean electrons)")
    axis.legend(fontsize=7)
    return figure


def _aft_plot(events: pd.DataFrame):
    figure, axis = _figure("area fraction top vs depth", "true depth below the gate [cm]", "area fraction top")
    axis.scatter(events["depth"], events["s1_area_fraction_top"], s=4, alpha=0.5, label="S1")
    axis.scatter(events["depth"], events["s2_area_fraction_top"], s=4, alpha=0.5, label="S2")
    axis.legend(fontsize=7)
    return figure


def _drift_time_plot(events: pd.DataFrame):
    figure, axis = _figure("drift-time distribution", "drift time [µs]", "events")
    drift = events["drift_time"].dropna().to_numpy(float)
    axis.hist(drift / 1e3, bins=30, histtype="step")
    if len(drift) >= 2:
        for edge in drift_time_edges(drift):
            axis.axvline(edge / 1e3, color="C3", ls="--")
    return figure


def _efficiency_plot(events: pd.DataFrame):
    figure, axis = _figure("reconstruction efficiency", "truth size [detected photons]", "efficiency")
    for reco, truth in (("s1", "truth_s1"), ("s2", "truth_s2")):
        x, y, error = efficiency_curve(events[truth], events[reco].notna())
        axis.errorbar(x, y, yerr=error, marker="o", ms=3, ls="", label=reco.upper())
    axis.set_xscale("log")
    axis.set_ylim(-0.05, 1.05)
    axis.legend(fontsize=7)
    return figure


def skipped_notes(events: pd.DataFrame, settings: dict) -> list[str]:
    """One line per fitted quantity and diagnostic plot the event table lacks columns for."""
    missing = {QUANTITIES[name].label: columns for name, columns in missing_columns(events, settings).items()}
    missing.update({f"plot: {title}": columns for title, columns in missing_plot_columns(events, settings).items()})
    return [f"{what} (no column {', '.join(columns)})" for what, columns in missing.items()]


def sweep_plots(plan: Plan, fits: dict[str, dict[str, FitResult]]) -> dict[str, str]:
    """Title → PNG of each fitted quantity vs its own setting if swept, else the first swept number.

    One series per combination of the other swept settings; dashed: the configured value."""
    swept = swept_parameters(plan)
    numeric = [key for key in swept if all(isinstance(_lookup(v.settings, key), (int, float)) for v in plan.variants)]
    if not numeric:
        return {}
    plots = {}
    for name, quantity in QUANTITIES.items():
        points = [(variant, fits[variant.name][name]) for variant in plan.variants if name in fits[variant.name]]
        if not points:
            continue
        axis_key = quantity.setting if quantity.setting in numeric else numeric[0]
        series_keys = [key for key in swept if key != axis_key]
        unit = f" [{quantity.unit}]" if quantity.unit else ""
        figure, axis = _figure(f"{quantity.label} vs {axis_key.split('.')[-1]}", axis_key, quantity.label + unit)
        series: dict[str, list] = {}
        for variant, fit in points:
            label = ", ".join(f"{key.split('.')[-1]}={_lookup(variant.settings, key)}" for key in series_keys)
            series.setdefault(label or "fitted", []).append((_lookup(variant.settings, axis_key), fit))
        for number, (label, values) in enumerate(sorted(series.items())):
            values.sort(key=lambda pair: pair[0])
            x = [value for value, _ in values]
            axis.errorbar(x, [f.value for _, f in values], yerr=[f.error for _, f in values], marker="o", ms=4,
                          capsize=3, color=f"C{number}", label=label)
            configured = [f.configured for _, f in values]
            if all(c is not None for c in configured):
                axis.plot(x, configured, color=f"C{number}", ls="--", lw=1,
                          label="configured" if label == "fitted" else f"configured ({label})")
        axis.legend(fontsize=7)
        plots[f"{quantity.label} vs {axis_key}"] = _png(figure)
    return plots


def _lookup(settings: dict, dotted: str):
    value = settings
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def run_totals(catalog: pd.DataFrame) -> dict:
    """Events, CPU-hours (the catalog's sum), throughput and states of a run."""
    done = catalog[catalog["status"] == "done"]
    cpu_seconds = float(catalog["cpu_seconds"].sum())
    events = int(done["events_out"].fillna(0).sum())
    return {"productions": len(catalog), **{state: int((catalog["status"] == state).sum()) for state in STATES},
            "events_out": events, "cpu_hours": cpu_seconds / 3600,
            "events_per_cpu_second": events / float(done["cpu_seconds"].sum()) if len(done) else None,
            "cpu_source": "cpu" if (catalog["cpu_source"] == "cpu").all() else "wall",
            "exit_state_sources": {source: int((catalog["exit_state_source"] == source).sum())
                                   for source in EXIT_STATE_SOURCES}}


def report_summary(html_path: Path) -> dict:
    """The summary written next to a report (``report-<tag>.json``)."""
    return json.loads(Path(html_path).with_suffix(".json").read_text())


def fit_rows(fits: dict[str, dict[str, FitResult]]) -> list[dict]:
    return [{"variant": variant, **result.row()} for variant, results in fits.items() for result in results.values()]


def write_report(plan: Plan, output_root: Optional[Path] = None) -> Path:
    """Write the HTML report, the catalog and the report summary of ``plan``; return the HTML path."""
    root = Path(output_root or plan.output_root)
    campaign_dir = root / plan.campaign
    files = report_files(campaign_dir, plan.run_id)
    catalog = scheduler_exit_states(build_catalog(plan, root))
    write_catalog(catalog, files.catalog)
    fits, diagnostics, skipped = {}, {}, {}
    for variant in plan.variants:
        events = event_table(catalog, variant.name)
        fits[variant.name] = fit_variant(events, variant.settings) if len(events) else {}
        if len(events):
            diagnostics[variant.name] = diagnostic_plots(events, fits[variant.name], variant.settings)
            if notes := skipped_notes(events, variant.settings):
                skipped[variant.name] = notes
    totals = run_totals(catalog)
    summary = {"campaign": plan.campaign, "run_id": plan.run_id, "faxflow_version": plan.faxflow_version,
               "totals": totals, "fits": fit_rows(fits), "skipped": skipped, "catalog": str(files.catalog),
               "report": str(files.html)}
    campaign_dir.mkdir(parents=True, exist_ok=True)
    page = render_html(plan, catalog, fits, sweep_plots(plan, fits), diagnostics, totals, skipped)
    _write_text_atomic(files.html, page)
    write_json_atomic(files.summary, summary)
    return files.html


def _write_text_atomic(path: Path, text: str) -> None:
    import os
    import tempfile

    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False,
                                     encoding="utf-8") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def format_fit_table(rows: list[dict]) -> str:
    """The fit table as plain text (the report task prints it into its log)."""
    lines = [f"{'variant':<40} {'quantity':<32} {'value':>12} {'error':>10} {'configured':>11} unit"]
    for row in rows:
        quantity = QUANTITIES[row["quantity"]]
        configured = "" if row["configured"] is None else f"{row['configured']:.4g}"
        lines.append(f"{row['variant'][:40]:<40} {quantity.label:<32} {row['value']:>12.5g} {row['error']:>10.3g} "
                     f"{configured:>11} {quantity.unit}")
    return "\n".join(lines)


_STYLE = """body{font-family:sans-serif;max-width:1200px;margin:1em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}
th{background:#f0f0f0}td.n{text-align:right;font-family:monospace}.plots{display:flex;flex-wrap:wrap;gap:6px}
figure{margin:0}figcaption{font-size:12px;color:#555}img{max-width:100%}"""


def _img(title: str, data: str) -> str:
    text = html.escape(title)
    return (f'<figure><img alt="{text}" title="{text}" src="data:image/png;base64,{data}">'
            f"<figcaption>{text}</figcaption></figure>")


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{html.escape(c)}</td>' if i >= numeric_from
                                    else f"<td>{html.escape(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def fit_table_html(fits: dict[str, dict[str, FitResult]]) -> str:
    """One row per variant, one column per fitted quantity: value ± error, the configured value below."""
    names = [name for name in QUANTITIES if any(name in results for results in fits.values())]
    head = "".join(f"<th>{html.escape(QUANTITIES[n].label)}"
                   + (f" [{html.escape(QUANTITIES[n].unit)}]" if QUANTITIES[n].unit else "") + "</th>" for n in names)
    body = []
    for variant, results in fits.items():
        cells = []
        for name in names:
            fit = results.get(name)
            if fit is None:
                cells.append("<td></td>")
                continue
            configured = "" if fit.configured is None else f"<br><small>configured {fit.configured:.4g}</small>"
            cells.append(f'<td class="n" data-quantity="{name}">{fit.value:.4g} ± {fit.error:.2g}{configured}</td>')
        body.append(f"<tr><td>{html.escape(variant)}</td>{''.join(cells)}</tr>")
    return f"<table id='fits'><tr><th>variant</th>{head}</tr>{''.join(body)}</table>"


def render_html(plan: Plan, catalog: pd.DataFrame, fits: dict, sweeps: dict, diagnostics: dict,
                totals: dict, skipped: Optional[dict[str, list[str]]] = None) -> str:
    question = html.escape(_description(plan) or "(the campaign has no description)")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>faxflow report {html.escape(plan.campaign)}"
             f"</title><style>{_STYLE}</style></head><body>",
             f"<h1>Campaign {html.escape(plan.campaign)}</h1><p class='question'><b>Question:</b> {question}</p>",
             f"<p>run <code>{html.escape(plan.run_id)}</code>, faxflow {html.escape(plan.faxflow_version)}, "
             f"{len(plan.variants)} variants, swept: {html.escape(', '.join(swept_parameters(plan)) or 'nothing')}</p>",
             "<h2>Fits</h2>"]
    parts.append(fit_table_html(fits))
    parts.append("<p>D comes from the S2 σ² vs drift time with the simulated drift velocity: σ is the "
                 "sum-waveform time std when neither PMT afterpulses nor photo-ionisation are simulated; "
                 "with either, the rise time (10 % to 50 % of the area) turned into the prompt light's σ "
                 "through the rise time vs σ relation of S2s with the variant's own delayed light. "
                 "The estimators are described in faxflow's fits module.</p>")
    if skipped:
        parts.append("<h3>Not fitted or drawn: the merged tables lack their columns</h3><ul id='skipped'>" + "".join(
            f"<li>{html.escape(name)}: {html.escape('; '.join(notes))}</li>" for name, notes in skipped.items())
            + "</ul>")
    if sweeps:
        parts.append("<h2>Sweep</h2><div class='plots'>" + "".join(_img(t, d) for t, d in sweeps.items()) + "</div>")
    parts.append("<h2>Run</h2>" + _table(
        ["productions", *STATES, "events out", "CPU-hours", "events per CPU-second"],
        [[str(totals["productions"]), *(str(totals[s]) for s in STATES), str(totals["events_out"]),
          f"{totals['cpu_hours']:.4g}" + (" (wall)" if totals["cpu_source"] == "wall" else ""),
          "" if totals["events_per_cpu_second"] is None else f"{totals['events_per_cpu_second']:.4g}"]], 0))
    per_variant = catalog.groupby("variant", sort=False).agg(
        productions=("production", "size"), done=("status", lambda s: int((s == "done").sum())),
        events=("events_out", "sum"), cpu_seconds=("cpu_seconds", "sum"))
    parts.append(_table(["variant", "productions", "done", "events out", "CPU-hours"],
                        [[name, str(r.productions), str(r.done), str(int(r.events)), f"{r.cpu_seconds / 3600:.4g}"]
                         for name, r in per_variant.iterrows()]))
    sources = ", ".join(f"{n} from {source}" for source, n in totals["exit_state_sources"].items() if n)
    parts.append(f"<p id='exit-state-source'>Exit states: {html.escape(sources or 'none')} "
                 "(sacct: the scheduler's accounting; records: the productions' done records).</p>")
    failed = catalog[catalog["status"] == "failed"]
    parts.append("<h2>Failures</h2>" + (_table(["production", "step", "class", "exit code"], [
        [r.production, str(r.failed_step), str(r.error_class), str(r.exit_code)] for r in failed.itertuples()], 3)
        if len(failed) else "<p>none</p>"))
    parts.append("<h2>Diagnostics per variant</h2>")
    for name, plots in diagnostics.items():
        parts.append(f"<h3>{html.escape(name)}</h3><div class='plots'>"
                     + "".join(_img(f"{name}: {title}", data) for title, data in plots.items()) + "</div>")
    parts.append(f"<script type='application/json' id='fit-data'>{json.dumps(fit_rows(fits))}</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _description(plan: Plan) -> str:
    """The campaign's description from the plan, else from the campaign file the plan was made from."""
    from faxflow.config import read_campaign_file
    from faxflow.errors import ConfigError

    if plan.description:
        return plan.description
    try:
        data = read_campaign_file(plan.campaign_path)
    except ConfigError:
        return ""
    return str(data.get("description") or "") if isinstance(data, dict) else ""
