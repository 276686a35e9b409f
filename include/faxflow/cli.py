"""The ``faxflow`` command line: validate, plan, run, job, collect, raw, report, status, check-manifest,
schema, docs, version."""

import argparse
import json
import math
import os
import sys
from pathlib import Path

from faxflow import __version__
from faxflow.errors import BadInputError, FaxflowError, classify


def _whole_number(minimum: int):
    """An argparse type: a whole number ≥ ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be ≥ {minimum}")
        return value

    return parse


positive_int = _whole_number(1)
non_negative_int = _whole_number(0)


def fraction(text: str) -> float:
    """An argparse type: a finite number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be a number in [0, 1]")
    return value


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="campaign YAML file")
    parser.add_argument("--run-id", default="manual", help="run identifier (salts seeds with seed_policy per_run)")
    parser.add_argument("--output-root", help="where outputs go (default: the config's output_root)")
    parser.add_argument("--variants", help="comma-separated subset of variants")
    parser.add_argument("--number-job", type=positive_int, help="override productions per variant")
    parser.add_argument("--events", type=positive_int, help="override events per production")


def _make_plan(args):
    from faxflow.config import input_problems, load_campaign
    from faxflow.plan import make_plan

    campaign = load_campaign(args.config)
    campaign.check_size(args.number_job, args.events, args.variants.split(",") if args.variants else None)
    problems = input_problems(campaign)
    if problems:
        raise BadInputError("\n".join(problems))
    return make_plan(campaign, run_id=args.run_id, output_root=args.output_root,
                     variants=args.variants.split(",") if args.variants else None,
                     number_job=args.number_job, events=args.events)


def cmd_validate(args) -> int:
    from faxflow.config import input_problems, load_campaign
    from faxflow.errors import ConfigError
    from faxflow.plan import make_plan

    problems = []
    for path in args.configs:
        try:
            campaign = load_campaign(path)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        found = input_problems(campaign)
        if not found:
            try:
                make_plan(campaign)  # expands the production ids: collisions and unsafe ids show here
            except FaxflowError as error:
                found = [line if line.startswith(f"{path}:") else f"{path}: {line}" for line in str(error).splitlines()]
        problems.extend(found)
        if not found:
            print(f"{path}: ok ({len(campaign.variants)} variants)")
    for line in problems:
        print(line, file=sys.stderr)
    return 2 if problems else 0


def cmd_plan(args) -> int:
    from faxflow.manifest import write_manifest
    from faxflow.plan import format_dry_run

    plan = _make_plan(args)
    print(format_dry_run(plan))
    if not args.dry_run:
        directory = Path(args.manifest_dir or Path(plan.output_root) / plan.campaign / "manifests")
        manifest = write_manifest(plan, directory)
        print(f"manifest: {manifest.index_path}\ndigest: {manifest.index_digest}")
    return 0


def cmd_run(args) -> int:
    from faxflow.local import run_local

    return run_local(_make_plan(args), jobs=args.jobs or os.cpu_count() or 1, force=args.force)


def cmd_job(args) -> int:
    from faxflow.manifest import load_slice
    from faxflow.pipeline import failed_summary, run_group, summary_line

    plan = load_slice(args.manifest, args.digest)
    group = plan.group(plan.groups[0].index if args.group is None else args.group).index
    try:
        summary = run_group(plan, group, args.output_root, force=args.force)
    except (FaxflowError, OSError) as error:
        summary = failed_summary(plan, group, error)
        print(f"faxflow: {summary['failures'][0]['error_class']} error: {error}", file=sys.stderr)
    print(summary_line(summary), flush=True)
    return summary["exit_code"]


def cmd_collect(args) -> int:
    from faxflow.collect import collect_variant
    from faxflow.manifest import load_index

    if not 0.0 <= args.min_fraction <= 1.0:
        raise BadInputError(f"--min-fraction {args.min_fraction} must be a number in [0, 1]")
    summary = collect_variant(load_index(args.manifest, args.digest), args.variant, args.output_root,
                              args.min_fraction)
    print(json.dumps({k: v for k, v in summary.items() if k != "per_production"}, sort_keys=True))
    return 0


def cmd_report(args) -> int:
    from faxflow.manifest import load_index
    from faxflow.report import format_fit_table, report_summary, write_report

    report = write_report(load_index(args.manifest, args.digest), args.output_root)
    print(format_fit_table(report_summary(report)["fits"]))
    print(report)
    return 0


def cmd_status(args) -> int:
    from faxflow.status import format_status, remote_catalog, summarise

    plan = _make_plan(args)
    if args.ssh_conn_id:
        from faxflow.slurm.client import SlurmClient

        with SlurmClient(args.ssh_conn_id) as client:
            catalog = remote_catalog(plan, client)
    else:
        from faxflow.catalog import build_catalog

        catalog = build_catalog(plan)
    rows = summarise(plan, catalog)
    print(json.dumps(rows, sort_keys=True) if args.json else format_status(rows))
    return 0


def cmd_check_manifest(args) -> int:
    from faxflow.manifest import load_manifest

    plan = load_manifest(args.manifest, args.digest)
    print(f"ok: manifest of campaign {plan.campaign}, faxflow {plan.faxflow_version}, "
          f"{len(plan.variants)} variant(s), {len(plan.groups)} group(s)")
    return 0


def cmd_raw(args) -> int:
    from faxflow.manifest import load_manifest
    from faxflow.pipeline import regenerate_raw_file

    plan = load_manifest(args.manifest, args.digest)
    print(regenerate_raw_file(plan, args.production, args.output, args.output_root))
    return 0


def cmd_schema(args) -> int:
    from faxflow.config import campaign_json_schema

    print(json.dumps(campaign_json_schema(), indent=1, sort_keys=True))
    return 0


def cmd_warm(args) -> int:
    from faxflow.engines.builtin import kernel_cache

    if args.cache_dir:  # an explicit directory wins over the environment, also for what it compiles
        os.environ[kernel_cache.ENV_VAR] = str(Path(args.cache_dir).resolve())
    directory = kernel_cache.use()
    was_warm = kernel_cache.is_warm(directory)
    seconds = kernel_cache.warm(directory)
    if was_warm:
        print(f"kernels already warm in {directory} (loaded in {seconds:.1f} s)")
    else:
        print(f"kernels compiled in {seconds:.1f} s into {directory}")
    return 0


def cmd_docs(args) -> int:
    from faxflow.docs import render_configuration_reference

    text = render_configuration_reference()
    target = Path(args.output)
    if args.check:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is out of date; run: faxflow docs", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(target)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faxflow", description="XENON1T waveform-simulation campaigns")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check campaign files")
    validate.add_argument("configs", nargs="+")
    validate.set_defaults(func=cmd_validate)

    plan = commands.add_parser("plan", help="expand a campaign into a manifest")
    _plan_arguments(plan)
    plan.add_argument("--dry-run", action="store_true", help="print the table, write nothing")
    plan.add_argument("--manifest-dir", help="where to write the manifest")
    plan.set_defaults(func=cmd_plan)

    run = commands.add_parser("run", help="run a whole campaign on this machine")
    _plan_arguments(run)
    run.add_argument("-j", "--jobs", type=positive_int, help="parallel groups (default: number of cores)")
    run.add_argument("--force", action="store_true", help="redo steps even if their done records are valid")
    run.set_defaults(func=cmd_run)

    job = commands.add_parser("job", help="run one group of a manifest (what a Slurm job runs)")
    job.add_argument("--manifest", required=True, help="the group's manifest slice")
    job.add_argument("--digest", required=True, help="the slice's sha256, as recorded by the planner")
    job.add_argument("--group", type=non_negative_int, help="the slice's group (checked against it)")
    job.add_argument("--output-root", help="override the manifest's output root")
    job.add_argument("--force", action="store_true")
    job.set_defaults(func=cmd_job)

    collect = commands.add_parser("collect", help="verify and merge one variant's outputs")
    collect.add_argument("--manifest", required=True, help="the plan's index.json")
    collect.add_argument("--digest", required=True, help="the index's sha256, as recorded by the planner")
    collect.add_argument("--variant", required=True)
    collect.add_argument("--output-root")
    collect.add_argument("--min-fraction", type=fraction, default=1.0, help="productions that must be complete")
    collect.set_defaults(func=cmd_collect)

    report = commands.add_parser("report", help="write the campaign report (HTML), catalog and fit table")
    report.add_argument("--manifest", required=True, help="the plan's index.json")
    report.add_argument("--digest", required=True, help="the index's sha256, as recorded by the planner")
    report.add_argument("--output-root")
    report.set_defaults(func=cmd_report)

    status = commands.add_parser("status", help="progress per variant: states, events, CPU-hours, ETA")
    _plan_arguments(status)
    status.add_argument("--ssh-conn-id", help="read a cluster campaign through this Airflow SSH connection")
    status.add_argument("--json", action="store_true", help="one JSON list instead of the table")
    status.set_defaults(func=cmd_status)

    check = commands.add_parser("check-manifest", help="exit 0 if this faxflow can run the manifest")
    check.add_argument("manifest", help="an index.json or a group slice")
    check.add_argument("--digest", required=True, help="its sha256, as recorded by the planner")
    check.set_defaults(func=cmd_check_manifest)

    raw = commands.add_parser("raw", help="regenerate one production's raw data (byte-identical, from its seed)")
    raw.add_argument("production", help="production id")
    raw.add_argument("--manifest", required=True, help="the plan's index.json or the production's group slice")
    raw.add_argument("--digest", required=True, help="its sha256, as recorded by the planner")
    raw.add_argument("--output", type=Path, help="where to write it (default: ./<sim name>.npz)")
    raw.add_argument("--output-root", help="override the manifest's output root")
    raw.set_defaults(func=cmd_raw)

    commands.add_parser("schema", help="print the campaign JSON schema").set_defaults(func=cmd_schema)
    docs = commands.add_parser("docs", help="write the configuration reference from the schema")
    docs.add_argument("--output", default="docs/configuration.md")
    docs.add_argument("--check", action="store_true", help="fail if the file is out of date")
    docs.set_defaults(func=cmd_docs)
    warm = commands.add_parser("warm", help="compile the builtin engine's kernels into the kernel cache")
    warm.add_argument("--cache-dir", help="kernel cache base directory (default: $FAXFLOW_KERNEL_CACHE, "
                                          "else ~/.cache/faxflow/kernels)")
    warm.set_defaults(func=cmd_warm)
    commands.add_parser("version", help="print the faxflow version").set_defaults(
        func=lambda args: print(__version__) or 0)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("faxflow: interrupted", file=sys.stderr)
        return 130
    except (FaxflowError, OSError, MemoryError) as error:
        failure = classify(error)
    except Exception as error:  # noqa: BLE001 - one line for users, the traceback with --debug
        if args.debug:
            raise
        failure = _unexpected(error)
    print(f"faxflow: {failure.label} error: {failure}", file=sys.stderr)
    if args.command == "job":
        _print_job_failure(args, failure)
    return failure.exit_code


def _unexpected(error: Exception) -> FaxflowError:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        return BadInputError(f"invalid content: {error}")
    return FaxflowError(f"unexpected {type(error).__name__}: {error} (re-run with --debug for details)")


def _print_job_failure(args, failure: FaxflowError) -> None:
    """A job that could not even start its group still ends with the summary line schedulers read."""
    record = {"production": None, "step": None, "error_class": failure.kind, "exit_code": failure.exit_code,
              "message": str(failure)}
    from faxflow.pipeline import summary_line

    summary = {"group": args.group, "job_name": None, "variant": None, "exit_code": failure.exit_code,
               "failures": [record]}
    print(summary_line(summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
